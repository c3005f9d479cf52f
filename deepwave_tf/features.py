"""The one audio front-end: waveform -> {"mfcc", "mel"}, in core TensorFlow ops only.

Prep, the tf.data augmentation and the exported serving graph all call these
functions, so training and serving features can never drift apart. No numpy,
no tensorflow-io, no `py_function`: everything traces into a plain graph that
stock TensorFlow Serving runs.

Conventions follow librosa 0.11 at the configured rate:
`librosa.feature.melspectrogram(y, sr, n_fft, hop_length, n_mels)` (Hann window,
`center=True` with zero padding, power 2, Slaney mel scale and area norm), then
`librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)` per clip, and MFCC as
the orthonormal DCT-II of that log-mel (what `librosa.feature.mfcc` does).

Shapes (F = FeatureConfig): waveform `[..., samples]` float32 in [-1, 1] at
F.sample_rate_hz -> mfcc `[..., F.num_frames, F.n_mfcc]`, mel (dB)
`[..., F.n_mels, F.num_frames]`. Works batched and unbatched.
"""

from __future__ import annotations

import math

import tensorflow as tf

from deepwave_tf.config import FeatureConfig

# Dict keys are the contract: feature names = TFRecord keys = keras.Input names
# = serving signature names.
MFCC = "mfcc"
MEL = "mel"
WAVEFORM = "waveform"
FEATURE_KEYS = (MFCC, MEL)
LABEL_KEYS = ("fake", "real")


