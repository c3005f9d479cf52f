"""Using an export: load it, score files in a tf.data pipeline, keep the per-window timeline.

Shared by `predict`, `submit`, `evaluate` and `serve`, so all of them score a file the same way:

1. decode (`audio.load`: any supported format, mono, resampled to the export's
   `sample_rate_hz`) in parallel `tf.numpy_function` maps;
2. call the export's `windows` signature on the decoded samples (consecutive
   files of equal length share a call): inside the graph a clip no longer
   than `clip_seconds` is one window, zero-padded exactly as
   `features.fix_length` pads; a longer clip gives windows starting every
   `export.window_hop_seconds`, plus one ending at the clip's end, so every
   sample is scored (`features.frame_windows`);
3. combine a file's window scores per output with `max` (default: "is a fake
   voice present anywhere in the file?") or `mean`, as `serving_default`
   does in the graph with the export's `export.aggregate`.

`window_starts`, `windows` and `aggregate` below are the numpy reference of
that graph code: the exporter's parity check compares the two, and they
still score files with a hop other than the export's (`predict --hop`) or
with an export made before the `windows` signature existed.

For the challenge's 5 s test clips (= the window) steps 2 and 3 do nothing: a
file is one window and its scores are the file's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf.config import Config, FeatureConfig, config_from_dict

METADATA_ASSET = "deepwave.json"
SIGNATURE = "serving_default"
WINDOWS_SIGNATURE = "windows"


class ExportError(ValueError):
    """An export directory that cannot be used (missing, not a deepwave export, broken)."""


# --------------------------------------------------------------------------- #
# Finding and loading an export
# --------------------------------------------------------------------------- #
def resolve_export_dir(path: str | Path) -> Path:
    """The SavedModel directory for `path`.

    Accepts an export directory itself (`runs/NAME/export/TIMESTAMP`), a
    run's `export/` directory or a run directory: the latter two resolve to
    their newest export (timestamps sort in time order).

    Raises:
        ExportError: nothing usable at `path`.
    """
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.exists():
        raise ExportError(f"model not found: {path}")
    parent = path / "export" if (path / "export").is_dir() else path
    # Hidden names are exports being written or that failed their parity check.
    candidates = sorted(
        p
        for p in parent.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "saved_model.pb").is_file()
    )
    if not candidates:
        raise ExportError(
            f"{path} is not a SavedModel export (no saved_model.pb) and holds no exports; "
            "run `python -m deepwave_tf.export --run-dir runs/NAME` first"
        )
    return candidates[-1]


def read_metadata(export_dir: str | Path) -> dict[str, Any]:
    """The export's `assets/deepwave.json` (config, labels, temperatures, calibration)."""
    path = Path(export_dir) / "assets" / METADATA_ASSET
    if not path.is_file():
        raise ExportError(f"{export_dir} has no assets/{METADATA_ASSET}: not a deepwave_tf export")
    return json.loads(path.read_text())


