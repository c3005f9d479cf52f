"""audio: both backends decode ogg/wav/flac/mp3 at any rate to mono at the configured rate; bad files are AudioErrors."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepwave_tf import audio

RATE = 32000
BACKENDS = ["soundfile", "tfio"]


def _sine(rate: int, seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.4 * np.sin(2 * np.pi * hz * t)


def _stereo(rate: int) -> np.ndarray:
    """Left = sine, right = half the sine: mono is 0.75 * sine."""
    x = _sine(rate)
    return np.stack([x, 0.5 * x], axis=1)


def _write(path: Path, data: np.ndarray, rate: int, **kwargs) -> Path:
    sf.write(str(path), data, rate, **kwargs)
    return path


def _expected_length(n: int, rate: int) -> int:
    return (2 * n * RATE + rate) // (2 * rate)  # round(n * RATE / rate), soxr's length


# --------------------------------------------------------------------------- #
# Formats, rates, channels
# --------------------------------------------------------------------------- #
LOSSLESS = [
    ("wav", 44100, "PCM_16"),
    ("wav", 16000, "PCM_24"),
    ("wav", 48000, "FLOAT"),
    ("wav", 32000, "PCM_32"),
    ("flac", 22050, "PCM_16"),
    ("flac", 32000, "PCM_24"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt,rate,subtype", LOSSLESS, ids=[f"{f}-{r}-{s}" for f, r, s in LOSSLESS])
def test_lossless_stereo_any_rate_to_mono(tmp_path, backend, fmt, rate, subtype):
    if backend == "tfio" and subtype == "PCM_32":
        with pytest.raises(audio.AudioError, match="misreads 32-bit integer WAV"):
            audio.load(
                _write(tmp_path / "x.wav", _stereo(rate), rate, subtype=subtype), RATE, backend
            )
        return
    path = _write(tmp_path / f"x.{fmt}", _stereo(rate), rate, subtype=subtype)
    y = audio.load(path, RATE, backend)
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.shape == (_expected_length(rate, rate),)
    # Away from the edges (resampler ramp-up), the analytic 0.75 * sine at 32 kHz.
    expected = 0.75 * _sine(RATE)[: y.shape[0]]
    tol = 2e-4 if rate == RATE else 2e-2
    np.testing.assert_allclose(y[400:-400], expected[400:-400], atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt,rate", [("ogg", 48000), ("ogg", 32000), ("mp3", 44100)])
def test_lossy_formats(tmp_path, backend, fmt, rate):
    path = _write(tmp_path / f"x.{fmt}", _stereo(rate), rate)
    y = audio.load(path, RATE, backend)
    assert y.ndim == 1 and abs(y.shape[0] - RATE) <= RATE // 20  # mp3 adds encoder padding
    rms = np.sqrt(np.mean(y[2000:-2000] ** 2))
    assert rms == pytest.approx(0.75 * 0.4 / np.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(y[: RATE // 2]))
    assert np.argmax(spectrum) * 2 == pytest.approx(440, abs=4)  # 2 Hz bins


@pytest.mark.parametrize("backend", BACKENDS)
def test_opposite_channels_cancel(tmp_path, backend):
    """Stereo is averaged, not reduced to the left channel."""
    x = _sine(RATE)
    y = audio.load(
        _write(tmp_path / "x.wav", np.stack([x, -x], 1), RATE, subtype="FLOAT"), RATE, backend
    )
    assert np.abs(y).max() < 1e-6


def test_backends_agree_on_sample_clips(sample_dir):
    for path in sorted((sample_dir / "train").glob("*.ogg"))[:3]:
        a = audio.load(path, RATE, "soundfile")
        b = audio.load(path, RATE, "tfio")
        assert a.shape == b.shape and a.shape[0] > RATE
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_backends_agree_after_resampling(tmp_path):
    """tfio's resampler latency is compensated: both backends line up in time."""
    noise = np.random.default_rng(0).standard_normal(48000 + 13) * 0.1
    # Below 14 kHz: the two resamplers' anti-alias filters differ near 16 kHz.
    noise = np.convolve(noise, np.ones(8) / 8, mode="same")
    path = _write(tmp_path / "n.wav", noise, 48000, subtype="FLOAT")
    a, b = audio.load(path, RATE, "soundfile"), audio.load(path, RATE, "tfio")
    assert a.shape == b.shape
    assert np.sqrt(np.mean((a - b)[100:-100] ** 2)) < 0.1 * np.sqrt(np.mean(a**2))


def test_load_soundfile_with_rate_is_load_soundfile_plus_the_native_rate(tmp_path):
    path = _write(tmp_path / "a.wav", _stereo(44100), 44100, subtype="PCM_16")
    wav, rate = audio.load_soundfile_with_rate(path, RATE)
    assert rate == 44100 == audio.native_rate_hz(path)
    np.testing.assert_array_equal(wav, audio.load_soundfile(path, RATE))
    assert wav.dtype == np.float32 and wav.shape == (_expected_length(44100, 44100),)
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(audio.AudioError, match="empty file"):
        audio.load_soundfile_with_rate(tmp_path / "e.wav", RATE)


