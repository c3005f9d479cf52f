"""The one TFRecord schema: the same spec writes (prep) and parses (data, export tests).

A record holds:
- `id` (bytes), `fake`, `real` (int64 0/1 targets; -1 = unknown, for test clips),
- the config's front-end tensors, `FeatureConfig.feature_keys` (by default `mfcc`
  `[num_frames, n_mfcc]` and `mel`; also `linear`, `lfcc`, `phase`: see
  features.py), float32 as raw little-endian bytes (`tf.io.decode_raw`: read
  speed matters more than disk),
- optionally `waveform` `[num_samples]` float32 raw bytes.

The band-major tensors (mel, linear, phase) are stored time-major, e.g. mel as
`[num_frames, n_mels]` (`MEL_LAYOUT`, also in the manifest): the training
augmentation works time-major, and reading it that way saves it a transpose
per batch. Parsers hand them back band-major, `[n_mels, num_frames]` like
everywhere else in deepwave_tf, unless asked for `time_major_mel`. Records
from before this layout (manifest without `mel_layout`) hold the mel band-major
and still parse: `mel_layout(manifest)`.

Shard names follow tensorflow/datasets: `NAME-SPLIT.tfrecord-00000-of-00008`.
`manifest.json` sits beside the shards with the feature config and its hash;
consumers call `check_manifest` and refuse records made with other features.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf.config import _LATER_FIELDS, FeatureConfig
from deepwave_tf.features import FEATURE_KEYS, LABEL_KEYS, MEL, WAVEFORM

ID = "id"
UNKNOWN_LABEL = -1
MEL_LAYOUT = "time"  # how prep stores the mel: "time" = [frames, n_mels]; older records "band"
MEL_LAYOUTS = ("time", "band")
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "unseen", "test")  # "unseen": held-out generators (prep.holdout)
GENERATOR = (
    "generator"  # optional per-record bytes: how the clip was made (meta / vocoder / augmentation)
)


class ManifestError(ValueError):
    """Records that do not match what the caller expects."""


def shard_name(name: str, split: str, index: int, total: int) -> str:
    """`NAME-SPLIT.tfrecord-00000-of-00008` (tensorflow/datasets naming)."""
    return f"{name}-{split}.tfrecord-{index:05d}-of-{total:05d}"


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #
def _bytes(value: bytes):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value: int):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_example(
    example_id: str,
    features: Mapping[str, np.ndarray],
    fake: int,
    real: int,
    waveform: np.ndarray | None = None,
    generator: str = "",
) -> bytes:
    """One `tf.train.Example`, serialised. Arrays are written as float32 little-endian.

    `generator` (written when not empty) says how the clip was made: the
    `generator` column of meta.csv, `vocode:NAME` for a copy-synthesis fake, or
    `wavaug:A+B` for an augmented view. Training never reads it; the unseen-generator
    benchmark and per-generator reports do (`read_ids_and_generators`).

    `features` holds the front-end tensors by key, as `features.compute_features`
    returns them (`features[MEL]` band-major `[n_mels, frames]`); the band-major
    ones are written in `MEL_LAYOUT` (time-major).
    """
    import tensorflow as tf

    feature = {ID: _bytes(example_id.encode())}
    for key, value in features.items():
        value = np.asarray(value, "<f4")
        if not FeatureConfig.time_major(key):
            value = np.ascontiguousarray(value.T)
        feature[key] = _bytes(value.tobytes())
    feature[LABEL_KEYS[0]] = _int64(fake)
    feature[LABEL_KEYS[1]] = _int64(real)
    if waveform is not None:
        feature[WAVEFORM] = _bytes(np.asarray(waveform, "<f4").tobytes())
    if generator:
        feature[GENERATOR] = _bytes(generator.encode())
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


# --------------------------------------------------------------------------- #
# Parsing
# --------------------------------------------------------------------------- #
def feature_spec(with_waveform: bool = False, keys: Sequence[str] = FEATURE_KEYS) -> dict[str, Any]:
    """The parse spec of a record holding the front-end tensors `keys` (default mfcc, mel)."""
    import tensorflow as tf

    spec = {ID: tf.io.FixedLenFeature([], tf.string)}
    spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in keys})
    spec[LABEL_KEYS[0]] = tf.io.FixedLenFeature([], tf.int64)
    spec[LABEL_KEYS[1]] = tf.io.FixedLenFeature([], tf.int64)
    if with_waveform:
        spec[WAVEFORM] = tf.io.FixedLenFeature([], tf.string)
    return spec


def read_ids_and_generators(records_dir: str | Path, split: str) -> list[tuple[str, str]]:
    """`(id, generator)` of every record of `split`, in shard order ("" = not recorded)."""
    import tensorflow as tf

    spec = {
        ID: tf.io.FixedLenFeature([], tf.string),
        GENERATOR: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    out = []
    compression = read_manifest(records_dir).get("compression", "") or ""
    for path in shard_paths(records_dir, split):
        for rec in tf.data.TFRecordDataset(str(path), compression_type=compression).batch(256):
            parsed = tf.io.parse_example(rec, spec)
            out += [
                (i.decode(), g.decode())
                for i, g in zip(parsed[ID].numpy(), parsed[GENERATOR].numpy())
            ]
    return out


def mel_layout(manifest: Mapping[str, Any]) -> str:
    """How the records of `manifest` store the mel: "time", or "band" (records
    written before `mel_layout` entered the manifest)."""
    layout = manifest.get("mel_layout", "band")
    if layout not in MEL_LAYOUTS:
        raise ManifestError(
            f"unknown mel_layout {layout!r} in {MANIFEST} (known: {', '.join(MEL_LAYOUTS)}): "
            "records written by a newer deepwave_tf?"
        )
    return layout


def make_parser(
    cfg: FeatureConfig,
    with_waveform: bool = False,
    batched: bool = False,
    skip: Sequence[str] = (),
    *,
    stored_layout: str = MEL_LAYOUT,
    time_major_mel: bool = False,
):
    """A function serialized -> dict of tensors with exact static shapes.

    With `batched=True` it parses a `[batch]` vector of records at once
    (`tf.io.parse_example`), which is much faster inside tf.data. `skip` names
    keys not to parse (e.g. `("id", "mfcc")` when augmentation recomputes the
    MFCC anyway): less copying per record. `stored_layout` is how the records
    hold the band-major tensors (`mel_layout(manifest)`).

    Returns dict keys: id (string), each of `cfg.feature_keys` at
    `cfg.feature_shape(key)` (by default mfcc `[..., frames, n_mfcc]`, mel
    `[..., n_mels, frames]`; mel `[..., frames, n_mels]` with `time_major_mel`),
    fake, real (int64), and waveform `[..., samples]` when requested; minus `skip`.
    """
    import tensorflow as tf

    keys = cfg.feature_keys
    unknown = set(skip) - {ID, WAVEFORM, *keys}
    if unknown:
        raise ValueError(
            f"cannot skip {sorted(unknown)}: only id, waveform or one of {', '.join(keys)}"
        )
    if stored_layout not in MEL_LAYOUTS:
        raise ValueError(f"stored_layout must be one of {MEL_LAYOUTS}, not {stored_layout!r}")
    spec = {k: v for k, v in feature_spec(with_waveform, keys).items() if k not in skip}
    stored_time_major = stored_layout == "time"
    # Band-major tensors lie time-major on disk in the "time" layout; they come out
    # band-major, except the mel with `time_major_mel`.
    shapes, transposed = {}, set()
    for key in keys:
        shape = list(cfg.feature_shape(key))
        if not cfg.time_major(key):
            want_time_major = key == MEL and time_major_mel
            if stored_time_major:
                shape = shape[::-1]
            if stored_time_major != want_time_major:
                transposed.add(key)
        shapes[key] = shape
    if with_waveform:
        shapes[WAVEFORM] = [cfg.num_samples]
    shapes = {k: v for k, v in shapes.items() if k in spec}

    def parse(serialized):
        if batched:
            parsed = tf.io.parse_example(serialized, spec)
        else:
            parsed = tf.io.parse_single_example(serialized, spec)
        out = {k: parsed[k] for k in (ID, *LABEL_KEYS) if k in spec}
        for key, shape in shapes.items():
            flat = tf.io.decode_raw(parsed[key], tf.float32, little_endian=True)
            lead = [-1] if batched else []
            out[key] = tf.reshape(flat, lead + shape)
            if key in transposed:
                rank = len(out[key].shape)
                out[key] = tf.transpose(out[key], list(range(rank - 2)) + [rank - 1, rank - 2])
        return out

    return parse


# --------------------------------------------------------------------------- #
# Manifest
# --------------------------------------------------------------------------- #
def read_manifest(records_dir: str | Path) -> dict[str, Any]:
    path = Path(records_dir) / MANIFEST
    if not path.is_file():
        raise ManifestError(
            f"no {MANIFEST} in {records_dir}: not a prep output "
            "(run `python -m deepwave_tf.prep --data DIR --out tfrecords/NAME` first)"
        )
    return json.loads(path.read_text())


def write_manifest(records_dir: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write atomically (temp file + rename)."""
    path = Path(records_dir) / MANIFEST
    write_json_atomic(path, manifest)
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """`obj` as JSON at `path` via a temp file and a rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def check_manifest(manifest: Mapping[str, Any], cfg: FeatureConfig, where: str = "") -> None:
    """Refuse records whose feature config differs from `cfg`, naming the fields.

    Raises:
        ManifestError: hash mismatch, with every differing field and both values.
    """
    if manifest.get("feature_hash") == cfg.hash():
        return
    # A field the manifest omits has its default (`FeatureConfig.hashed_fields`).
    stored = {**_LATER_FIELDS, **manifest.get("feature_config", {})}
    ours = dataclasses.asdict(cfg)
    diffs = [
        f"{key}: records have {stored.get(key, '<missing>')!r}, config has {ours[key]!r}"
        for key in sorted(set(ours) | set(stored))
        if _plain(stored.get(key)) != _plain(ours.get(key))
    ]
    detail = "; ".join(diffs) if diffs else "hash differs"
    raise ManifestError(
        f"records{' in ' + str(where) if where else ''} were made with other features "
        f"(hash {manifest.get('feature_hash')} != {cfg.hash()}): {detail}. "
        "Re-run prep with this config, or train with the config the records were made with."
    )


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def feature_config_from_manifest(manifest: Mapping[str, Any]) -> FeatureConfig:
    return FeatureConfig(**manifest["feature_config"])


def shard_paths(records_dir: str | Path, split: str) -> list[Path]:
    """The shard files of `split` listed in the manifest, checked to exist."""
    records_dir = Path(records_dir)
    manifest = read_manifest(records_dir)
    names = manifest.get("shards", {}).get(split)
    if not names:
        raise ManifestError(
            f"{records_dir} has no '{split}' split (splits: {list(manifest.get('shards', {}))})"
        )
    paths = [records_dir / n for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ManifestError(f"shards listed in {MANIFEST} are missing: {', '.join(missing)}")
    return paths
