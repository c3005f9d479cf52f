"""Export a trained run as a calibrated SavedModel that takes raw audio.

    python -m deepwave_tf.export --run-dir runs/NAME [--records DIR] [--no-calibrate]
                                 [--config FILE] [--set export.KEY=VALUE]

The run's `config.json` is the config; `--config FILE` (its `[export]`
section) and `--set export.KEY=VALUE` change the export settings only, the
other sections describe the trained model.

writes `runs/NAME/export/TIMESTAMP/` (UTC, e.g. `20261125T121500Z`) with
`keras.export.ExportArchive`. Signatures (core TensorFlow ops only: stock
TensorFlow / TF Serving load it without keras, tensorflow-io or this package):

- `serving_default(waveform: float32 [batch, samples])` -> `{"fake": [batch],
  "real": [batch]}` calibrated probabilities of whole clips. Audio is mono at
  the run's `features.sample_rate_hz`, any length; a `[samples]` tensor is one
  clip, any other rank fails with an assertion that says so, and float64 is
  refused by TensorFlow's signature check (cast to float32). Inside the graph
  (`features.frame_windows`) a clip no longer than `features.clip_seconds` is
  zero-padded to one window; a longer one is cut into windows every
  `export.window_hop_seconds` plus one ending at the clip's end. Each window
  goes through `features.compute_features` (the same code prep ran), the
  logits network and `sigmoid(logit / T)`, and the windows are combined per
  output by `export.aggregate` (max or mean): what `predict` reports.
- `windows(waveform)` -> `{"fake", "real", "start_s", "end_s"}`, each
  `[batch, n_windows]`: the per-window probabilities and where each window
  starts and ends in the clip (seconds), so a long recording shows *where* it
  scores as fake.
- `features(mfcc: [batch, frames, n_mfcc], mel: [batch, n_mels, frames])` ->
  the same outputs, for callers who computed the features themselves (one
  argument per stored front-end tensor, `features.feature_keys`, named and
  shaped as `features.compute_features` returns it). A model with the waveform
  branch (`model.branches` has "waveform") takes the window's samples too,
  `waveform: [batch, num_samples]`; its `serving_default` and `windows` are
  unchanged (each window's samples go to the branch beside the window's features).
- `metadata()` -> `{"json": string}`: the content of `assets/deepwave.json`
  (resolved config, feature config and hash, label names, calibration method
  and parameters per output and why they were kept, calibration metrics,
  versions).

Calibration (`calibration.py`): each output's logit goes through
`sigmoid(scale * logit + bias)` in the graph. `export.calibration` picks the
map on the validation split of the run's records: "auto" (the default) keeps
none, temperature or Platt by k-fold out-of-fold log loss, "none" /
"temperature" / "platt" force one; below `export.calibration_min_clips`
validation clips it keeps none with a warning; T stays within
`export.calibration_temperature_range`. The softmax head gets one shared map.
The metadata's `calibration.outputs` records per output the method kept, its
scale / bias / T, the reason and the out-of-fold scores; `temperatures` is
`1 / scale` (with Platt there is also a bias).

Before the export gets its final name, it is reloaded with
`tf.saved_model.load` and compared with the in-memory model + calibration on
stored validation features, decoded clips of the records' source data and
synthetic silence / noise / tones of several lengths; any difference above
`export.parity_atol` raises `ExportParityError` and the export is left under
`export/.TIMESTAMP.failed/`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf import calibration, cli
from deepwave_tf.config import Config, ConfigError, ExportConfig, load_config
from deepwave_tf.serving import METADATA_ASSET, ExportError

FORMAT = "deepwave_tf-export-1"
PARITY_RECORDS = 4  # stored-feature clips checked after reloading
PARITY_AUDIO = 3  # decoded source clips checked after reloading
WINDOW_CHUNK = 32  # windows per network call inside the graph (bounds memory on long audio)


class ExportParityError(ExportError):
    """The reloaded export does not reproduce the in-memory model."""


@dataclasses.dataclass
class Calibration:
    """The calibration baked into the export: `p = sigmoid(scale * logit + bias)` per output."""

    scale: np.ndarray  # [2]
    bias: np.ndarray  # [2]
    fitted: bool  # False: --no-calibrate / export.calibrate = false
    shared: bool
    n_val: int
    report: dict[str, Any]
    warnings: list[str]
    outputs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # method, why

    @property
    def temperatures(self) -> np.ndarray:
        """`1 / scale`: the temperatures when no output has a bias (methods none, temperature)."""
        return 1.0 / self.scale

    @property
    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scale, self.bias


# --------------------------------------------------------------------------- #
# Loading the run
# --------------------------------------------------------------------------- #
def load_run_config(
    run_dir: Path, overrides: Sequence[str] = (), config: str | Path | None = None
) -> Config:
    """The run's resolved config, with `export.*` from `config`'s [export] section and `overrides`.

    Precedence, lowest first: the run's `config.json`, the `[export]` keys of
    `config`, the overrides (`--set export.KEY=VALUE`). Other sections
    describe the trained model: `config`'s are checked but not used, and an
    override of one is an error.
    """
    path = run_dir / "config.json"
    if not path.is_file():
        raise ExportError(
            f"{run_dir} is not a run directory: no config.json (train with deepwave_tf.fit)"
        )
    raw = json.loads(path.read_text())
    return load_config(
        config, overrides, base=(raw, str(path)), sections=("export",), context="at export time"
    )


def find_records(run_dir: Path, records: str | Path | None) -> Path | None:
    """`records` if given, else the records directory named in `run_dir/run.json` (or None)."""
    if records is not None:
        return Path(records)
    run_json = run_dir / "run.json"
    if run_json.is_file():
        found = json.loads(run_json.read_text()).get("records")
        if found:
            return Path(found)
    return None


def load_model(run_dir: Path):
    import keras

    path = run_dir / "model.keras"
    if not path.is_file():
        raise ExportError(f"no model.keras in {run_dir}: train first (python -m deepwave_tf.fit)")
    import deepwave_tf.model  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False)


# --------------------------------------------------------------------------- #
# Calibration on the validation split
# --------------------------------------------------------------------------- #
def inference_fn(logits_model):
    """The in-memory logits model in inference mode, as one traced graph.

    Calling the Keras model eagerly runs the LSTM's while loop op by op
    (~0.5 s per call); tracing it once makes the checks cheap.
    """
    import tensorflow as tf

    return tf.function(lambda x: logits_model(x, training=False), reduce_retracing=True)


def validation_logits(
    logits_model, records_dir: Path, cfg: Config
) -> tuple[np.ndarray, np.ndarray]:
    """Logits `[N, 2]` and 0/1 targets `[N, 2]` of the validation split (`data.make_dataset`)."""
    from deepwave_tf import data
    from deepwave_tf.features import LABEL_KEYS

    infer = inference_fn(logits_model)
    logits, targets = [], []
    for x, y in data.make_dataset(records_dir, "val", cfg, training=False):
        logits.append(np.asarray(infer(x)))
        targets.append(np.stack([np.asarray(y[k]) for k in LABEL_KEYS], axis=-1))
    if not logits:
        raise ExportError(f"the validation split of {records_dir} is empty: cannot calibrate")
    return np.concatenate(logits), np.concatenate(targets)


def calibration_set(
    logits_model, records_dir: Path, cfg: Config
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What calibration is fitted on: logits `[R, 2]`, targets `[R, 2]` and clip index `[R]`.

    With `augment.val_mixing`, `export.calibration_passes` passes over the validation
    split, each mixed with other seeds (`data.seed + pass`): every clip gets that many
    mixtures, numbered by `clips` (the split is read in a fixed order). Without mixing
    every pass would be the same, so there is one.
    """
    import dataclasses

    passes = cfg.export.calibration_passes if cfg.augment.val_mixing else 1
    logits, targets = [], []
    for p in range(passes):
        pass_cfg = cfg.replace(data=dataclasses.replace(cfg.data, seed=cfg.data.seed + p))
        z, y = validation_logits(logits_model, records_dir, pass_cfg)
        if logits and len(z) != len(logits[0]):
            raise ExportError(
                f"the validation split of {records_dir} gave {len(z)} clips in pass {p + 1} "
                f"and {len(logits[0])} in pass 1"
            )
        logits.append(z)
        targets.append(y)
    clips = np.tile(np.arange(len(logits[0])), passes)
    return np.concatenate(logits), np.concatenate(targets), clips