def test_tfio_decodes_inside_tf_data(sample_dir):
    import tensorflow as tf

    paths = [str(p) for p in sorted((sample_dir / "train").glob("*.ogg"))[:2]]
    # num_parallel_calls=1: tfio's readable resource is shared by parallel calls (see decode_tfio).
    ds = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: audio.decode_tfio(p, RATE))
    for path, waveform in zip(paths, ds):
        np.testing.assert_allclose(waveform.numpy(), audio.load_soundfile(path, RATE), atol=1e-5)


def test_tfio_loads_from_many_threads_give_each_files_own_samples(sample_dir):
    from concurrent.futures import ThreadPoolExecutor

    paths = sorted((sample_dir / "train").glob("*.ogg"))[:8]
    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(lambda p: audio.load_tfio(p, RATE), paths))
    for path, waveform in zip(paths, decoded):
        np.testing.assert_allclose(waveform, audio.load_soundfile(path, RATE), atol=1e-5)


def test_tfio_unsupported_rate_is_an_audio_error(tmp_path):
    path = _write(tmp_path / "odd.wav", _sine(7000), 7000, subtype="PCM_16")
    with pytest.raises(audio.AudioError, match="unsupported sample rate"):
        audio.load(path, RATE, "tfio")
    assert audio.load(path, RATE, "soundfile").shape == (_expected_length(7000, 7000),)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown audio backend 'ffmpeg'"):
        audio.load("x.ogg", RATE, "ffmpeg")