class ExportedModel:
    """A loaded export: `model(waveforms [B, samples]) -> [B, 2]` probabilities (fake, real).

    Attributes:
        path: the export directory.
        metadata: `assets/deepwave.json`.
        config: the resolved training `Config`.
        features: its `FeatureConfig` (sample rate, window length).
        labels: output names, `("fake", "real")`.
        temperatures: `[2]` calibration temperatures baked into the graph.
    """

    def __init__(self, path: str | Path):
        import tensorflow as tf

        self.path = resolve_export_dir(path)
        self.metadata = read_metadata(self.path)
        self.config: Config = config_from_dict(self.metadata["config"], source=str(self.path))
        self.features: FeatureConfig = self.config.features
        self.labels: tuple[str, ...] = tuple(self.metadata["labels"])
        self.temperatures = np.asarray(self.metadata["temperatures"], np.float64)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except Exception as e:  # a truncated or foreign SavedModel
            raise ExportError(f"cannot load SavedModel {self.path}: {type(e).__name__}: {e}") from e
        if SIGNATURE not in self._loaded.signatures:
            raise ExportError(f"{self.path} has no '{SIGNATURE}' signature")
        self._serve = self._loaded.signatures[SIGNATURE]
        # Exports made before in-graph windowing have no `windows` signature.
        self._windows = self._loaded.signatures.get(WINDOWS_SIGNATURE)

    def __call__(self, waveforms: Any) -> np.ndarray:
        """Probabilities `[batch, 2]` (columns = `labels`) of `[batch, samples]` float32 waveforms."""
        import tensorflow as tf

        out = self._serve(waveform=tf.convert_to_tensor(waveforms, tf.float32))
        return np.stack([out[k].numpy() for k in self.labels], axis=-1)

    def window_scores(self, waveforms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-window probabilities of equal-length clips, windowed inside the graph.

        Args:
            waveforms: `[batch, samples]` float32 at `features.sample_rate_hz`.

        Returns:
            `(probs [batch, n_windows, 2], start_s [n_windows], end_s [n_windows])`.
        """
        import tensorflow as tf

        waveforms = np.asarray(waveforms, np.float32)
        if self._windows is None:  # an older export: the numpy reference windows
            hop = self.config.export.window_hop_seconds
            probs = np.stack([self(windows(w, self.features, hop)) for w in waveforms])
            start_s, end_s = window_times(waveforms.shape[1], self.features, hop)
            return probs, start_s, end_s
        out = self._windows(waveform=tf.constant(waveforms))
        probs = np.stack([out[k].numpy() for k in self.labels], axis=-1)
        return probs, out["start_s"].numpy()[0], out["end_s"].numpy()[0]

    @property
    def window_seconds(self) -> float:
        return self.features.clip_seconds

    @property
    def hop_seconds(self) -> float:
        return self.config.export.window_hop_seconds


def load_export(path: str | Path) -> ExportedModel:
    """Load an export (see `resolve_export_dir` for what `path` may be)."""
    return ExportedModel(path)


# --------------------------------------------------------------------------- #
# Windows
# --------------------------------------------------------------------------- #
def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows covering a clip of `num_samples`.

    One window (start 0) when the clip fits; otherwise starts `0, hop, 2 hop, ...`
    while the window stays inside the clip, plus a last one ending at the clip's end.
    """
    if num_samples <= window:
        return [0]
    hop = max(int(hop), 1)
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] != num_samples - window:
        starts.append(num_samples - window)
    return starts


def windows(waveform: np.ndarray, cfg: FeatureConfig, hop_seconds: float) -> np.ndarray:
    """Cut a clip into scoring windows.

    Args:
        waveform: `[samples]` float32 at `cfg.sample_rate_hz`.
        cfg: feature config of the export (window = `cfg.num_samples`).
        hop_seconds: hop between window starts of a longer clip.

    Returns:
        `[n_windows, cfg.num_samples]` float32. A clip no longer than the window
        is zero-padded as `features.fix_length` does (`cfg.pad`).
    """
    size = cfg.num_samples
    n = waveform.shape[0]
    if n <= size:
        missing = size - n
        before = missing // 2 if cfg.pad == "center" else 0
        return np.pad(waveform, (before, missing - before)).astype(np.float32)[None]
    hop = int(round(hop_seconds * cfg.sample_rate_hz))
    return np.stack([waveform[s : s + size] for s in window_starts(n, size, hop)]).astype(
        np.float32
    )


