"""wavaug.py: every augmentation keeps the contract (length, finite, peak, aligned, seeded).

Runs on a 5 s synthetic voice-like signal and on a real clip of the embedded
sample; no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from deepwave_tf import audio, wavaug

RATE = 32000
CODECS = ("mp3", "opus", "vorbis", "gsm")


def _synthetic(seconds: float = 5.0, seed: int = 7) -> np.ndarray:
    """Harmonics on a wandering f0 under a syllable envelope, plus breath noise; peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 30))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t) ** 2
    x = envelope * voice + 0.05 * rng.standard_normal(t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def signals(sample_dir) -> dict[str, np.ndarray]:
    real = audio.load_soundfile(sample_dir / "train" / "TRAIN_00002.ogg", RATE)
    return {"synthetic": _synthetic(), "real": real}


def _usable(name: str) -> None:
    why = wavaug.available()[name]
    if why is not None:
        pytest.skip(f"{name} unavailable here: {why}")


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int = 2000) -> int:
    """Lag (samples) of the cross-correlation peak of `y` against `x`, within +-max_lag."""
    cc = signal.correlate(y.astype(np.float64), x.astype(np.float64), mode="full", method="fft")
    centre = x.shape[0] - 1
    window = cc[centre - max_lag : centre + max_lag + 1]
    return int(np.argmax(window)) - max_lag


def test_every_augmentation_is_available_with_the_pinned_soundfile():
    # soundfile's wheels bundle libsndfile >= 1.1 (MP3 encoding), Opus and Vorbis.
    assert set(wavaug.available()) == set(wavaug.AUGMENTS)
    assert {n: why for n, why in wavaug.available().items() if why is not None} == {}


@pytest.mark.parametrize("name", sorted(wavaug.AUGMENTS))
@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_contract(signals, name, which):
    _usable(name)
    x = signals[which]
    y = wavaug.AUGMENTS[name](x, RATE, np.random.default_rng(3))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.0
    assert np.max(np.abs(y - x)) > 1e-3, "the augmentation left the signal unchanged"
    again = wavaug.AUGMENTS[name](x, RATE, np.random.default_rng(3))
    np.testing.assert_array_equal(y, again)
    other = wavaug.AUGMENTS[name](x, RATE, np.random.default_rng(4))
    assert not np.array_equal(y, other), "a different seed gave the same output"


@pytest.mark.parametrize("name", sorted(wavaug.AUGMENTS))
def test_silence_full_scale_and_tiny_clips_stay_in_bounds(name):
    _usable(name)
    tiny = [_synthetic(1.0)[:n] for n in (1, 50)]  # under one sample at 8 kHz; under filtfilt's pad
    for x in (np.zeros(RATE, np.float32), np.sign(_synthetic(1.0)).astype(np.float32), *tiny):
        y = wavaug.AUGMENTS[name](x, RATE, np.random.default_rng(0))
        assert y.shape == x.shape and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0


@pytest.mark.parametrize("name", CODECS)
def test_codec_round_trips_stay_aligned(signals, name):
    _usable(name)
    for which, x in signals.items():
        for seed in range(4):  # several codec rates and bitrates
            y = wavaug.AUGMENTS[name](x, RATE, np.random.default_rng(seed))
            assert abs(_lag(y, x)) <= 2, (which, seed)


def test_mp3_without_gapless_header_is_realigned(signals):
    # At 16 kHz and ~24 kb/s libsndfile's decoder misses LAME's delay header (1.2.2);
    # either way the round trip must come back aligned and at the exact length.
    _usable("mp3")
    x = signals["real"]
    y = wavaug._codec_roundtrip(
        x,
        RATE,
        16000,
        "MP3",
        "MPEG_LAYER_III",
        uncompensated_delay=wavaug._MP3_UNCOMPENSATED_DELAY,
        compression_level=0.9,
        bitrate_mode="CONSTANT",
    )
    assert y.shape == x.shape
    assert abs(_lag(y, x)) <= 2


def test_filters_and_resampling_stay_aligned(signals):
    x = signals["real"]
    for name in ("rawboost_isd", "rawboost_ssi", "bandlimit", "resample_chain", "reverb"):
        for seed in range(3):
            assert abs(_lag(wavaug.AUGMENTS[name](x, RATE, np.random.default_rng(seed)), x)) <= 2


