"""Audio decoding: any supported file -> mono float32 at the configured rate.

Two backends:
- `soundfile` (default): libsndfile decodes ogg/wav/flac (and mp3 where the
  bundled libsndfile supports it), soxr resamples; runs outside the graph, in
  decode threads (libsndfile releases the GIL).
- `tfio`: tensorflow-io decodes inside the graph (`decode_tfio`, usable in
  tf.data maps; `load_tfio` for single files). tensorflow-io is unmaintained
  and its compiled ops only load with the pinned TensorFlow; a load failure
  becomes an `AudioBackendError` with the fix. Its vorbis decoder is ~8x
  slower than libsndfile here (benchmarks/bench_prep.py), so soundfile is the
  default.

Errors are `AudioError(path, reason)`: callers record them, never crash on them.
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

SUPPORTED_SUFFIXES = (".ogg", ".wav", ".flac", ".mp3", ".oga", ".aif", ".aiff")


# Files recorded below this rate lack the upper band the training audio has (the
# model sees 0-16 kHz at 32 kHz; telephone-band 8 kHz audio stops at 4 kHz), so
# resampling makes them decodable but not like the training data.
MIN_NATIVE_RATE_HZ = 16000


class AudioError(Exception):
    """A file that cannot be decoded into audio; `reason` says why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class AudioBackendError(RuntimeError):
    """The requested decoding backend cannot be used on this machine."""


def check_file(path: Path) -> None:
    """Checks both backends share, before decoding.

    Raises:
        AudioError: missing path, a directory, an empty file, or an Ogg stream
            cut short (decoders silently return the audio before the cut).
    """
    problem = path_problem(path)
    if problem:
        raise AudioError(path, problem)
    size = path.stat().st_size
    with open(path, "rb") as f:
        problem = content_problem(f, size)
    if problem:
        raise AudioError(path, problem)


def content_problem(f: BinaryIO, size: int) -> str | None:
    """Why the `size` bytes of seekable `f` are a cut Ogg or WAV file, or None.

    One check for a file on disk (`check_file`) and bytes in memory
    (`decode_bytes_with_rate`, the server's uploads).
    """
    f.seek(0)
    head = f.read(12)
    if head[:4] == b"OggS":
        f.seek(max(0, size - _OGG_MAX_PAGE))
        reason = ogg_tail_problem(f.read())
        if reason:
            return f"truncated Ogg file: {reason}"
    elif head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        reason = _wav_problem(f, size)
        if reason:
            return f"truncated WAV file: {reason}"
    return None


def path_problem(path: str | Path) -> str | None:
    """Why `path` cannot be an audio file without opening it (missing, a directory,
    not readable, empty), or None. Cheap: callers check every path before decoding any."""
    path = Path(path)
    if not path.exists():
        return "file not found"
    if path.is_dir():
        return "is a directory, not an audio file"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


_OGG_MAX_PAGE = 27 + 255 + 255 * 255  # header + segment table + body


def ogg_tail_problem(tail: bytes) -> str | None:
    """Why the last Ogg page in `tail` (the file's last bytes) shows a cut file, or None.

    A complete stream ends with a whole page flagged end-of-stream (0x04);
    truncation leaves a partial last page, or a last page without that flag.
    Candidates are tried from the end because "OggS" can occur inside data.
    """
    start = tail.rfind(b"OggS")
    while start >= 0:
        header_ok = len(tail) - start >= 27 and tail[start + 4] == 0
        if header_ok:
            n_segments = tail[start + 26]
            table = tail[start + 27 : start + 27 + n_segments]
            end = start + 27 + n_segments + sum(table)
            if len(table) == n_segments and end == len(tail):
                return None if tail[start + 5] & 0x04 else "last page is not marked end-of-stream"
        start = tail.rfind(b"OggS", 0, start)
    return "last page is incomplete"


def _wav_problem(f, size: int) -> str | None:
    """A WAV whose data chunk claims more bytes than the file holds (libsndfile pads silently)."""
    f.seek(12)
    while True:
        header = f.read(8)
        if len(header) < 8:
            return None  # no data chunk: the decoder reports it
        chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
        if chunk_id == b"data":
            available = size - f.tell()
            # 0 and 0xFFFFFFFF are what streaming writers leave: size unknown, not truncated.
            if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                return f"data chunk declares {chunk_size} bytes, file holds {available}"
            return None
        f.seek(chunk_size + (chunk_size & 1), 1)