def fit_calibration(
    logits: np.ndarray,
    targets: np.ndarray,
    head: str,
    settings: ExportConfig | None = None,
    clips: np.ndarray | None = None,
) -> Calibration:
    """The calibration `settings` ask for (`export.calibration*`), guarded and cross-validated
    by `calibration.fit_calibration`; one shared map for the softmax head."""
    from deepwave_tf.features import LABEL_KEYS

    settings = ExportConfig() if settings is None else settings
    shared = head == "softmax"
    fitted = calibration.fit_calibration(
        logits,
        targets,
        method=settings.calibration,
        shared=shared,
        min_clips=settings.calibration_min_clips,
        folds=settings.calibration_folds,
        temperature_range=settings.calibration_temperature_range,
        prior_strength=settings.calibration_prior_clips,
        labels=LABEL_KEYS,
        clips=clips,
    )
    report = calibration.calibration_report(
        logits,
        targets,
        labels=LABEL_KEYS,
        scale=fitted.scale,
        bias=fitted.bias,
        methods=fitted.methods,
    )
    return Calibration(
        fitted.scale,
        fitted.bias,
        True,
        shared,
        len(logits) if clips is None else len(np.unique(clips)),  # clips, not mixing rows
        report,
        fitted.warnings,
        fitted.details,
    )


