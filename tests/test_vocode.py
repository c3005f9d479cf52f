"""Tests for deepwave_tf/vocode.py: the output contract of every vocoder, determinism, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from deepwave_tf import vocode

SR = 32000
NAMES = list(vocode.VOCODERS)
F0_DRIVEN = ("world", "mlsa", "lpc", "psola")


def _voiced_signal(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A glottal-pulse-like harmonic tone (F0 gliding 100-160 Hz, -12 dB/octave) through three
    formant resonators, with a syllable-rate envelope and a little noise; RMS about -23 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 130.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    source = sum(np.sin(k * phase) / k**2 for k in range(1, 40))
    for formant_hz, bandwidth_hz in ((600.0, 80.0), (1400.0, 120.0), (2600.0, 200.0)):
        r = np.exp(-np.pi * bandwidth_hz / SR)
        source = scipy.signal.lfilter(
            [1 - r], [1, -2 * r * np.cos(2 * np.pi * formant_hz / SR), r * r], source
        )
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t)
    x = source * envelope
    x = x / np.sqrt(np.mean(x**2)) * 0.07 + rng.normal(0.0, 0.0007, n)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def signals(sample_dir) -> dict[str, np.ndarray]:
    real, rate = sf.read(sample_dir / "train" / "TRAIN_00002.ogg", dtype="float32")
    assert rate == SR
    return {"synthetic": _voiced_signal(), "real": real[: 2 * SR]}


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_every_vocoder_is_available():
    # the `vocode` extra (pulled in by `dev`) installs them all; a None is "usable"
    assert vocode.available() == {name: None for name in NAMES}
    assert set(NAMES) == {"world", "mlsa", "lpc", "psola", "griffinlim", "phase_vocoder", "codec2"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["synthetic", "real"])
def test_output_contract_and_determinism(signals, name, kind):
    x = signals[kind]
    y = vocode.vocode(name, x, SR, np.random.default_rng(7))
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - x.size) <= 0.01 * SR
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.0
    assert abs(_rms_db(y) - _rms_db(x)) <= 3.0
    # a copy, not the input passed through
    assert np.max(np.abs(y[: x.size] - x[: y.size])) > 1e-3
    np.testing.assert_array_equal(vocode.VOCODERS[name](x, SR, np.random.default_rng(7)), y)
    other = vocode.vocode(name, x, SR, np.random.default_rng(8))
    assert other.shape != y.shape or not np.array_equal(other, y)


@pytest.mark.parametrize("name", NAMES)
def test_refuses_short_and_silent(name):
    with pytest.raises(vocode.VocodeError, match=f"too short for {name}") as info:
        vocode.vocode(name, _voiced_signal()[: int(0.05 * SR)], SR, np.random.default_rng(0))
    assert info.value.reason.startswith("too short") and info.value.vocoder == name
    with pytest.raises(vocode.VocodeError) as info:
        vocode.vocode(name, np.zeros(2 * SR, np.float32), SR, np.random.default_rng(0))
    assert info.value.reason.startswith("silent")


@pytest.mark.parametrize("name", F0_DRIVEN)
def test_f0_driven_vocoders_refuse_white_noise(name):
    noise = np.random.default_rng(3).normal(0.0, 0.05, 2 * SR).astype(np.float32)
    with pytest.raises(vocode.VocodeError) as info:
        vocode.vocode(name, noise, SR, np.random.default_rng(0))
    assert info.value.reason.startswith("unvoiced")


def test_vocode_error_is_a_value_error_with_a_reason():
    error = vocode.VocodeError("unvoiced (0.00 s voiced < 0.1 s)", "world")
    assert isinstance(error, ValueError)
    assert error.reason == "unvoiced (0.00 s voiced < 0.1 s)"
    assert str(error) == "world: unvoiced (0.00 s voiced < 0.1 s)"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown vocoder 'hifigan'; known: world, mlsa, lpc, psola, griffinlim"
    ):
        vocode.vocode("hifigan", _voiced_signal(), SR, np.random.default_rng(0))


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match=r"1-D \[samples\]"):
        vocode.vocode("lpc", np.zeros((2, SR), np.float32), SR, np.random.default_rng(0))


def test_voicing_tracker_finds_the_f0_of_a_harmonic_tone():
    fs, hop = 16000, 160
    t = np.arange(fs) / fs
    tone = sum(np.sin(2 * np.pi * 150.0 * k * t) / k for k in range(1, 10))
    f0 = vocode._voicing(tone, fs, hop)
    assert f0.shape == (1 + fs // hop,)
    inner = f0[5:-5]
    assert np.all(np.abs(inner - 150.0) < 2.0)
    assert not np.any(vocode._voicing(np.random.default_rng(0).normal(size=fs), fs, hop) > 0)


def test_loud_input_keeps_the_peak_bound():
    x = np.clip(_voiced_signal() * 12.0, -1.0, 1.0)  # RMS about -2 dBFS
    y = vocode.vocode("lpc", x, SR, np.random.default_rng(0))
    assert np.max(np.abs(y)) <= vocode.PEAK_MAX + 1e-6


def test_a_library_failure_becomes_a_vocode_error_and_a_bug_does_not():
    def choke(x, rng):
        raise RuntimeError("PraatError-like failure")

    def bug(x, rng):
        raise TypeError("a bug")

    voiced = _voiced_signal()
    failing = vocode._Vocoder("choke", choke, 16000, 0.3, (), (), False)
    with pytest.raises(vocode.VocodeError, match="choke: failed: RuntimeError: PraatError-like"):
        failing(voiced, SR, np.random.default_rng(0))
    with pytest.raises(TypeError, match="a bug"):
        vocode._Vocoder("bug", bug, 16000, 0.3, (), (), False)(voiced, SR, np.random.default_rng(0))
