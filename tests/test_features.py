"""features: parity with librosa on real clips, one result however it is called, framing rules."""

from __future__ import annotations

import dataclasses
import math

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile as sf
import tensorflow as tf

from deepwave_tf import features
from deepwave_tf.config import FeatureConfig

CFG = FeatureConfig()
# Stated parity tolerances (float32 tf.signal vs float64 librosa); the measured
# maxima on the sample clips are ~4e-4 dB (mel) and ~1.2e-4 (MFCC).
MEL_DB_ATOL = 2e-3
MFCC_ATOL = 2e-3


def _clips(sample_dir, n=3) -> list[np.ndarray]:
    """The first `n` sample train clips (32 kHz already), cut to 5 s as prep does."""
    out = []
    for path in sorted((sample_dir / "train").glob("*.ogg"))[:n]:
        y, rate = sf.read(path, dtype="float32")
        assert rate == CFG.sample_rate_hz
        out.append(features.fix_length(y, CFG).numpy())
    return out


def _librosa_features(y: np.ndarray, cfg: FeatureConfig = CFG) -> tuple[np.ndarray, np.ndarray]:
    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=cfg.sample_rate_hz, n_fft=cfg.n_fft, hop_length=cfg.hop_length_samples,
        win_length=cfg.win_length_samples, n_mels=cfg.n_mels, fmin=cfg.fmin_hz, fmax=cfg.fmax_hz,
        power=2.0, center=True, pad_mode="constant",
    )  # fmt: skip
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=cfg.top_db)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=cfg.n_mfcc)
    return log_mel, mfcc.T  # [n_mels, frames], [frames, n_mfcc]


# --------------------------------------------------------------------------- #
# Parity with librosa
# --------------------------------------------------------------------------- #
def test_parity_with_librosa_on_sample_clips(sample_dir):
    clips = _clips(sample_dir)
    ours = features.compute_features(np.stack(clips), CFG)
    for i, y in enumerate(clips):
        ref_mel, ref_mfcc = _librosa_features(y)
        assert ours[features.MEL][i].shape == ref_mel.shape == CFG.mel_shape
        assert ours[features.MFCC][i].shape == ref_mfcc.shape == CFG.mfcc_shape
        np.testing.assert_allclose(ours[features.MEL][i].numpy(), ref_mel, rtol=0, atol=MEL_DB_ATOL)
        np.testing.assert_allclose(ours[features.MFCC][i].numpy(), ref_mfcc, rtol=0, atol=MFCC_ATOL)


def test_parity_with_shorter_window(sample_dir):
    """win_length < n_fft: the centred zero-padded window librosa uses."""
    cfg = dataclasses.replace(CFG, win_length_samples=1024)
    (y,) = _clips(sample_dir, 1)
    ref_mel, ref_mfcc = _librosa_features(y, cfg)
    ours = features.compute_features(y, cfg)
    np.testing.assert_allclose(ours[features.MEL].numpy(), ref_mel, rtol=0, atol=MEL_DB_ATOL)
    np.testing.assert_allclose(ours[features.MFCC].numpy(), ref_mfcc, rtol=0, atol=MFCC_ATOL)


@pytest.mark.parametrize("fmin,fmax,n_mels", [(0.0, 16000.0, 128), (20.0, 8000.0, 64)])
def test_slaney_filterbank_matches_librosa(fmin, fmax, n_mels):
    cfg = dataclasses.replace(CFG, fmin_hz=fmin, fmax_hz=fmax, n_mels=n_mels, n_mfcc=20)
    ours = features.mel_weight_matrix(cfg).numpy()
    ref = librosa.filters.mel(
        sr=cfg.sample_rate_hz, n_fft=cfg.n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    )
    assert ours.shape == (cfg.num_fft_bins, n_mels)
    np.testing.assert_allclose(ours, ref.T, rtol=1e-5, atol=1e-9)


def test_mel_scale_matches_librosa():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 16000.0])
    np.testing.assert_allclose(features.hz_to_mel(hz).numpy(), librosa.hz_to_mel(hz), rtol=1e-12)
    mels = librosa.hz_to_mel(hz)
    np.testing.assert_allclose(features.mel_to_hz(mels).numpy(), hz, rtol=1e-10, atol=1e-9)