def calibration_metadata(calib: Calibration) -> dict[str, Any]:
    """The metadata's `calibration`: the map per output, which method was kept and why."""
    return {
        "fitted": calib.fitted,
        "shared": calib.shared,
        "n_val": calib.n_val,
        "map": "sigmoid(scale * logit + bias)",
        "scale": [float(a) for a in calib.scale],
        "bias": [float(b) for b in calib.bias],
        "outputs": calib.outputs,  # per output: method, scale, bias, temperature, reason, cv
        "metrics": calib.report,  # validation Brier / ECE / log loss before and after
        "warnings": calib.warnings,
    }


# --------------------------------------------------------------------------- #
# The export graph
# --------------------------------------------------------------------------- #
def build_archive(
    logits_model, cfg: Config, affine: tuple[np.ndarray, np.ndarray], metadata_path: Path
):
    """An `ExportArchive` with the `serving_default`, `windows`, `features` and `metadata` endpoints.

    `affine`: the calibration `(scale [2], bias [2])`, applied as `sigmoid(scale * logit + bias)`.
    """
    import keras
    import tensorflow as tf

    from deepwave_tf import features
    from deepwave_tf.features import LABEL_KEYS, WAVEFORM

    fcfg = cfg.features
    keys = fcfg.feature_keys
    hop = features.hop_samples(cfg.export.window_hop_seconds, fcfg)
    scale = tf.constant(np.asarray(affine[0], np.float32))
    bias = tf.constant(np.asarray(affine[1], np.float32))
    asset = tf.saved_model.Asset(str(metadata_path))
    wave = cfg.model.uses_waveform

    # The features endpoint's arguments: the stored tensors, then the samples for the
    # waveform branch.
    endpoint_keys = (*keys, WAVEFORM) if wave else tuple(keys)

    def stacked_probabilities(feats):
        # Band-major tensors get the model's channel axis (users and prep use
        # [bands, frames]); the waveform passes as it is.
        logits = logits_model(features.model_inputs(feats), training=False)
        return tf.sigmoid(logits * scale + bias)  # [batch, 2], columns = LABEL_KEYS

    def window_probabilities(windows):
        """`[batch, n_windows, num_samples]` -> `[batch, n_windows, 2]`.

        The windows of the whole batch go through the network WINDOW_CHUNK at
        a time (a `tf.map_fn` loop), so the network's activations stay those
        of WINDOW_CHUNK clips however long the audio; the chunks are
        equal-sized so that padding wastes less than one window per chunk.
        """
        shape = tf.shape(windows)
        flat = tf.reshape(windows, [-1, fcfg.num_samples])
        n = tf.shape(flat)[0]
        chunks = tf.maximum((n + WINDOW_CHUNK - 1) // WINDOW_CHUNK, 1)
        per_chunk = tf.maximum((n + chunks - 1) // chunks, 1)
        flat = tf.pad(flat, [[0, chunks * per_chunk - n], [0, 0]])

        def score(chunk):  # [per_chunk, num_samples] windows
            feats = features.compute_features(chunk, fcfg)
            return stacked_probabilities({**feats, WAVEFORM: chunk} if wave else feats)

        probs = tf.map_fn(
            score,
            tf.reshape(flat, [chunks, per_chunk, fcfg.num_samples]),
            fn_output_signature=tf.TensorSpec([None, len(LABEL_KEYS)], tf.float32),
            parallel_iterations=1,
        )
        return tf.reshape(tf.reshape(probs, [-1, len(LABEL_KEYS)])[:n], [shape[0], shape[1], -1])

    def as_batch(waveform):
        """`[batch, samples]` as it is, `[samples]` (one clip) as `[1, samples]`, else a clear error.

        The signature's input has no declared rank on purpose: a declared
        `[None, None]` is not enforced when a signature is called (nor by TF
        Serving), and grappler folds any rank check on it away, so a rank-1
        tensor would fail deep inside with an error about slices or paddings.
        """
        rank = tf.rank(waveform)
        check = tf.debugging.Assert(
            tf.logical_or(tf.equal(rank, 1), tf.equal(rank, 2)),
            [
                "waveform must be float32 [batch, samples] (or [samples] for one clip), mono at "
                f"{fcfg.sample_rate_hz} Hz; got a tensor of rank",
                rank,
            ],
        )
        with tf.control_dependencies([check]):
            waveform = tf.identity(waveform)
        return tf.reshape(waveform, [-1, tf.shape(waveform)[-1]])

    def serve_waveform(waveform):
        windows, _, _ = features.frame_windows(as_batch(waveform), fcfg, hop)
        probs = window_probabilities(windows)
        if cfg.export.aggregate == "max":
            combined = tf.reduce_max(probs, axis=1)
        else:
            combined = tf.reduce_mean(probs, axis=1)
        return {key: combined[:, i] for i, key in enumerate(LABEL_KEYS)}

    def serve_windows(waveform):
        waveform = as_batch(waveform)
        windows, start_s, end_s = features.frame_windows(waveform, fcfg, hop)
        probs = window_probabilities(windows)
        # Every output keeps the batch axis first (TF Serving's row format needs it).
        batch = tf.shape(waveform)[:1]
        out = {key: probs[:, :, i] for i, key in enumerate(LABEL_KEYS)}
        out["start_s"] = tf.tile(start_s[None], tf.concat([batch, [1]], 0))
        out["end_s"] = tf.tile(end_s[None], tf.concat([batch, [1]], 0))
        return out

    def features_endpoint(*stored):
        probs = stacked_probabilities(dict(zip(endpoint_keys, stored)))
        return {key: probs[:, i] for i, key in enumerate(LABEL_KEYS)}

    # One named argument per stored tensor (a signature's inputs are named by its specs).
    if len(endpoint_keys) == 3:

        def serve_features(first, second, third):
            return features_endpoint(first, second, third)
    elif len(endpoint_keys) == 2:

        def serve_features(first, second):
            return features_endpoint(first, second)
    else:

        def serve_features(first):
            return features_endpoint(first)

    def metadata():
        return {"json": tf.io.read_file(asset.asset_path)}

    waveform_spec = [tf.TensorSpec(None, tf.float32, name=WAVEFORM)]  # see as_batch
    archive = keras.export.ExportArchive()
    archive.track(logits_model)
    archive.add_endpoint("serving_default", serve_waveform, waveform_spec)
    archive.add_endpoint("windows", serve_windows, waveform_spec)
    feature_specs = [
        tf.TensorSpec([None, *fcfg.feature_shape(k)], tf.float32, name=k) for k in keys
    ]
    if wave:
        feature_specs.append(tf.TensorSpec([None, fcfg.num_samples], tf.float32, name=WAVEFORM))
    archive.add_endpoint("features", serve_features, feature_specs)
    # ExportArchive only saves what hangs off its root object; attaching the
    # Asset there makes tf.saved_model copy the file into assets/ and list it
    # in the MetaGraph, so it travels with the model (TF Serving included).
    archive._tf_trackable.deepwave_metadata = asset
    archive.add_endpoint("metadata", metadata, [])
    return archive


# --------------------------------------------------------------------------- #
# Parity after reloading
# --------------------------------------------------------------------------- #
def parity_inputs(records_dir: Path | None, cfg: Config) -> tuple[list, list]:
    """Clips for the reload check.

    Returns:
        `(feature_clips, waveform_clips)`: lists of `(name, {key: array})`
        (stored features `cfg.features.feature_keys`, unbatched; with the record's
        `"waveform"` for a model with the waveform branch, whose records without one
        give no feature clips) and `(name, [samples] float32)`.
    """
    from deepwave_tf import audio, records
    from deepwave_tf.features import WAVEFORM

    fcfg = cfg.features
    sr = fcfg.sample_rate_hz
    feature_clips: list[tuple[str, dict[str, np.ndarray]]] = []
    waveform_clips: list[tuple[str, np.ndarray]] = []
    if records_dir is not None:
        import tensorflow as tf

        manifest = records.read_manifest(records_dir)
        split = next(
            (s for s in ("val", "test", "train") if manifest.get("shards", {}).get(s)), None
        )
        if split is not None:
            with_waveform = bool(manifest.get("with_waveform"))
            parse = records.make_parser(
                fcfg, with_waveform=with_waveform, stored_layout=records.mel_layout(manifest)
            )
            ds = tf.data.TFRecordDataset(
                [str(p) for p in records.shard_paths(records_dir, split)],
                compression_type=manifest.get("compression", ""),
            )
            for ex in ds.take(PARITY_RECORDS).map(parse):
                name = f"{split} record {ex['id'].numpy().decode()}"
                feats = {k: ex[k].numpy() for k in fcfg.feature_keys}
                if cfg.model.uses_waveform and with_waveform:
                    feats[WAVEFORM] = ex[WAVEFORM].numpy()
                if with_waveform or not cfg.model.uses_waveform:
                    feature_clips.append((name, feats))
                if with_waveform:
                    waveform_clips.append((name + " (stored waveform)", ex["waveform"].numpy()))
        source = Path(manifest.get("source", {}).get("data_dir", "") or "/nonexistent")
        for table in ("test.csv", "train.csv"):
            if len([n for n, _ in waveform_clips if n.startswith("audio")]) >= PARITY_AUDIO:
                break
            if not (source / table).is_file():
                continue
            with open(source / table, newline="") as f:
                rows = list(csv.DictReader(f))
            for row in rows[: 2 * PARITY_AUDIO]:
                try:
                    wav = audio.load(source / row["path"], sr)
                except (audio.AudioError, KeyError):
                    continue  # the check needs a few readable clips, not every one
                waveform_clips.append((f"audio {source / row['path']}", wav))
                if len([n for n, _ in waveform_clips if n.startswith("audio")]) >= PARITY_AUDIO:
                    break
    # Synthetic clips of several lengths exercise the padding and windowing inside the graph.
    rng = np.random.default_rng(0)
    n = fcfg.num_samples
    t = np.arange(int(1.5 * n)) / sr
    waveform_clips += [
        ("silence", np.zeros(n, np.float32)),
        ("white noise", (0.1 * rng.standard_normal(n)).astype(np.float32)),
        ("440 Hz tone, 1.5 x clip length", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)),
        (
            "noise burst, 0.3 x clip length",
            (0.3 * rng.standard_normal(int(0.3 * n))).astype(np.float32),
        ),
        (
            "noise, 2.7 x clip length (several windows)",
            (0.1 * rng.standard_normal(int(2.7 * n))).astype(np.float32),
        ),
    ]
    return feature_clips, waveform_clips


def check_parity(
    export_dir: Path,
    logits_model,
    cfg: Config,
    affine: tuple[np.ndarray, np.ndarray],
    metadata: dict[str, Any],
    feature_clips: list,
    waveform_clips: list,
) -> dict[str, Any]:
    """Reload `export_dir` and compare every endpoint with the in-memory model + calibration.

    Raises:
        ExportParityError: a clip whose probabilities differ by more than
            `cfg.export.parity_atol`, or metadata that did not survive.
    """
    import tensorflow as tf

    from deepwave_tf import features, serving
    from deepwave_tf.features import LABEL_KEYS, WAVEFORM

    loaded = tf.saved_model.load(str(export_dir))
    atol = cfg.export.parity_atol
    infer = inference_fn(logits_model)
    wave = cfg.model.uses_waveform

    def reference(feats) -> np.ndarray:
        x = features.model_inputs({k: tf.convert_to_tensor(v) for k, v in feats.items()})
        return calibration.apply_affine(np.asarray(infer(x)), *affine)

    def stacked(out) -> np.ndarray:
        return np.stack([out[k].numpy() for k in LABEL_KEYS], axis=-1)

    rows = []
    for name, feats in feature_clips:
        got = stacked(
            loaded.signatures["features"](**{k: tf.constant(v[None]) for k, v in feats.items()})
        )
        want = reference({k: v[None] for k, v in feats.items()})
        rows.append(("features", name, got[0], want[0]))
    hop_seconds, how = cfg.export.window_hop_seconds, cfg.export.aggregate
    sr = cfg.features.sample_rate_hz
    for name, wav in waveform_clips:
        # The reference cuts the windows in numpy (serving.windows) and aggregates in numpy.
        cut = serving.windows(wav, cfg.features, hop_seconds)
        feats = features.compute_features(tf.constant(cut), cfg.features)
        per_window = reference({**feats, WAVEFORM: cut} if wave else feats)
        got = stacked(loaded.signatures["serving_default"](waveform=tf.constant(wav[None])))
        rows.append(("serving_default", name, got[0], serving.aggregate(per_window, how)))
        out = loaded.signatures["windows"](waveform=tf.constant(wav[None]))
        got_windows = stacked(out)[0]  # [n_windows, 2]
        starts = serving.window_starts(len(wav), cfg.features.num_samples, round(hop_seconds * sr))
        ends = [min(s + cfg.features.num_samples, len(wav)) for s in starts]
        if got_windows.shape != per_window.shape or not (
            np.allclose(out["start_s"].numpy()[0], np.asarray(starts) / sr, atol=1e-6)
            and np.allclose(out["end_s"].numpy()[0], np.asarray(ends) / sr, atol=1e-6)
        ):
            raise ExportParityError(
                f"reloaded export {export_dir}: 'windows' on {name} gives windows "
                f"{np.round(out['start_s'].numpy()[0], 4).tolist()}-"
                f"{np.round(out['end_s'].numpy()[0], 4).tolist()} s, expected starts "
                f"{[round(s / sr, 4) for s in starts]} s"
            )
        rows.append(("windows", name, got_windows.ravel(), per_window.ravel()))

    worst = 0.0
    for endpoint, name, got, want in rows:
        diff = float(np.max(np.abs(got.astype(np.float64) - want)))
        worst = max(worst, diff)
        if not np.isfinite(diff) or diff > atol:
            raise ExportParityError(
                f"reloaded export {export_dir} differs from the in-memory model on {name} "
                f"via '{endpoint}': max |difference| = {diff:.3g} > export.parity_atol = {atol:g} "
                f"(exported {np.round(got, 7).tolist()} vs in-memory {np.round(want, 7).tolist()})"
            )
    stored = json.loads(loaded.signatures["metadata"]()["json"].numpy())
    if stored != metadata:
        raise ExportParityError(
            f"metadata read back from {export_dir} differs from what was written"
        )
    return {"max_abs_diff": worst, "atol": atol, "clips": [f"{e}: {n}" for e, n, _, _ in rows]}


# --------------------------------------------------------------------------- #
# run
# --------------------------------------------------------------------------- #
def export_dirs(run_dir: Path, out_dir: str | Path | None, stamp: str) -> tuple[Path, Path]:
    """`(export dir, the .partial dir it is built in)`; the export dir must not exist yet.

    `out_dir` None: `run_dir/export/STAMP` (`STAMP-1`, ... for two exports in one second).
    The export is written to the partial dir and renamed when verified, so a reader never
    sees half an export. Shared by the audio and text exporters.

    Raises:
        ExportError: `out_dir` exists.
    """
    if out_dir is None:
        out_dir = run_dir / "export" / stamp
        k = 1
        while out_dir.exists():  # two exports in one second
            out_dir, k = run_dir / "export" / f"{stamp}-{k}", k + 1
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise ExportError(f"export directory already exists: {out_dir}")
    partial = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    return out_dir, partial


def publish_export(partial: Path, out_dir: Path, check) -> dict[str, Any]:
    """Run `check()` (the parity check of the export built in `partial`); if it passes, write
    its result as `parity.json` and rename `partial` to `out_dir`. A failing export is kept
    beside it as `.NAME.failed`, for a look, and the error re-raised. Shared by the audio and
    text exporters.
    """
    try:
        parity = check()
    except ExportParityError:
        failed = out_dir.parent / f".{out_dir.name}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        partial.rename(failed)
        raise
    (partial / "parity.json").write_text(json.dumps(parity, indent=2) + "\n")
    partial.rename(out_dir)
    return parity


def timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import deepwave_tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "deepwave_tf": deepwave_tf.__version__,
    }