def window_times(
    num_samples: int, cfg: FeatureConfig, hop_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """First and last second `([n_windows], [n_windows])` of each window in the clip.

    A padded clip's single window ends at the clip's end.
    """
    sr = cfg.sample_rate_hz
    hop = max(int(round(hop_seconds * sr)), 1)
    starts = np.asarray(window_starts(num_samples, cfg.num_samples, hop), np.float64)
    ends = np.minimum(starts + cfg.num_samples, num_samples)
    return starts / sr, ends / sr


def aggregate(scores: np.ndarray, how: str) -> np.ndarray:
    """`[n_windows, 2]` -> `[2]` by `max` or `mean` over windows."""
    if how == "max":
        return scores.max(axis=0)
    if how == "mean":
        return scores.mean(axis=0)
    raise ValueError(f"aggregate must be 'max' or 'mean', got {how!r}")


# --------------------------------------------------------------------------- #
# Scoring files
# --------------------------------------------------------------------------- #
@dataclasses.dataclass
class FileScore:
    """The score of one file; `error` is set (and the scores NaN) when it could not be read."""

    path: str
    seconds: float = math.nan
    windows: int = 0
    fake: float = math.nan
    real: float = math.nan
    error: str = ""
    # (start_s, end_s, fake, real) of every window, in time order.
    timeline: list[tuple[float, float, float, float]] = dataclasses.field(default_factory=list)
    native_rate_hz: int | None = None  # the file's own sample rate (before resampling)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def warning(self) -> str | None:
        """`audio.low_rate_warning` for this file (a rate below 16 kHz), else None."""
        from deepwave_tf import audio

        return audio.low_rate_warning(self.path, self.native_rate_hz) if self.ok else None


def score_files(
    model: ExportedModel,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 32,
    hop_seconds: float | None = None,
    how: str | None = None,
    workers: int | None = None,
    backend: str = "soundfile",
    progress: bool = True,
    desc: str = "scoring",
) -> list[FileScore]:
    """Score every file; never raises for a bad file (its `FileScore.error` says why).

    Decoding runs in a parallel tf.data map (`tf.numpy_function` around
    `audio.load`; libsndfile and soxr release the GIL). Consecutive files of
    the same length (the challenge's 5 s clips) share one call of the
    export's `windows` signature, up to `batch_size` windows per call.

    Args:
        model: a loaded export.
        paths: audio files, any supported format and length.
        batch_size: windows per SavedModel call (a longer file is one call).
        hop_seconds: hop between windows of long clips (default: the export's
            `export.window_hop_seconds`, windowed in the graph; another hop
            is cut in numpy by `windows` and scored window by window).
        how: window aggregation, "max" | "mean" (default: `export.aggregate`).
        workers: parallel decodes (default: tf.data AUTOTUNE).
        backend: `audio.load` backend.
        progress: show a tqdm bar.

    Returns:
        One `FileScore` per path, in the order of `paths`, with its timeline.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from deepwave_tf import audio

    fcfg = model.features
    in_graph = hop_seconds is None or hop_seconds == model.hop_seconds
    hop_seconds = model.hop_seconds if hop_seconds is None else hop_seconds
    hop = max(int(round(hop_seconds * fcfg.sample_rate_hz)), 1)
    how = model.config.export.aggregate if how is None else how
    aggregate(np.zeros((1, 2)), how)  # validate now, not after decoding everything
    results = [FileScore(str(p)) for p in paths]

    def decode(index):
        i = int(index)
        try:
            wav = audio.load(paths[i], fcfg.sample_rate_hz, backend)
            results[i].seconds = wav.shape[0] / fcfg.sample_rate_hz
            results[i].native_rate_hz = audio.native_rate_hz(paths[i])
        except audio.AudioError as e:
            wav, results[i].error = np.zeros(0, np.float32), e.reason
        except Exception as e:  # one odd file must never stop the run
            wav = np.zeros(0, np.float32)
            results[i].error = f"unexpected decode error ({type(e).__name__}: {e})"
        return wav.astype(np.float32, copy=False), np.int64(i)

    def decode_map(index):
        wav, owner = tf.numpy_function(decode, [index], (tf.float32, tf.int64), stateful=False)
        wav.set_shape([None])
        owner.set_shape([])
        return wav, owner

    def finish(i: int, probs: np.ndarray, start_s: np.ndarray, end_s: np.ndarray) -> None:
        r = results[i]
        r.windows = len(probs)
        r.timeline = [
            (float(s), float(e), float(p[0]), float(p[1])) for s, e, p in zip(start_s, end_s, probs)
        ]
        r.fake, r.real = (float(v) for v in aggregate(probs, how))

    # Parallel decodes, results kept in file order (each file's error is set
    # before its element is yielded).
    ds = tf.data.Dataset.range(len(results))
    ds = ds.map(decode_map, num_parallel_calls=workers or tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(2)

    pending: list[tuple[int, np.ndarray]] = []  # equal-length decoded files awaiting a call
    bar = tqdm(total=len(results), unit="file", desc=desc, disable=not progress, dynamic_ncols=True)

    def flush() -> None:
        if pending:
            probs, start_s, end_s = model.window_scores(np.stack([w for _, w in pending]))
            for (i, _), p in zip(pending, probs):
                finish(i, p, start_s, end_s)
            bar.update(len(pending))
            pending.clear()

    try:
        for wav, owner in ds:
            i, wav = int(owner), wav.numpy()
            if results[i].error:
                bar.update(1)
                continue
            if not in_graph:  # another hop than the export's: numpy windows
                cut = windows(wav, fcfg, hop_seconds)
                probs = np.concatenate(
                    [model(cut[k : k + batch_size]) for k in range(0, len(cut), batch_size)]
                )
                finish(i, probs, *window_times(len(wav), fcfg, hop_seconds))
                bar.update(1)
                continue
            n_windows = len(window_starts(len(wav), fcfg.num_samples, hop))
            if pending and (
                len(wav) != len(pending[0][1]) or (len(pending) + 1) * n_windows > batch_size
            ):
                flush()
            pending.append((i, wav))
        flush()
    finally:
        bar.close()
    return results