# --------------------------------------------------------------------------- #
# Same values however it is called
# --------------------------------------------------------------------------- #
def test_direct_equals_tf_data_equals_batched(sample_dir):
    clips = _clips(sample_dir, 2)
    direct = [features.compute_features(y, CFG) for y in clips]
    batched = features.compute_features(np.stack(clips), CFG)
    mapped = list(
        tf.data.Dataset.from_tensor_slices(np.stack(clips)).map(
            lambda w: features.compute_features(w, CFG)
        )
    )
    graph = tf.function(lambda w: features.compute_features(w, CFG))(np.stack(clips))
    for i in range(len(clips)):
        for key, shape in ((features.MFCC, CFG.mfcc_shape), (features.MEL, CFG.mel_shape)):
            assert direct[i][key].shape == mapped[i][key].shape == shape
            assert batched[key].shape == graph[key].shape == (len(clips), *shape)
            np.testing.assert_allclose(mapped[i][key], direct[i][key], rtol=1e-6, atol=1e-4)
            np.testing.assert_allclose(batched[key][i], direct[i][key], rtol=1e-6, atol=1e-4)
            np.testing.assert_allclose(graph[key][i], direct[i][key], rtol=1e-6, atol=1e-4)


def test_features_from_power_mel_matches_compute_features(sample_dir):
    (y,) = _clips(sample_dir, 1)
    via_power = features.features_from_power_mel(features.power_mel(y, CFG), CFG)
    direct = features.compute_features(y, CFG)
    for key in features.FEATURE_KEYS:
        np.testing.assert_array_equal(via_power[key].numpy(), direct[key].numpy())
    # db_to_power inverts power_to_db above the floor.
    power = features.power_mel(y, CFG).numpy()
    back = features.db_to_power(features.power_to_db(power, CFG)).numpy()
    floor = power.max() * 10 ** (-CFG.top_db / 10)
    keep = power > floor
    np.testing.assert_allclose(back[keep], power[keep], rtol=1e-4)


# --------------------------------------------------------------------------- #
# Framing
# --------------------------------------------------------------------------- #
def _ramp(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float32)


@pytest.mark.parametrize(
    "crop,pad,n,expected",
    [
        ("start", "end", 14, np.arange(1, 11)),  # keep the first 10
        ("center", "end", 14, np.arange(3, 13)),  # drop 2 each side
        ("center", "end", 15, np.arange(3, 13)),  # odd excess: extra sample dropped at the end
        ("start", "end", 7, [1, 2, 3, 4, 5, 6, 7, 0, 0, 0]),
        (
            "start",
            "center",
            7,
            [0, 1, 2, 3, 4, 5, 6, 7, 0, 0],
        ),  # odd missing: extra zero at the end
        ("center", "center", 6, [0, 0, 1, 2, 3, 4, 5, 6, 0, 0]),
        ("center", "end", 10, np.arange(1, 11)),  # exact length: unchanged
        ("center", "center", 0, np.zeros(10)),  # empty input: silence
    ],
)
def test_fix_length_rules(crop, pad, n, expected):
    cfg = dataclasses.replace(
        CFG, crop=crop, pad=pad, sample_rate_hz=10, clip_seconds=1.0, fmax_hz=5.0
    )
    assert cfg.num_samples == 10
    out = features.fix_length(_ramp(n), cfg)
    assert out.shape == (10,)
    np.testing.assert_array_equal(out.numpy(), np.asarray(expected, np.float32))
    batch = features.fix_length(np.stack([_ramp(n)] * 3), cfg)
    assert batch.shape == (3, 10)
    np.testing.assert_array_equal(batch.numpy()[2], out.numpy())


@pytest.mark.parametrize("n", [0, 1, 1000, CFG.num_samples, CFG.num_samples + 12345])
def test_any_length_gives_fixed_shapes(n):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    out = features.compute_features(y, CFG)
    assert out[features.MFCC].shape == CFG.mfcc_shape
    assert out[features.MEL].shape == CFG.mel_shape
    assert all(np.all(np.isfinite(v.numpy())) for v in out.values())


# --------------------------------------------------------------------------- #
# Synthetic signals
# --------------------------------------------------------------------------- #
def test_sine_peaks_in_its_mel_band():
    t = np.arange(CFG.num_samples) / CFG.sample_rate_hz
    for hz in (440.0, 3000.0):
        mel = features.compute_features((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), CFG)[
            features.MEL
        ]
        band = int(np.argmax(mel.numpy()[:, 100:200].mean(axis=1)))
        centres = librosa.mel_frequencies(
            n_mels=CFG.n_mels + 2, fmin=CFG.fmin_hz, fmax=CFG.fmax_hz
        )[1:-1]
        assert abs(centres[band] - hz) < 0.1 * hz + 50, (hz, centres[band])


def test_silence_is_the_floor():
    out = features.compute_features(np.zeros(CFG.num_samples, np.float32), CFG)
    floor = 10 * math.log10(CFG.amin)  # -100 dB
    np.testing.assert_allclose(out[features.MEL].numpy(), floor, atol=1e-4)
    mfcc = out[features.MFCC].numpy()
    # Constant log-mel: only the DC coefficient is non-zero (orthonormal DCT).
    np.testing.assert_allclose(mfcc[:, 0], floor * math.sqrt(CFG.n_mels), rtol=1e-5)
    np.testing.assert_allclose(mfcc[:, 1:], 0.0, atol=1e-3)