def run(
    run_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    records: str | Path | None = None,
    calibrate: bool | None = None,
    overrides: Sequence[str] = (),
    config: str | Path | None = None,
    verbose: bool = True,
) -> Path:
    """Export `run_dir/model.keras` as a calibrated, verified SavedModel.

    Args:
        run_dir: a fit run directory (`config.json`, `model.keras`, `run.json`).
        out_dir: export directory (default `run_dir/export/TIMESTAMP`).
        records: records directory for calibration and the parity clips
            (default: the one named in `run_dir/run.json`).
        calibrate: calibrate on the validation split as `export.calibration` says
            (default: `export.calibrate` of the run's config; False: identity).
        overrides: `export.key=value` overrides of the run's config.
        config: a TOML config whose `[export]` section applies before `overrides`.
        verbose: print calibration metrics and the parity summary.

    Returns:
        The export directory.

    Raises:
        ExportError: missing run files or records, an empty validation split.
        ExportParityError: the reloaded export does not match the model.
        ConfigError, ManifestError: unusable config overrides / records.
    """
    from deepwave_tf import model as model_lib
    from deepwave_tf import records as records_lib
    from deepwave_tf.features import LABEL_KEYS

    say = print if verbose else (lambda *a, **k: None)
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides, config)
    calibrate = cfg.export.calibrate if calibrate is None else calibrate
    records_dir = find_records(run_dir, records)
    if records_dir is not None:
        if not records_dir.is_dir():
            raise ExportError(f"records directory not found: {records_dir} (pass --records DIR)")
        records_lib.check_manifest(
            records_lib.read_manifest(records_dir), cfg.features, records_dir
        )
    elif calibrate:
        raise ExportError(
            f"calibration needs the validation records, but {run_dir / 'run.json'} names none; "
            "pass --records DIR or --no-calibrate"
        )

    model = load_model(run_dir)
    logits_model = model_lib.logits_model(model)

    if calibrate:
        logits, targets, clips = calibration_set(logits_model, records_dir, cfg)
        calib = fit_calibration(logits, targets, cfg.model.head, cfg.export, clips)
        passes = len(clips) // max(1, calib.n_val)
        say(
            f"calibration (export.calibration = {cfg.export.calibration}) on {calib.n_val} "
            f"validation clips of {records_dir}"
            f"{f', {passes} mixing passes' if passes > 1 else ''}"
            f"{' (one shared map: softmax head)' if calib.shared else ''}:"
        )
        say(calibration.format_choice(calib.outputs))
        say(calibration.format_report(calib.report))
        for w in calib.warnings:
            say(f"warning: {w}")
    else:
        calib = Calibration(
            np.ones(2),
            np.zeros(2),
            False,
            False,
            0,
            {},
            [],
            calibration.Fitted.identity(LABEL_KEYS, "calibration off").details,
        )
        say("calibration: off (scale 1, bias 0)")

    metadata = {
        "format": FORMAT,
        "created_utc": timestamp(),
        "run_dir": str(run_dir.resolve()),
        "records": str(records_dir.resolve()) if records_dir else None,
        "config": cfg.to_dict(),
        "feature_config": cfg.to_dict()["features"],
        "feature_hash": cfg.features.hash(),
        "labels": list(LABEL_KEYS),
        "temperatures": [float(t) for t in calib.temperatures],
        "calibration": calibration_metadata(calib),
        "signatures": {
            "serving_default": "waveform float32 [batch, samples] mono at "
            f"{cfg.features.sample_rate_hz} Hz, any length (scored in "
            f"{cfg.features.clip_seconds} s windows every {cfg.export.window_hop_seconds} s, "
            f"combined by {cfg.export.aggregate}) -> fake, real [batch] calibrated probabilities",
            "windows": "waveform as serving_default -> fake, real, start_s, end_s "
            "[batch, windows]: every window's probabilities and its first and last second",
            "features": f"mfcc [batch, {cfg.features.num_frames}, {cfg.features.n_mfcc}], "
            f"mel (dB) [batch, {cfg.features.n_mels}, {cfg.features.num_frames}]"
            + (
                f", waveform [batch, {cfg.features.num_samples}] (the window's samples)"
                if cfg.model.uses_waveform
                else ""
            )
            + " -> fake, real",
            "metadata": "() -> json: this document",
        },
        "versions": _versions(),
    }

    out_dir, partial = export_dirs(run_dir, out_dir, metadata["created_utc"])

    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / METADATA_ASSET
        meta_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        build_archive(logits_model, cfg, calib.affine, meta_path).write_out(
            str(partial), verbose=False
        )

    feature_clips, waveform_clips = parity_inputs(records_dir, cfg)
    parity = publish_export(
        partial,
        out_dir,
        lambda: check_parity(
            partial, logits_model, cfg, calib.affine, metadata, feature_clips, waveform_clips
        ),
    )
    say(
        f"reloaded and checked on {len(parity['clips'])} clips "
        f"({len(feature_clips)} stored-feature records, {len(waveform_clips)} waveforms): "
        f"max |difference| = {parity['max_abs_diff']:.2g} <= {parity['atol']:g}"
    )
    say(
        "calibration kept: "
        + ", ".join(
            f"{k} {calib.outputs[k]['method']} (scale {a:.4f}, bias {b:+.4f})"
            for k, a, b in zip(LABEL_KEYS, calib.scale, calib.bias)
        )
    )
    say(f"exported: {out_dir}")
    return out_dir


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.export",
        description="Export a trained run as a calibrated SavedModel taking raw audio.",
    )
    parser.add_argument(
        "--run-dir", type=Path, required=True, help="run directory of deepwave_tf.fit"
    )
    parser.add_argument(
        "--records",
        type=Path,
        default=None,
        help="records directory for calibration (default: the one in RUN_DIR/run.json)",
    )
    parser.add_argument(
        "--no-calibrate", action="store_true", help="export uncalibrated (scale 1, bias 0)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="export directory (default RUN_DIR/export/TIMESTAMP)"
    )
    cli.add_config_arguments(parser, sections=("export",), default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.quiet_tensorflow()
    try:  # --config/--set typos are reported before TensorFlow loads
        load_config(args.config, args.overrides, sections=("export",), context="at export time")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from deepwave_tf.records import ManifestError

    try:
        run(
            args.run_dir,
            out_dir=args.out,
            records=args.records,
            calibrate=False if args.no_calibrate else None,
            overrides=args.overrides,
            config=args.config,
        )
    except (ConfigError, ManifestError, ExportError, calibration.CalibrationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