# --------------------------------------------------------------------------- #
# Fixed-length framing
# --------------------------------------------------------------------------- #
def fix_length(waveform: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Crop or zero-pad the last axis to exactly `cfg.num_samples`.

    Longer clips keep the window given by `cfg.crop` ("start" or "center");
    shorter clips get zeros at the end (`cfg.pad="end"`) or on both sides
    (`"center"`, the extra sample at the end).

    Args:
        waveform: `[..., samples]` float32, any length (0 allowed).
        cfg: feature config.

    Returns:
        `[..., cfg.num_samples]` float32.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    target = cfg.num_samples
    length = tf.shape(waveform)[-1]
    # Crop.
    excess = tf.maximum(length - target, 0)
    start = excess // 2 if cfg.crop == "center" else tf.constant(0, tf.int32)
    cropped = waveform[..., start : start + tf.minimum(length, target)]
    # Pad.
    missing = target - tf.shape(cropped)[-1]
    before = missing // 2 if cfg.pad == "center" else tf.constant(0, tf.int32)
    rank = waveform.shape.rank
    paddings = [[0, 0]] * (rank - 1) + [[before, missing - before]]
    fixed = tf.pad(cropped, paddings)
    return tf.ensure_shape(fixed, waveform.shape[:-1].concatenate([target]))


# --------------------------------------------------------------------------- #
# Mel filterbank (Slaney scale and norm, as librosa.filters.mel)
# --------------------------------------------------------------------------- #
_F_SP = 200.0 / 3.0  # Hz per mel below 1 kHz (Slaney)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: tf.Tensor) -> tf.Tensor:
    """Slaney mel scale (librosa `hz_to_mel(htk=False)`), float64."""
    hz = tf.cast(hz, tf.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + tf.math.log(tf.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return tf.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: tf.Tensor) -> tf.Tensor:
    """Inverse of `hz_to_mel`, float64."""
    mel = tf.cast(mel, tf.float64)
    linear = _F_SP * mel
    log = _MIN_LOG_HZ * tf.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return tf.where(mel >= _MIN_LOG_MEL, log, linear)


def mel_weight_matrix(cfg: FeatureConfig) -> tf.Tensor:
    """Slaney-normalised triangular filters, `[cfg.num_fft_bins, cfg.n_mels]` float32.

    Equal to `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax).T`.
    """
    fft_hz = tf.linspace(tf.constant(0.0, tf.float64), cfg.sample_rate_hz / 2.0, cfg.num_fft_bins)
    mel_edges = tf.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    hz_edges = mel_to_hz(mel_edges)  # [n_mels + 2]
    widths = hz_edges[1:] - hz_edges[:-1]  # [n_mels + 1]
    ramps = hz_edges[:, None] - fft_hz[None, :]  # [n_mels + 2, bins]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = tf.maximum(tf.constant(0.0, tf.float64), tf.minimum(lower, upper))  # [n_mels, bins]
    enorm = 2.0 / (hz_edges[2:] - hz_edges[:-2])
    weights = weights * enorm[:, None]
    return tf.cast(tf.transpose(weights), tf.float32)


# --------------------------------------------------------------------------- #
# Spectral features
# --------------------------------------------------------------------------- #
def power_mel(waveform: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Mel power spectrogram of a fixed-length clip.

    Args:
        waveform: `[..., cfg.num_samples]` float32 (call `fix_length` first).

    Returns:
        `[..., cfg.n_mels, cfg.num_frames]` float32 power (|STFT|^2 through the
        mel filters), as `librosa.feature.melspectrogram`.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rank = waveform.shape.rank
    half = cfg.n_fft // 2
    # librosa center=True, pad_mode="constant": zeros on both sides.
    padded = tf.pad(waveform, [[0, 0]] * (rank - 1) + [[half, half]])
    stft = tf.signal.stft(
        padded,
        frame_length=cfg.n_fft,
        frame_step=cfg.hop_length_samples,
        fft_length=cfg.n_fft,
        window_fn=_window_fn(cfg),
        pad_end=False,
    )  # [..., frames, bins]
    power = tf.math.real(stft) ** 2 + tf.math.imag(stft) ** 2
    mel = tf.tensordot(power, mel_weight_matrix(cfg), axes=1)  # [..., frames, n_mels]
    return _swap_last_axes(mel)


def _window_fn(cfg: FeatureConfig):
    """Periodic Hann of win_length, zero-padded to n_fft and centred (librosa)."""
    if cfg.win_length_samples == cfg.n_fft:
        return tf.signal.hann_window
    left = (cfg.n_fft - cfg.win_length_samples) // 2
    right = cfg.n_fft - cfg.win_length_samples - left

    def window(length, dtype=tf.float32):
        del length
        w = tf.signal.hann_window(cfg.win_length_samples, periodic=True, dtype=dtype)
        return tf.pad(w, [[left, right]])

    return window


def power_to_db(power: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """`10 log10(max(power, amin))`, floored at `top_db` below each clip's peak.

    Args:
        power: `[..., n_mels, frames]`; the peak is taken per clip over the
            last two axes.

    Returns:
        Same shape, dB (ref 1.0).
    """
    db = (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(power, cfg.amin))
    if cfg.top_db > 0:
        peak = tf.reduce_max(db, axis=[-2, -1], keepdims=True)
        db = tf.maximum(db, peak - cfg.top_db)
    return db


def db_to_power(db: tf.Tensor) -> tf.Tensor:
    """Inverse of `power_to_db` above its floor: `10 ** (db / 10)`."""
    return tf.exp(db * (math.log(10.0) / 10.0))


def mfcc_from_log_mel(log_mel: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Orthonormal DCT-II over mel bands, first `cfg.n_mfcc` coefficients.

    Args:
        log_mel: `[..., n_mels, frames]` dB.

    Returns:
        `[..., frames, n_mfcc]`.
    """
    return tf.tensordot(_swap_last_axes(log_mel), dct_matrix(cfg), axes=1)


def dct_matrix(cfg: FeatureConfig) -> tf.Tensor:
    """First `n_mfcc` orthonormal DCT-II basis vectors, `[n_mels, n_mfcc]` float32.

    `x @ dct_matrix(cfg)` equals `tf.signal.dct(x, type=2, norm="ortho")[..., :n_mfcc]`
    (and scipy's `dct(type=2, norm="ortho")`), but computes only the kept
    coefficients: about 3x cheaper per clip than the full transform.
    """
    n = tf.cast(tf.range(cfg.n_mels), tf.float64)
    k = tf.cast(tf.range(cfg.n_mfcc), tf.float64)
    basis = tf.cos(math.pi / cfg.n_mels * (n[:, None] + 0.5) * k[None, :])
    scale = tf.where(
        k == 0,
        tf.constant(math.sqrt(1.0 / cfg.n_mels), tf.float64),
        tf.constant(math.sqrt(2.0 / cfg.n_mels), tf.float64),
    )
    return tf.cast(basis * scale[None, :], tf.float32)


def features_from_power_mel(mel_power: tf.Tensor, cfg: FeatureConfig) -> dict[str, tf.Tensor]:
    """`{"mfcc", "mel"}` from a (possibly mixed) mel power spectrogram `[..., n_mels, frames]`."""
    log_mel = power_to_db(mel_power, cfg)
    return {MFCC: mfcc_from_log_mel(log_mel, cfg), MEL: log_mel}


def compute_features(waveform: tf.Tensor, cfg: FeatureConfig) -> dict[str, tf.Tensor]:
    """Waveform of any length -> model features.

    Args:
        waveform: `[samples]` or `[batch, samples]` float32 at
            `cfg.sample_rate_hz`, any number of samples (fixed by `fix_length`).
        cfg: feature config.

    Returns:
        `{"mfcc": [..., num_frames, n_mfcc], "mel": [..., n_mels, num_frames]}`
        float32, mel in dB.
    """
    return features_from_power_mel(power_mel(fix_length(waveform, cfg), cfg), cfg)


def _swap_last_axes(x: tf.Tensor) -> tf.Tensor:
    rank = x.shape.rank
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return tf.transpose(x, perm)