def test_rawboost_lnl_filters_are_centred():
    # Cross-correlation is ambiguous after LnL's narrow band-passes; an impulse is not:
    # linear-phase filters with their delay removed answer symmetrically around it.
    x = np.zeros(RATE // 4, np.float32)
    centre = x.shape[0] // 2
    x[centre] = 0.9
    for seed in range(3):
        y = wavaug.rawboost_lnl(x, RATE, np.random.default_rng(seed)).astype(np.float64)
        half = 3000
        np.testing.assert_allclose(
            y[centre - half : centre], y[centre + half : centre : -1], atol=1e-6 * np.abs(y).max()
        )


@pytest.mark.parametrize("seed", range(3))  # random filter orders
def test_bandlimit_removes_energy_outside_its_band(seed):
    x = np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32) * 0.1
    y = wavaug.bandlimit(x, RATE, np.random.default_rng(seed), lowpass_hz=4000, highpass_hz=200)
    f, px = signal.welch(x, RATE, nperseg=4096)
    _, py = signal.welch(y, RATE, nperseg=4096)

    def drop_db(band):
        return 10 * np.log10(px[band].sum() / py[band].sum())

    assert drop_db(f > 6000) > 30
    assert drop_db(f > 8000) > 50
    assert drop_db(f < 100) > 15
    assert abs(drop_db((f > 500) & (f < 3000))) < 1  # the pass band is untouched


def test_gain_is_exact_and_peak_safe(signals):
    x = signals["synthetic"]  # peak 0.5
    np.testing.assert_allclose(
        wavaug.gain(x, RATE, np.random.default_rng(0), gain_db=-6.0), x * 10 ** (-6 / 20), rtol=1e-6
    )
    loud = wavaug.gain(x, RATE, np.random.default_rng(0), gain_db=12.0)
    assert np.max(np.abs(loud)) == pytest.approx(1.0)
    np.testing.assert_allclose(loud, x / np.max(np.abs(x)), rtol=1e-6)  # rescaled, not clipped


def test_ssi_noise_is_at_the_requested_snr(signals):
    x = signals["real"].astype(np.float64)
    y = wavaug.rawboost_ssi(signals["real"], RATE, np.random.default_rng(0), snr_db=20.0)
    snr = 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2))
    assert snr == pytest.approx(20.0, abs=0.1)


def test_random_chain_reports_what_it_applied(signals):
    x = signals["synthetic"]
    seen = set()
    for seed in range(8):
        y, names = wavaug.random_chain(x, RATE, np.random.default_rng(seed), max_ops=3)
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
        assert set(names) <= set(wavaug.AUGMENTS)
        assert y.shape == x.shape and y.dtype == np.float32 and np.max(np.abs(y)) <= 1.0
        again, names_again = wavaug.random_chain(x, RATE, np.random.default_rng(seed), max_ops=3)
        assert names_again == names
        np.testing.assert_array_equal(again, y)
        seen.update(names)
    assert len(seen) >= 5  # it does draw from the whole pool

    y, names = wavaug.random_chain(x, RATE, np.random.default_rng(0), names=["gain"], max_ops=3)
    assert names == ["gain"]
    _, names = wavaug.random_chain(x, RATE, np.random.default_rng(0), max_ops=1)
    assert len(names) == 1
    for seed in range(4):
        _, names = wavaug.random_chain(
            x, RATE, np.random.default_rng(seed), names=["gain", "gain", "reverb"], max_ops=3
        )
        assert sorted(names) in (["gain"], ["reverb"], ["gain", "reverb"])


def test_unknown_name_is_a_clear_error(signals):
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['flanger'\]; known: \["):
        wavaug.random_chain(signals["synthetic"], RATE, np.random.default_rng(0), names=["flanger"])
    with pytest.raises(ValueError, match="unknown augmentation"):
        wavaug.apply("flanger", signals["synthetic"], RATE, np.random.default_rng(0))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="1-D and non-empty"):
        wavaug.gain(np.zeros((2, 100), np.float32), RATE, np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN or inf"):
        wavaug.gain(np.array([0.0, np.nan], np.float32), RATE, np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_ops must be >= 1"):
        wavaug.random_chain(np.zeros(100, np.float32), RATE, np.random.default_rng(0), max_ops=0)
