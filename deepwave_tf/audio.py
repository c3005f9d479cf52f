"""Audio decoding: any supported file -> mono float32 at the configured rate.

Two backends:
- `soundfile` (default): libsndfile decodes ogg/wav/flac (and mp3 where the
  bundled libsndfile supports it), soxr resamples; runs outside the graph, in
  decode threads (libsndfile releases the GIL).
- `tfio`: tensorflow-io decodes inside the graph (usable in tf.data maps).
  tensorflow-io is unmaintained and its compiled ops only load with the pinned
  TensorFlow; a load failure becomes an `AudioBackendError` with the fix.

Errors are `AudioError(path, reason)`: callers record them, never crash on them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

SUPPORTED_SUFFIXES = (".ogg", ".wav", ".flac", ".mp3", ".oga", ".aif", ".aiff")


class AudioError(Exception):
    """A file that cannot be decoded into audio; `reason` says why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class AudioBackendError(RuntimeError):
    """The requested decoding backend cannot be used on this machine."""


def load_soundfile(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """Decode `path` with soundfile, fold to mono, resample to `sample_rate_hz`.

    Returns:
        `[samples]` float32.

    Raises:
        AudioError: missing, empty, truncated, corrupt or non-audio file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError/TypeError
        raise AudioError(path, f"cannot decode audio ({type(e).__name__}: {e})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "decoded to 0 samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(path, "decoded samples contain NaN or inf")
    return resample(mono, rate, sample_rate_hz)


def resample(waveform: np.ndarray, rate_hz: int, target_hz: int) -> np.ndarray:
    """soxr high-quality resampling (librosa's default); a no-op at equal rates."""
    if rate_hz == target_hz:
        return np.ascontiguousarray(waveform, dtype=np.float32)
    import soxr

    return soxr.resample(waveform, rate_hz, target_hz, quality="HQ").astype(np.float32)


@functools.lru_cache(maxsize=1)
def tfio_module():
    """Import tensorflow_io, turning the known load failures into one clear error."""
    try:
        import tensorflow_io as tfio

        tfio.audio.decode_wav  # noqa: B018  (touch the op library: fails if it cannot load)
        return tfio
    except Exception as e:  # ImportError, NotFoundError (undefined symbol), ...
        raise AudioBackendError(
            "tensorflow-io cannot be used here "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}). "
            "It only loads with the pinned tensorflow-cpu==2.17.1; "
            "use --set prep.backend=soundfile (the default) instead."
        ) from e


def tfio_available() -> bool:
    try:
        tfio_module()
        return True
    except AudioBackendError:
        return False


def load(path: str | Path, sample_rate_hz: int, backend: str = "soundfile") -> np.ndarray:
    """Decode one file with the chosen backend: `[samples]` float32 mono."""
    if backend == "soundfile":
        return load_soundfile(path, sample_rate_hz)
    if backend == "tfio":
        return load_tfio(path, sample_rate_hz)
    raise ValueError(f"unknown audio backend {backend!r}")


def load_tfio(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """Decode one file with tensorflow-io (eager); same contract as `load_soundfile`."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    import tensorflow as tf

    try:
        waveform = decode_tfio(tf.io.read_file(str(path)), path.suffix.lower(), sample_rate_hz)
        waveform = waveform.numpy()
    except AudioBackendError:
        raise
    except Exception as e:
        raise AudioError(path, f"cannot decode audio ({type(e).__name__}: {e})") from None
    if waveform.shape[0] == 0:
        raise AudioError(path, "decoded to 0 samples")
    return waveform


def decode_tfio(contents, suffix: str, sample_rate_hz: int):
    """In-graph decode of encoded bytes with tensorflow-io: `[samples]` float32 mono."""
    import tensorflow as tf

    tfio = tfio_module()
    if suffix in (".ogg", ".oga"):
        audio = tfio.audio.decode_vorbis(contents)
        rate = None
    elif suffix == ".wav":
        audio, rate = tf.audio.decode_wav(contents)  # float32 in [-1, 1], core TF
    elif suffix == ".flac":
        audio = tfio.audio.decode_flac(contents, dtype=tf.int16)
        audio = tf.cast(audio, tf.float32) / 32768.0
        rate = None
    elif suffix == ".mp3":
        audio = tfio.audio.decode_mp3(contents)
        rate = None
    else:
        raise AudioError(suffix, f"tfio backend cannot decode {suffix!r} files")
    if rate is None:
        # tfio's decode_* ops do not return the rate; AudioIOTensor reads it from the header.
        raise AudioBackendError("internal: rate must be read with AudioIOTensor")
    mono = tf.reduce_mean(tf.cast(audio, tf.float32), axis=-1)
    if int(rate) != sample_rate_hz:
        mono = tfio.audio.resample(mono, int(rate), sample_rate_hz)
    return mono