def load_soundfile(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """Decode `path` with soundfile, fold to mono, resample to `sample_rate_hz`.

    Returns:
        `[samples]` float32.

    Raises:
        AudioError: missing, empty, truncated, corrupt or non-audio file.
    """
    return load_soundfile_with_rate(path, sample_rate_hz)[0]


def load_soundfile_with_rate(path: str | Path, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    """`load_soundfile`, plus the file's native rate in Hz from the same open.

    The server wants both; `native_rate_hz` would open and parse the file again
    (~2 ms for a 5 s Ogg, against ~11 ms to decode it).

    Returns:
        (`[samples]` float32 at `sample_rate_hz`, the native rate in Hz).

    Raises:
        AudioError: missing, empty, truncated, corrupt or non-audio file.
    """
    path = Path(path)
    check_file(path)
    return _decode_soundfile(str(path), path, sample_rate_hz)


def decode_bytes_with_rate(
    data: bytes | memoryview, sample_rate_hz: int, name: str = "upload"
) -> tuple[np.ndarray, int]:
    """`load_soundfile_with_rate` on a file's bytes in memory (an upload), no file written.

    The same checks and errors, with `name` in place of the path. A plain PCM
    WAV (16-bit integer or 32-bit float, the common upload) is read with numpy
    (`pcm_wav`), ~6x cheaper than libsndfile through Python file callbacks and
    equal to its output sample for sample; anything else goes to libsndfile.

    Returns:
        (`[samples]` float32 at `sample_rate_hz`, the native rate in Hz).

    Raises:
        AudioError: empty, truncated, corrupt or non-audio bytes.
    """
    if not len(data):
        raise AudioError(name, "empty file (0 bytes)")
    f = io.BytesIO(data)
    problem = content_problem(f, len(data))
    if problem:
        raise AudioError(name, problem)
    pcm = pcm_wav(data)
    if pcm is None:
        return _decode_soundfile(f, name, sample_rate_hz)
    frames, rate, is_float = pcm
    return _mono_checked(frames, rate, name, sample_rate_hz, check_finite=is_float)


def _decode_soundfile(source, name: str | Path, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        source = source if isinstance(source, str) else (source.seek(0) or source)
        with sf.SoundFile(source) as f:
            declared, rate = f.frames, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError/TypeError
        raise AudioError(name, f"cannot decode audio ({type(e).__name__}: {e})") from None
    if data.shape[0] < declared and data.shape[0] > 0:
        raise AudioError(
            name, f"truncated: decoded {data.shape[0]} of {declared} frames in the header"
        )
    return _mono_checked(data, rate, name, sample_rate_hz)


def _mono_checked(
    data: np.ndarray, rate: int, name: str | Path, sample_rate_hz: int, check_finite: bool = True
) -> tuple[np.ndarray, int]:
    """`[frames, channels]` float32 -> (checked mono at `sample_rate_hz`, `rate`).

    `check_finite=False` for samples that were integers (never NaN or inf).
    """
    if data.shape[0] == 0:
        raise AudioError(name, "decoded to 0 samples (truncated or corrupt file)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if check_finite and not np.all(np.isfinite(mono)):
        raise AudioError(name, "decoded samples contain NaN or inf")
    return resample(mono, rate, sample_rate_hz), int(rate)


# WAVE format tags read by `pcm_wav`: (format tag, bits per sample) -> numpy dtype, scale.
# libsndfile scales 16-bit integers by 1 / 0x8000 when it reads them as float.
_PCM_WAV = {(1, 16): (np.dtype("<i2"), 1.0 / 0x8000), (3, 32): (np.dtype("<f4"), None)}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def pcm_wav(data: bytes | memoryview) -> tuple[np.ndarray, int, bool] | None:
    """A plain 16-bit PCM or 32-bit float WAV's `([frames, channels] float32, rate_hz, is_float)`.

    None means "not this simple kind; let libsndfile decide" (other sample
    formats, compressed WAVs, RF64, a missing fmt or data chunk, a cut file).
    The samples equal what libsndfile returns for the same bytes.
    """
    view = memoryview(data)
    if len(view) < 12 or view[:4] != b"RIFF" or view[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(view):
        chunk_id = bytes(view[pos : pos + 4])
        size = int.from_bytes(view[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk_id == b"fmt " and size >= 16:
            tag, channels, rate = (
                int.from_bytes(view[body : body + 2], "little"),
                int.from_bytes(view[body + 2 : body + 4], "little"),
                int.from_bytes(view[body + 4 : body + 8], "little"),
            )
            bits = int.from_bytes(view[body + 14 : body + 16], "little")
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40:  # the sub-format GUID's first 2 bytes
                tag = int.from_bytes(view[body + 24 : body + 26], "little")
            fmt = (tag, bits, channels, rate)
        elif chunk_id == b"data":
            if fmt is None or (fmt[0], fmt[1]) not in _PCM_WAV or fmt[2] < 1 or fmt[3] < 1:
                return None
            dtype, scale = _PCM_WAV[(fmt[0], fmt[1])]
            frame_bytes = dtype.itemsize * fmt[2]
            if size in (0, 0xFFFFFFFF):  # streaming writers: the data runs to the end
                size = len(view) - body
            if size > len(view) - body:
                return None
            frames = np.frombuffer(view[body : body + size - size % frame_bytes], dtype)
            frames = frames.reshape(-1, fmt[2])
            if scale is None:
                return frames.astype(np.float32), fmt[3], True
            return (frames * np.float32(scale)).astype(np.float32, copy=False), fmt[3], False
        pos = body + size + (size & 1)
    return None


def native_rate_hz(path: str | Path) -> int | None:
    """The sample rate a file was recorded at (header only), or None if soundfile cannot tell."""
    import soundfile as sf

    try:
        return int(sf.info(str(path)).samplerate)
    except Exception:  # unreadable files are reported by the decoder, not here
        return None


def low_rate_warning(
    path: str | Path, rate_hz: int | None, min_rate_hz: int = MIN_NATIVE_RATE_HZ
) -> str | None:
    """Why a file's score may mislead when its native rate is below `min_rate_hz`, else None.

    Such a file is upsampled and scored like any other, but it holds nothing
    above `rate_hz / 2`, a bandwidth the model never saw in training. One
    place for this check, so predict, submit and a server word it alike.

    Args:
        path: the file, named in the message.
        rate_hz: its native sample rate (`native_rate_hz`); None = unknown.
        min_rate_hz: the lowest rate that passes.
    """
    if rate_hz is None or rate_hz >= min_rate_hz:
        return None
    return (
        f"{path} is {rate_hz} Hz audio (below {min_rate_hz / 1000:g} kHz): it holds nothing "
        f"above {rate_hz / 2000:g} kHz, a bandwidth unlike the training data, so its score "
        "is less reliable"
    )


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
    """Decode one file with tensorflow-io; same contract as `load_soundfile`.

    Runs `decode_tfio` through a `tf.function` traced once per rate.

    Raises:
        AudioError: missing, empty, truncated, corrupt or non-audio file, or a
            sample rate / sample type the in-graph decoder does not handle.
        AudioBackendError: tensorflow-io cannot be loaded.
    """
    tfio_module()  # AudioBackendError first: it concerns every file
    decoder = _tfio_decoder(sample_rate_hz)
    path = Path(path)
    check_file(path)
    problem = _tfio_misread(path)
    if problem:
        raise AudioError(path, problem)
    try:
        # tensorflow-io's readable is a per-kernel resource: concurrent calls of
        # one traced decoder share it and can return another file's samples.
        with _TFIO_LOCK:
            waveform = decoder(str(path)).numpy()
    except Exception as e:  # tf.errors.* from the decoding ops
        message = _tf_error_text(getattr(e, "message", None) or str(e))
        raise AudioError(path, f"cannot decode audio ({type(e).__name__}: {message})") from None
    if waveform.shape[0] == 0:
        raise AudioError(path, "decoded to 0 samples (truncated or corrupt file)")
    if not np.all(np.isfinite(waveform)):
        raise AudioError(path, "decoded samples contain NaN or inf")
    return waveform


def _tf_error_text(message: str) -> str:
    """The op's own words from a TF error (drops "Graph execution error", traceback, node tags)."""
    noise = ("Graph execution error", "Detected at node", "File ")
    paragraphs = [p.strip() for p in message.split("\n\n") if p.strip()]
    kept = [p for p in paragraphs if not p.startswith(noise)] or [message.strip()]
    lines = [ln.strip() for ln in kept[-1].splitlines() if not ln.strip().startswith("[[")]
    return re.sub(r"\s*\[Op:[^\]]*\]", "", " ".join(ln for ln in lines if ln))[:300]


def _tfio_misread(path: Path) -> str | None:
    """Files tensorflow-io decodes wrongly without an error, so they must be refused.

    tensorflow-io 0.37 reports 32-bit integer PCM WAV as float32 and returns the
    raw bits reinterpreted as floats (garbage near 0 or NaN).
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"fmt ":
                fmt = f.read(min(size, 40))
                tag, bits = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[14:16], "little")
                if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag in the GUID
                    tag = int.from_bytes(fmt[24:26], "little")
                if tag == 1 and bits == 32:
                    return "tfio backend misreads 32-bit integer WAV; use prep.backend=soundfile"
                return None
            f.seek(size + (size & 1), 1)


_TFIO_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _tfio_decoder(sample_rate_hz: int):
    import tensorflow as tf

    tfio_module()

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def decode(path):
        return decode_tfio(path, sample_rate_hz)

    return decode


# Rates the in-graph resampler handles: tensorflow-io's resample op takes the
# rates as static attributes, so each source rate is one branch of a `tf.case`.
TFIO_RATES_HZ = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)

# tf.DataType enum values reported by `io_audio_readable_spec`, and the scale to [-1, 1].
_TFIO_SAMPLE_TYPES = (
    (1, "float32", 1.0),
    (5, "int16", 1 / 32768.0),
    (3, "int32", 1 / 2147483648.0),
)


def decode_tfio(path, sample_rate_hz: int):
    """In-graph decode of one audio file with tensorflow-io (usable in `tf.data` maps).

    ogg/vorbis, wav (16/24/32-bit int and float), flac and mp3; channels are
    averaged to mono; any rate in `TFIO_RATES_HZ` is resampled to `sample_rate_hz`.

    Args:
        path: scalar string tensor, the file path.
        sample_rate_hz: output rate.

    Returns:
        `[samples]` float32 in [-1, 1].

    Raises:
        tf.errors.InvalidArgumentError (at run time): undecodable file, or an
            unsupported sample type or rate (message names it).

    Unlike `load_tfio`, this in-graph path cannot run the host-side checks
    (truncated Ogg/WAV, 32-bit integer WAV that tensorflow-io misreads).

    Map it with `num_parallel_calls=1`: tensorflow-io's audio readable is a
    per-kernel resource, so parallel calls of one traced map function share it
    and can return another file's samples (seen with 2 parallel calls).
    """
    import tensorflow as tf

    tfio_module()
    # `AudioIOTensor` needs the sample type statically in graph mode, but it is
    # only known once the header is read; the readable ops below are what it
    # wraps, and a `tf.case` on the runtime type picks a read of that type.
    from tensorflow_io.python.ops import core_ops

    resource = core_ops.io_audio_readable_init(path)
    _, dtype_enum, rate = core_ops.io_audio_readable_spec(resource)

    def reader(dtype: str, scale: float):
        def read():
            samples = core_ops.io_audio_readable_read(resource, 0, -1, dtype=tf.as_dtype(dtype))
            return tf.reshape(tf.cast(samples, tf.float32) * scale, [-1, tf.shape(samples)[-1]])

        return read

    def unsupported(what, value):
        def fail():
            check = tf.debugging.Assert(False, [f"tfio backend: unsupported {what}", value, path])
            with tf.control_dependencies([check]):
                return tf.zeros([0, 1], tf.float32)

        return fail

    audio = tf.case(
        [
            (tf.equal(dtype_enum, code), reader(name, scale))
            for code, name, scale in _TFIO_SAMPLE_TYPES
        ],
        default=unsupported("sample type (tf.DataType enum)", dtype_enum),
        exclusive=True,
    )
    mono = tf.reduce_mean(audio, axis=-1)  # [samples]

    def resampler(rate_in: int):
        # The op streams through soxr and delays its output by a fixed latency
        # (e.g. 32 samples at 44.1 kHz -> 32 kHz); soxr's one-shot call (the
        # soundfile backend) does not. Pad the tail, drop the latency, and keep
        # soxr's length round(n * out / in) so both backends line up.
        latency = _tfio_resample_latency(rate_in, sample_rate_hz)
        pad_in = -(-latency * rate_in // sample_rate_hz) + 1

        def resample():
            padded = tf.pad(mono, [[0, pad_in]])[:, None]
            out = core_ops.io_audio_resample(padded, rate_in=rate_in, rate_out=sample_rate_hz)
            n = tf.cast(tf.shape(mono)[0], tf.int64)
            length = (2 * n * sample_rate_hz + rate_in) // (2 * rate_in)
            return out[latency : latency + length, 0]

        return resample

    branches = [(tf.equal(rate, sample_rate_hz), lambda: mono)]
    branches += [(tf.equal(rate, r), resampler(r)) for r in TFIO_RATES_HZ if r != sample_rate_hz]
    mono = tf.case(
        branches, default=lambda: unsupported("sample rate", rate)()[:, 0], exclusive=True
    )
    return tf.ensure_shape(mono, [None])


@functools.cache
def _tfio_resample_latency(rate_in: int, rate_out: int) -> int:
    """Output samples by which tensorflow-io's resample op delays its input (measured once)."""
    import tensorflow as tf
    from tensorflow_io.python.ops import core_ops

    with tf.init_scope():  # runs eagerly even while a tf.function is being traced
        impulse = np.zeros((rate_in, 1), np.float32)
        impulse[rate_in // 2] = 1.0
        out = core_ops.io_audio_resample(impulse, rate_in=rate_in, rate_out=rate_out).numpy()
    expected = (rate_in // 2) * rate_out / rate_in
    return max(0, int(round(int(np.argmax(np.abs(out[:, 0]))) - expected)))