def test_noise_is_top_db_limited_and_gain_shifts_db():
    y = np.random.default_rng(0).standard_normal(CFG.num_samples).astype(np.float32) * 0.01
    quiet = features.compute_features(y, CFG)[features.MEL].numpy()
    loud = features.compute_features(10 * y, CFG)[features.MEL].numpy()
    assert quiet.max() - quiet.min() <= CFG.top_db + 1e-3
    np.testing.assert_allclose(loud - quiet, 20.0, atol=1e-2)  # x10 amplitude = +20 dB


# --------------------------------------------------------------------------- #
# Other front-ends: log-linear, LFCC (+ deltas), phase
# --------------------------------------------------------------------------- #
# Measured maxima on 3 sample clips: linear 1.4e-3 dB (single bins near the 80 dB floor, where
# float32 STFT rounding shows; the mel's bands average it away), LFCC with deltas 8e-4, phase 3e-6.
LINEAR_DB_ATOL = 5e-3
LFCC_ATOL = 2e-3
PHASE_ATOL = 2e-3


def _power_stft(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """librosa |STFT|^2, `[bins, frames]` float64."""
    spec = librosa.stft(
        y.astype(np.float64), n_fft=cfg.n_fft, hop_length=cfg.hop_length_samples,
        win_length=cfg.win_length_samples, center=True, pad_mode="constant",
    )  # fmt: skip
    return np.abs(spec) ** 2


def _db(power: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    return librosa.power_to_db(power, ref=1.0, amin=cfg.amin, top_db=cfg.top_db)


def _bands_numpy(cfg: FeatureConfig, n_bands: int) -> np.ndarray:
    """Equal-width band of each FFT bin, written independently of features.band_index."""
    hz = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate_hz)
    width = (cfg.fmax_hz - cfg.fmin_hz) / n_bands
    band = np.full(len(hz), -1)
    for b in range(n_bands):
        lo = cfg.fmin_hz + b * width
        inside = (hz >= lo) & ((hz < lo + width) | ((b == n_bands - 1) & (hz <= cfg.fmax_hz)))
        band[inside] = b
    return band


@pytest.mark.parametrize("linear_bins", [0, 100])
def test_log_linear_matches_librosa(sample_dir, linear_bins):
    cfg = dataclasses.replace(CFG, image="linear", linear_bins=linear_bins, fmin_hz=50.0)
    clips = _clips(sample_dir, 2)
    ours = features.compute_features(np.stack(clips), cfg)
    assert set(ours) == {"mfcc", "linear"}
    for i, y in enumerate(clips):
        power = _power_stft(y, cfg)
        if linear_bins:
            band = _bands_numpy(cfg, linear_bins)
            power = np.stack([power[band == b].mean(axis=0) for b in range(linear_bins)])
        ref = _db(power, cfg)
        assert ours["linear"][i].shape == ref.shape == cfg.feature_shape("linear")
        assert ref.shape[0] == (linear_bins or cfg.n_fft // 2 + 1)
        np.testing.assert_allclose(ours["linear"][i].numpy(), ref, rtol=0, atol=LINEAR_DB_ATOL)


@pytest.mark.parametrize("deltas", [0, 2])
def test_lfcc_matches_numpy_reference(sample_dir, deltas):
    """Linear triangles (torchaudio's linear_fbanks) -> dB -> orthonormal DCT -> librosa deltas."""
    cfg = dataclasses.replace(
        CFG, sequence="lfcc", n_lfcc_filters=70, n_lfcc=20, lfcc_deltas=deltas
    )
    clips = _clips(sample_dir, 2)
    ours = features.compute_features(np.stack(clips), cfg)
    assert set(ours) == {"lfcc", "mel"}
    hz = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate_hz)
    edges = np.linspace(cfg.fmin_hz, cfg.fmax_hz, cfg.n_lfcc_filters + 2)
    tri = np.stack(
        [
            np.clip(np.minimum((hz - lo) / (mid - lo), (hi - hz) / (hi - mid)), 0.0, None)
            for lo, mid, hi in zip(edges[:-2], edges[1:-1], edges[2:])
        ]
    )  # [filters, bins], peak 1
    np.testing.assert_allclose(features.linear_filterbank(cfg).numpy(), tri.T, atol=1e-6)
    for i, y in enumerate(clips):
        log_power = _db(tri @ _power_stft(y, cfg), cfg)
        ceps = scipy.fft.dct(log_power, type=2, norm="ortho", axis=0)[: cfg.n_lfcc]
        parts = [ceps] + [librosa.feature.delta(ceps, order=o) for o in range(1, deltas + 1)]
        ref = np.concatenate(parts, axis=0).T  # [frames, n_lfcc * (1 + deltas)]
        assert ours["lfcc"][i].shape == ref.shape == (cfg.num_frames, 20 * (1 + deltas))
        np.testing.assert_allclose(ours["lfcc"][i].numpy(), ref, rtol=0, atol=LFCC_ATOL)


@pytest.mark.parametrize("order", [1, 2])
def test_deltas_match_librosa_including_edges(order):
    x = np.random.default_rng(order).standard_normal((2, 23, 5)).astype(np.float32)
    ours = features.deltas(tf.constant(x), order).numpy()
    ref = librosa.feature.delta(x.astype(np.float64), order=order, axis=-2)
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def _phase_numpy(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The phase front-end in float64 numpy from librosa's STFT (see features.phase_from_stft)."""
    spec = librosa.stft(
        y.astype(np.float64), n_fft=cfg.n_fft, hop_length=cfg.hop_length_samples,
        center=True, pad_mode="constant",
    ).T  # fmt: skip  # [frames, bins]
    band = _bands_numpy(cfg, cfg.phase_bands)
    k = np.arange(spec.shape[1])
    prev = np.vstack([np.zeros_like(spec[:1]), spec[:-1]])
    ifd = spec * np.conj(prev) * np.exp(-2j * np.pi * k * cfg.hop_length_samples / cfg.n_fft)
    gd = -spec[:, :-1] * np.conj(spec[:, 1:])
    rows = []
    for products, owner in ((ifd, band), (gd, band[:-1])):
        s = np.stack([products[:, owner == b].sum(axis=1) for b in range(cfg.phase_bands)])
        floor = np.abs(s).max() * 10 ** (-features.PHASE_FLOOR_DB / 10) + cfg.amin
        phasor = s / np.sqrt(np.abs(s) ** 2 + floor**2)
        rows += [phasor.real, phasor.imag]
    return np.concatenate(rows)  # [4 bands, frames]


def test_phase_matches_numpy_reference(sample_dir):
    cfg = dataclasses.replace(CFG, sequence="phase", image="phase", phase_bands=24, fmin_hz=30.0)
    clips = _clips(sample_dir, 2)
    ours = features.compute_features(np.stack(clips), cfg)
    assert list(ours) == ["phase"]
    for i, y in enumerate(clips):
        ref = _phase_numpy(y, cfg)
        assert ours["phase"][i].shape == ref.shape == (4 * 24, cfg.num_frames)
        np.testing.assert_allclose(ours["phase"][i].numpy(), ref, rtol=0, atol=PHASE_ATOL)


def test_phase_is_level_free_and_reads_a_click():
    cfg = dataclasses.replace(CFG, image="phase", phase_bands=16)
    bands = cfg.phase_bands
    y = np.random.default_rng(0).standard_normal(cfg.num_samples).astype(np.float32) * 0.01
    quiet = features.compute_features(y, cfg)["phase"].numpy()
    loud = features.compute_features(100 * y, cfg)["phase"].numpy()
    np.testing.assert_allclose(loud, quiet, atol=1e-4)
    silent = features.compute_features(np.zeros(cfg.num_samples, np.float32), cfg)["phase"]
    np.testing.assert_array_equal(silent.numpy(), 0.0)
    # A click at the centre of frame 100: group delay 0 there (cos 1, sin 0) in every band.
    click = np.zeros(cfg.num_samples, np.float32)
    click[100 * cfg.hop_length_samples] = 1.0
    gd_cos = features.compute_features(click, cfg)["phase"].numpy()[2 * bands : 3 * bands, 100]
    gd_sin = features.compute_features(click, cfg)["phase"].numpy()[3 * bands :, 100]
    np.testing.assert_allclose(gd_cos, 1.0, atol=1e-4)
    np.testing.assert_allclose(gd_sin, 0.0, atol=1e-3)


@pytest.mark.parametrize(
    "sequence,image", [("mfcc", "linear"), ("lfcc", "mel"), ("mel", "mfcc"), ("phase", "lfcc")]
)
def test_compute_features_gives_exactly_the_chosen_tensors(sequence, image):
    cfg = dataclasses.replace(CFG, sequence=sequence, image=image, linear_bins=64)
    y = np.random.default_rng(1).standard_normal((2, 40000)).astype(np.float32) * 0.1
    out = features.compute_features(y, cfg)
    assert tuple(out) == cfg.feature_keys == (sequence, image)
    for key, value in out.items():
        assert value.shape == (2, *cfg.feature_shape(key))
    # A tensor is the same whatever it is stored with.
    default = features.compute_features(y, CFG)
    for key in set(out) & set(default):
        np.testing.assert_array_equal(out[key].numpy(), default[key].numpy())