# --------------------------------------------------------------------------- #
# Bad files
# --------------------------------------------------------------------------- #
@pytest.fixture
def bad_files(tmp_path, sample_dir) -> dict[str, tuple[Path, str]]:
    """name -> (path, expected reason), made from real files."""
    ogg = (sample_dir / "train" / "TRAIN_00002.ogg").read_bytes()
    last_page = ogg.rfind(b"OggS")
    wav = (_write(tmp_path / "full.wav", _sine(RATE), RATE, subtype="PCM_16")).read_bytes()
    files = {
        "missing": (tmp_path / "missing.ogg", None, "file not found"),
        "directory": (tmp_path, None, "is a directory"),
        "empty": (tmp_path / "empty.ogg", b"", "empty file (0 bytes)"),
        "text": (tmp_path / "notes.wav", b"not audio at all\n" * 10, "cannot decode audio"),
        "random": (
            tmp_path / "random.ogg",
            np.random.default_rng(1).bytes(5000),
            "cannot decode audio",
        ),
        "ogg_cut_mid_page": (
            tmp_path / "cut.ogg",
            ogg[: len(ogg) * 2 // 3],
            "last page is incomplete",
        ),
        "ogg_cut_at_page": (tmp_path / "page.ogg", ogg[:last_page], "not marked end-of-stream"),
        "wav_cut": (
            tmp_path / "cut.wav",
            wav[: len(wav) // 2],
            "truncated WAV file: data chunk declares",
        ),
    }
    out = {}
    for name, (path, content, reason) in files.items():
        if content is not None:
            path.write_bytes(content)
        out[name] = (path, reason)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_raise_audio_error_with_reason(bad_files, backend):
    for name, (path, reason) in bad_files.items():
        with pytest.raises(audio.AudioError) as info:
            audio.load(path, RATE, backend)
        assert reason in info.value.reason, (name, info.value.reason)
        assert info.value.path == str(path)
        assert "Graph execution error" not in info.value.reason


def test_decode_bytes_refuses_what_load_refuses(bad_files):
    """Uploads (bytes in memory) get the file checks and reasons, with the given name."""
    for name, (path, reason) in bad_files.items():
        if not path.is_file() and name != "missing":
            continue
        data = path.read_bytes() if path.is_file() else b""
        reason = "empty file (0 bytes)" if name == "missing" else reason
        with pytest.raises(audio.AudioError) as info:
            audio.decode_bytes_with_rate(data, RATE, "upload")
        assert reason in info.value.reason, (name, info.value.reason)
        assert info.value.path == "upload"
    nan = np.full((100, 1), np.nan, np.float32)
    for subtype in ("FLOAT", "DOUBLE"):  # numpy's path and libsndfile's
        data = io.BytesIO()
        sf.write(data, nan, RATE, subtype=subtype, format="WAV")
        with pytest.raises(audio.AudioError, match="NaN or inf"):
            audio.decode_bytes_with_rate(data.getvalue(), RATE)


@pytest.mark.parametrize("fmt", ["WAV", "WAVEX"])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "PCM_24", "PCM_U8", "DOUBLE"])
def test_decode_bytes_equals_decoding_the_file(tmp_path, fmt, subtype):
    """numpy reads 16-bit and float WAVs (`pcm_wav`) exactly as libsndfile does; others fall back."""
    rng = np.random.default_rng(3)
    for channels, rate in ((1, RATE), (2, 44100)):
        x = rng.uniform(-1, 1, (rate // 4 + 7, channels))
        path = _write(tmp_path / f"x{channels}.wav", x, rate, subtype=subtype, format=fmt)
        data = path.read_bytes()
        want, want_rate = audio.load_soundfile_with_rate(path, RATE)
        got, got_rate = audio.decode_bytes_with_rate(memoryview(data), RATE)
        assert got_rate == want_rate == rate and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        fast = audio.pcm_wav(data)
        assert (fast is not None) == (subtype in ("PCM_16", "FLOAT")), subtype
        if fast is not None:
            frames, fast_rate, is_float = fast
            assert fast_rate == rate and is_float == (subtype == "FLOAT")
            np.testing.assert_array_equal(frames, sf.read(path, dtype="float32", always_2d=True)[0])
    assert audio.pcm_wav(b"OggS" + bytes(100)) is None


def test_decode_bytes_of_an_ogg_and_a_streamed_wav(sample_dir, tmp_path):
    ogg = sample_dir / "train" / "TRAIN_00002.ogg"
    got, rate = audio.decode_bytes_with_rate(ogg.read_bytes(), RATE)
    np.testing.assert_array_equal(got, audio.load_soundfile(ogg, RATE))
    # A streaming writer's WAV: the data chunk's size is 0xFFFFFFFF, the samples run to the end.
    data = bytearray(_write(tmp_path / "s.wav", _sine(RATE), RATE, subtype="PCM_16").read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    frames, _, _ = audio.pcm_wav(bytes(data))
    np.testing.assert_array_equal(frames[:, 0], audio.load_soundfile(tmp_path / "s.wav", RATE))


def test_ogg_tail_problem():
    page = b"OggS\x00" + bytes([0x04]) + bytes(20) + bytes([2, 3, 1]) + b"abcd"
    assert audio.ogg_tail_problem(b"junk" + page) is None
    assert audio.ogg_tail_problem(page[:-1]) == "last page is incomplete"
    not_last = page[:5] + b"\x00" + page[6:]
    assert audio.ogg_tail_problem(not_last) == "last page is not marked end-of-stream"
    # "OggS" inside the last page's data must not hide a good page.
    tricky = b"OggS\x00\x04" + bytes(20) + bytes([1, 6]) + b"OggS!!"
    assert audio.ogg_tail_problem(tricky) is None


# --------------------------------------------------------------------------- #
# Backend loading
# --------------------------------------------------------------------------- #
def test_tfio_load_failure_is_a_clear_backend_error(monkeypatch, tmp_path, tiny_cfg, capsys):
    from deepwave_tf import prep

    audio.tfio_module.cache_clear()
    audio._tfio_decoder.cache_clear()
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)  # import now fails
    try:
        with pytest.raises(
            audio.AudioBackendError,
            match="tensorflow-io cannot be used here.*prep.backend=soundfile",
        ):
            audio.tfio_module()
        assert audio.tfio_available() is False
        data = tmp_path / "data"
        data.mkdir()
        (data / "train.csv").write_text("id,path,label\nA,a.wav,real\n")
        _write(data / "a.wav", _sine(RATE), RATE)
        with pytest.raises(audio.AudioBackendError):
            audio.load(data / "a.wav", RATE, "tfio")
        argv = ["--data", str(data), "--out", str(tmp_path / "recs"), "--set", "prep.backend=tfio"]
        assert prep.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: tensorflow-io cannot be used here") and "Traceback" not in err
    finally:
        audio.tfio_module.cache_clear()
    monkeypatch.undo()
    assert audio.tfio_available() is True


def test_path_problem_and_low_rate_warning(tmp_path):
    """The cheap pre-checks submit runs on every path, and the one low-rate wording (issue 12)."""
    assert audio.path_problem(tmp_path / "gone.wav") == "file not found"
    assert audio.path_problem(tmp_path) == "is a directory, not an audio file"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert audio.path_problem(tmp_path / "empty.wav") == "empty file (0 bytes)"
    path = tmp_path / "phone.wav"
    sf.write(path, np.zeros(800, np.float32), 8000)
    assert audio.path_problem(path) is None
    assert audio.native_rate_hz(path) == 8000
    assert audio.native_rate_hz(tmp_path / "empty.wav") is None
    assert audio.low_rate_warning(path, 8000) == (
        f"{path} is 8000 Hz audio (below 16 kHz): it holds nothing above 4 kHz, "
        "a bandwidth unlike the training data, so its score is less reliable"
    )
    assert audio.low_rate_warning(path, 16000) is None
    assert audio.low_rate_warning(path, None) is None
