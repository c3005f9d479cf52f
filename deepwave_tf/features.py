"""The one audio front-end: waveform -> {"mfcc", "mel", "linear", "lfcc", "phase"}, core TF ops only.

Prep, the tf.data augmentation and the exported serving graph all call these
functions, so training and serving features can never drift apart. No numpy,
no tensorflow-io, no `py_function`: everything traces into a plain graph that
stock TensorFlow Serving runs.

Conventions follow librosa 0.11 at the configured rate:
`librosa.feature.melspectrogram(y, sr, n_fft, hop_length, n_mels)` (Hann window,
`center=True` with zero padding, power 2, Slaney mel scale and area norm), then
`librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)` per clip, and MFCC as
the orthonormal DCT-II of that log-mel (what `librosa.feature.mfcc` does).

The other front-ends share that STFT (`stft`) and the dB convention:
- `linear`: the log power spectrogram, `power_to_db` of |STFT|^2, every bin
  (`linear_bins = 0`) or the mean power of `linear_bins` equal-width bands over
  [fmin_hz, fmax_hz] (`linear_band_matrix`);
- `lfcc`: linear-frequency cepstra: |STFT|^2 through `n_lfcc_filters` triangular
  filters equally spaced over [fmin_hz, fmax_hz] (peak 1, as torchaudio's
  `linear_fbanks`), dB, orthonormal DCT-II, first `n_lfcc`; with `lfcc_deltas`
  1 or 2 the deltas (and delta-deltas) of `librosa.feature.delta` (width 9,
  mode "interp") follow on the coefficient axis;
- `phase`: two phase differences per band: the instantaneous-frequency
  deviation (phase advance over one hop minus a bin centre's) and the group
  delay (phase step between adjacent bins, relative to the frame centre), each
  summed over the bins of `phase_bands` equal-width bands (power-weighted) and
  given as a unit phasor (cos, sin) with a soft per-clip floor
  (`phase_from_stft`): 4 rows per band, values in [-1, 1]. Level-free (the
  same for any gain), so it carries less of the speaker than the spectra do.

Shapes (F = FeatureConfig): waveform `[..., samples]` float32 in [-1, 1] at
F.sample_rate_hz -> mfcc `[..., F.num_frames, F.n_mfcc]`, mel (dB)
`[..., F.n_mels, F.num_frames]`, linear (dB) `[..., F.num_linear_bins, F.num_frames]`,
lfcc `[..., F.num_frames, F.lfcc_dims]`, phase `[..., 4 F.phase_bands, F.num_frames]`
(`F.feature_shape(key)`). Works batched and unbatched. `compute_features`
returns the config's `feature_keys` only (default mfcc and mel).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from deepwave_tf.config import DELTA_WIDTH_FRAMES, FRONT_ENDS, FeatureConfig

# Dict keys are the contract: feature names = TFRecord keys = keras.Input names
# = serving signature names (declared once, in config.FRONT_ENDS).
MFCC, MEL, LINEAR, LFCC, PHASE = FRONT_ENDS
WAVEFORM = "waveform"
FEATURE_KEYS = (MFCC, MEL)  # the default front-end (FeatureConfig().feature_keys)
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


def hop_samples(hop_seconds: float, cfg: FeatureConfig) -> int:
    """Hop between scoring windows in samples (at least 1)."""
    return max(int(round(hop_seconds * cfg.sample_rate_hz)), 1)


def window_starts(num_samples: tf.Tensor, cfg: FeatureConfig, hop: int) -> tf.Tensor:
    """Start samples `[n_windows]` int32 of the scoring windows of a clip.

    One window (start 0) when the clip fits in `cfg.num_samples`; otherwise
    starts `0, hop, 2 hop, ...` while the window stays inside the clip, plus one
    ending at the clip's end, so every sample is scored. The graph twin of
    `serving.window_starts`.
    """
    size = cfg.num_samples
    last = tf.maximum(tf.cast(num_samples, tf.int32) - size, 0)
    starts = tf.range(0, last + 1, hop, dtype=tf.int32)
    # Append `last` unless the regular grid already ends there.
    extra = tf.cast(starts[-1] < last, tf.int32)
    return tf.concat([starts, tf.fill([extra], last)], axis=0)


def frame_windows(
    waveform: tf.Tensor, cfg: FeatureConfig, hop: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Cut a batch of equal-length clips into scoring windows of `cfg.num_samples`.

    A clip no longer than the window is one window, zero-padded as `fix_length`
    pads (`cfg.pad`); a longer clip is never cropped: see `window_starts`.

    Args:
        waveform: `[batch, samples]` float32, any number of samples (0 allowed).
        cfg: feature config (window = `cfg.num_samples`).
        hop: samples between window starts (`hop_samples`).

    Returns:
        `(windows, start_s, end_s)`: `[batch, n_windows, cfg.num_samples]` float32,
        and the windows' first and last second in the clip, `[n_windows]`
        float32 each (a padded clip's window ends at the clip's end).
    """
    size = cfg.num_samples
    length = tf.shape(waveform)[1]
    missing = tf.maximum(size - length, 0)
    before = missing // 2 if cfg.pad == "center" else tf.constant(0, tf.int32)
    padded = tf.pad(waveform, [[0, 0], [before, missing - before]])
    starts = window_starts(tf.shape(padded)[1], cfg, hop)
    index = starts[:, None] + tf.range(size, dtype=tf.int32)[None, :]  # [n_windows, size]
    windows = tf.gather(padded, index, axis=1)
    rate = float(cfg.sample_rate_hz)
    start_s = tf.cast(starts, tf.float32) / rate
    end_s = tf.cast(tf.minimum(starts + size, length), tf.float32) / rate
    return windows, start_s, end_s


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
    mel_edges = tf.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    hz_edges = mel_to_hz(mel_edges)  # [n_mels + 2]
    weights = _triangles(hz_edges, cfg)  # [n_mels, bins]
    enorm = 2.0 / (hz_edges[2:] - hz_edges[:-2])
    weights = weights * enorm[:, None]
    return tf.cast(tf.transpose(weights), tf.float32)


def linear_filterbank(cfg: FeatureConfig) -> tf.Tensor:
    """LFCC filters, `[cfg.num_fft_bins, cfg.n_lfcc_filters]` float32.

    Triangles of peak 1 whose edges are `n_lfcc_filters + 2` equally spaced
    frequencies from fmin_hz to fmax_hz (torchaudio's `linear_fbanks`).
    """
    hz_edges = tf.linspace(
        tf.constant(cfg.fmin_hz, tf.float64), cfg.fmax_hz, cfg.n_lfcc_filters + 2
    )
    return tf.cast(tf.transpose(_triangles(hz_edges, cfg)), tf.float32)


def _triangles(hz_edges: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Triangles of peak 1 on the FFT bins, `[len(hz_edges) - 2, bins]` float64."""
    fft_hz = tf.linspace(tf.constant(0.0, tf.float64), cfg.sample_rate_hz / 2.0, cfg.num_fft_bins)
    widths = hz_edges[1:] - hz_edges[:-1]  # [n + 1]
    ramps = hz_edges[:, None] - fft_hz[None, :]  # [n + 2, bins]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    return tf.maximum(tf.constant(0.0, tf.float64), tf.minimum(lower, upper))  # [n, bins]


@functools.lru_cache(maxsize=16)
def band_index(cfg: FeatureConfig, n_bands: int) -> np.ndarray:
    """Equal-width band of every FFT bin, `[cfg.num_fft_bins]` int (-1 = outside).

    Band b holds the bins of frequency f with `fmin_hz + b w <= f < fmin_hz + (b + 1) w`,
    `w = (fmax_hz - fmin_hz) / n_bands`; a bin exactly at fmax_hz joins the last band.
    FeatureConfig makes sure no band is empty.
    """
    hz = np.arange(cfg.num_fft_bins) * (cfg.sample_rate_hz / cfg.n_fft)
    band = np.floor((hz - cfg.fmin_hz) / (cfg.fmax_hz - cfg.fmin_hz) * n_bands).astype(int)
    band[hz == cfg.fmax_hz] = n_bands - 1
    band[(hz < cfg.fmin_hz) | (hz > cfg.fmax_hz)] = -1
    return band


def band_matrix(cfg: FeatureConfig, n_bands: int) -> np.ndarray:
    """`[cfg.num_fft_bins, n_bands]` float32: column b averages the bins of band b."""
    band = band_index(cfg, n_bands)
    weights = np.zeros((cfg.num_fft_bins, n_bands), np.float64)
    inside = band >= 0
    weights[np.flatnonzero(inside), band[inside]] = 1.0
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


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
    return _swap_last_axes(apply_mel_filters(power_spectrum(stft(waveform, cfg)), cfg))


def stft(waveform: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Centred STFT of a fixed-length clip, as librosa's `stft(center=True, pad_mode="constant")`.

    Args:
        waveform: `[..., cfg.num_samples]` float32.

    Returns:
        `[..., cfg.num_frames, cfg.num_fft_bins]` complex64; frame t is centred
        on sample `t * hop_length_samples`.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rank = waveform.shape.rank
    half = cfg.n_fft // 2
    # librosa center=True, pad_mode="constant": zeros on both sides.
    padded = tf.pad(waveform, [[0, 0]] * (rank - 1) + [[half, half]])
    return tf.signal.stft(
        padded,
        frame_length=cfg.n_fft,
        frame_step=cfg.hop_length_samples,
        fft_length=cfg.n_fft,
        window_fn=_window_fn(cfg),
        pad_end=False,
    )  # [..., frames, bins]


def power_spectrum(spec: tf.Tensor) -> tf.Tensor:
    """|STFT|^2, `[..., frames, bins]` float32."""
    return tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2


def apply_mel_filters(power: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """`power @ mel_weight_matrix(cfg)` computed band by band: `[..., bins]` -> `[..., n_mels]`.

    The filter matrix is 98% zeros (each FFT bin feeds at most two adjacent
    triangles), so the product is split into a few contiguous bin ranges, each
    multiplied only by the mel columns it touches, then padded back to n_mels
    and summed. Same result as the dense product up to float rounding (~1e-7
    relative) at about a sixth of the multiply-adds; plain dense ops, so it
    traces into any graph (tf.data, SavedModel, XLA).
    """
    return _apply_banded(power, cfg, MEL)


def _apply_banded(power: tf.Tensor, cfg: FeatureConfig, kind: str) -> tf.Tensor:
    """`power @ W` for the sparse filterbank `W` of `kind` (`_filter_bands`)."""
    n_filters = cfg.n_mels if kind == MEL else cfg.n_lfcc_filters
    parts = []
    for b0, b1, m0, m1, weights in _filter_bands(cfg, kind):
        y = tf.tensordot(power[..., b0:b1], tf.constant(weights), axes=1)
        rank = y.shape.rank
        parts.append(tf.pad(y, [[0, 0]] * (rank - 1) + [[m0, n_filters - m1]]))
    if not parts:  # no FFT bin inside [fmin, fmax]: every filter is empty
        return tf.zeros_like(power[..., :1]) * tf.zeros([n_filters])
    return tf.add_n(parts)


@functools.lru_cache(maxsize=16)
def _filter_bands(cfg: FeatureConfig, kind: str) -> tuple:
    """Partition of the FFT bins into ranges `(b0, b1, m0, m1, weights[b0:b1, m0:m1])`.

    `kind` MEL: `mel_weight_matrix`; LFCC: `linear_filterbank`. Chosen by
    dynamic programming to minimise multiply-adds plus a per-range cost (one
    extra op), over range edges on a grid of 8 bins. Evaluated once per
    config, eagerly (`tf.init_scope`), so a trace only embeds constants.
    """
    with tf.init_scope():
        matrix = mel_weight_matrix(cfg) if kind == MEL else linear_filterbank(cfg)
        weights = matrix.numpy()
    nonzero = weights != 0
    n_bins = weights.shape[0]
    # Each used bin's first and last filter; both are non-decreasing in the bin.
    used = [b for b in range(n_bins) if nonzero[b].any()]
    first = {b: int(nonzero[b].argmax()) for b in used}
    last = {b: int(weights.shape[1] - 1 - nonzero[b, ::-1].argmax()) for b in used}
    next_used, prev_used = [n_bins] * (n_bins + 1), [-1] * (n_bins + 1)
    for b in reversed(range(n_bins)):
        next_used[b] = b if b in first else next_used[b + 1]
    for b in range(n_bins):
        prev_used[b + 1] = b if b in first else prev_used[b]
    edges = list(range(0, n_bins, 8)) + [n_bins]
    per_band = 2000  # multiply-adds one more range costs, roughly, in op overhead

    def span(b0: int, b1: int) -> tuple[int, int]:
        lo, hi = next_used[b0], prev_used[b1]
        if lo >= b1:
            return 0, 0
        return first[lo], last[hi] + 1

    def cost(i: int, j: int) -> int:
        m0, m1 = span(edges[i], edges[j])
        return (edges[j] - edges[i]) * (m1 - m0) + per_band

    best, prev = [0] + [None] * (len(edges) - 1), [0] * len(edges)
    for j in range(1, len(edges)):
        best[j], prev[j] = min((best[i] + cost(i, j), i) for i in range(j))
    bands, j = [], len(edges) - 1
    while j > 0:
        i = prev[j]
        b0, b1 = edges[i], edges[j]
        m0, m1 = span(b0, b1)
        if m1 > m0:
            bands.append((b0, b1, m0, m1, weights[b0:b1, m0:m1].copy()))
        j = i
    return tuple(reversed(bands))


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


# dB of power per natural-log unit: 10 log10(p) = DB_PER_NEPER ln(p)
DB_PER_NEPER = 10.0 / math.log(10.0)


def power_to_db(power: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """`10 log10(max(power, amin))`, floored at `top_db` below each clip's peak.

    Args:
        power: `[..., n_mels, frames]`; the peak is taken per clip over the
            last two axes.

    Returns:
        Same shape, dB (ref 1.0).
    """
    return DB_PER_NEPER * power_to_ln(power, cfg)


def power_to_ln(power: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """`power_to_db` before its constant factor: `ln(max(power, floor))`.

    Callers that follow the log with a linear map (the DCT of the MFCC, a
    mean) fold `DB_PER_NEPER` into it and save a pass over the data
    (`augment.py`).
    """
    floor = tf.constant(cfg.amin, power.dtype)
    if cfg.top_db > 0:
        # max(dB, peak dB - top_db) taken before the log (it is monotone): one
        # log pass and a reduction over power instead of over dB.
        peak = tf.reduce_max(power, axis=[-2, -1], keepdims=True)
        floor = tf.maximum(peak * 10.0 ** (-cfg.top_db / 10.0), floor)
    return tf.math.log(tf.maximum(power, floor))


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
    return mfcc_from_time_major(_swap_last_axes(log_mel), cfg)


def mfcc_from_time_major(log_mel: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """`mfcc_from_log_mel` of a time-major log-mel `[..., frames, n_mels]` -> `[..., frames, n_mfcc]`."""
    return tf.tensordot(log_mel, dct_matrix(cfg), axes=1)


def dct_matrix(
    cfg: FeatureConfig, scale: float = 1.0, *, n_in: int | None = None, n_out: int | None = None
) -> tf.Tensor:
    """First `n_out` orthonormal DCT-II basis vectors, `[n_in, n_out]` float32.

    By default `n_in = cfg.n_mels`, `n_out = cfg.n_mfcc` (the MFCC); the LFCC
    passes its filter and coefficient counts.
    `x @ dct_matrix(cfg)` equals `tf.signal.dct(x, type=2, norm="ortho")[..., :n_mfcc]`
    (and scipy's `dct(type=2, norm="ortho")`), but computes only the kept
    coefficients: about 3x cheaper per clip than the full transform.
    `scale` multiplies the basis (in float64, before the cast), so
    `ln_mel @ dct_matrix(cfg, DB_PER_NEPER)` is the MFCC of the log-mel in dB.
    """
    n_in = cfg.n_mels if n_in is None else n_in
    n_out = cfg.n_mfcc if n_out is None else n_out
    n = tf.cast(tf.range(n_in), tf.float64)
    k = tf.cast(tf.range(n_out), tf.float64)
    basis = tf.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :])
    norm = tf.where(
        k == 0,
        tf.constant(math.sqrt(1.0 / n_in), tf.float64),
        tf.constant(math.sqrt(2.0 / n_in), tf.float64),
    )
    return tf.cast(basis * (norm[None, :] * scale), tf.float32)


def features_from_power_mel(mel_power: tf.Tensor, cfg: FeatureConfig) -> dict[str, tf.Tensor]:
    """`{"mfcc", "mel"}` from a (possibly mixed) mel power spectrogram `[..., n_mels, frames]`."""
    log_mel = power_to_db(mel_power, cfg)
    return {MFCC: mfcc_from_log_mel(log_mel, cfg), MEL: log_mel}


def compute_features(waveform: tf.Tensor, cfg: FeatureConfig) -> dict[str, tf.Tensor]:
    """Waveform of any length -> the model's features, `cfg.feature_keys`.

    Args:
        waveform: `[samples]` or `[batch, samples]` float32 at
            `cfg.sample_rate_hz`, any number of samples (fixed by `fix_length`).
        cfg: feature config.

    Returns:
        `{key: [..., *cfg.feature_shape(key)]}` float32 for each key of
        `cfg.feature_keys`; by default `{"mfcc": [..., num_frames, n_mfcc],
        "mel": [..., n_mels, num_frames]}`, mel in dB. One STFT serves them all.
    """
    keys = cfg.feature_keys
    spec = stft(fix_length(waveform, cfg), cfg)  # [..., frames, bins]
    out: dict[str, tf.Tensor] = {}
    if MFCC in keys or MEL in keys:
        mel_power = _swap_last_axes(apply_mel_filters(power_spectrum(spec), cfg))
        out.update(features_from_power_mel(mel_power, cfg))
    if LINEAR in keys:
        out[LINEAR] = log_linear_from_stft(spec, cfg)
    if LFCC in keys:
        out[LFCC] = lfcc_from_stft(spec, cfg)
    if PHASE in keys:
        out[PHASE] = phase_from_stft(spec, cfg)
    return {key: out[key] for key in keys}


def log_linear_from_stft(spec: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Log power spectrogram: `[..., frames, bins]` complex -> `[..., num_linear_bins, frames]` dB.

    `power_to_db` (per-clip `top_db` floor) of |STFT|^2, every bin when
    `cfg.linear_bins == 0`, else the mean power of each equal-width band (`band_matrix`).
    """
    power = power_spectrum(spec)
    if cfg.linear_bins:
        power = tf.tensordot(power, tf.constant(band_matrix(cfg, cfg.linear_bins)), axes=1)
    return power_to_db(_swap_last_axes(power), cfg)


def lfcc_from_stft(spec: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """LFCC: `[..., frames, bins]` complex -> `[..., frames, cfg.lfcc_dims]`.

    |STFT|^2 through `linear_filterbank`, `power_to_db`, orthonormal DCT-II
    (first `n_lfcc`), then `cfg.lfcc_deltas` orders of `deltas` appended.
    """
    power = _apply_banded(power_spectrum(spec), cfg, LFCC)  # [..., frames, n_filters]
    log_power = power_to_db(power, cfg)  # the per-clip peak is layout-free
    ceps = tf.tensordot(log_power, dct_matrix(cfg, n_in=cfg.n_lfcc_filters, n_out=cfg.n_lfcc), 1)
    parts = [ceps] + [deltas(ceps, order) for order in range(1, cfg.lfcc_deltas + 1)]
    return tf.concat(parts, axis=-1) if len(parts) > 1 else ceps


def deltas(x: tf.Tensor, order: int = 1) -> tf.Tensor:
    """`librosa.feature.delta(x, width=9, order=order, axis=-2, mode="interp")` of a time-major x.

    A Savitzky-Golay derivative (polynomial order = `order`) over
    `DELTA_WIDTH_FRAMES` frames. In "interp" mode the edge frames take the
    derivative of the polynomial fitted to the first (last) full window, which
    for these orders is constant over the window: the first valid value.

    Args:
        x: `[..., frames, dims]`, frames >= 9.
        order: 1 (delta) or 2 (delta-delta).

    Returns:
        Same shape.
    """
    half = DELTA_WIDTH_FRAMES // 2
    n = np.arange(-half, half + 1, dtype=np.float64)
    if order == 1:
        coeffs = n / np.sum(n**2)
    elif order == 2:
        centred = n**2 - np.mean(n**2)
        coeffs = 2.0 * centred / np.sum(centred**2)
    else:
        raise ValueError(f"deltas: order must be 1 or 2, not {order}")
    frames = x.shape[-2]
    valid = tf.add_n(
        [float(c) * x[..., i : frames - 2 * half + i, :] for i, c in enumerate(coeffs) if c != 0]
    )  # [..., frames - 8, dims]: centred on frames half .. frames - half - 1
    rank = x.shape.rank
    first, last = valid[..., :1, :], valid[..., -1:, :]
    reps = [1] * (rank - 2)
    return tf.concat(
        [tf.tile(first, reps + [half, 1]), valid, tf.tile(last, reps + [half, 1])], axis=-2
    )


PHASE_FLOOR_DB = 50.0  # phase: soft floor of the band sums, under the clip's peak


def phase_from_stft(spec: tf.Tensor, cfg: FeatureConfig) -> tf.Tensor:
    """Band phase phasors: `[..., frames, bins]` complex -> `[..., 4 phase_bands, frames]`.

    Two phase differences per bin: the instantaneous-frequency deviation of bin
    k at frame t, `X[t, k] conj(X[t-1, k]) exp(-i 2 pi k hop / n_fft)` (0 at
    frame 0), and the group delay, `-X[t, k] conj(X[t, k+1])` (the minus
    removes the frame centre's linear phase: a click at the centre gives angle
    0, a later one a positive angle). Each band sums its bins' products, which
    weights them by power, so quiet bins (whose phase is noise) count little.
    The sum `s` is given as the phasor `s / sqrt(|s|^2 + floor^2)`, its cos and
    sin scaled by a soft floor `floor = peak |s| 10^(-PHASE_FLOOR_DB / 10)`
    per clip and kind: continuous in the audio, unlike an angle, which jumps at
    +-pi and is arbitrary where `s` is rounding noise; bands 50 dB under the
    clip's strongest fade to 0, as their phase is mostly noise (and float32
    rounding would move their phasors by up to ~1e-2 at an 80 dB floor). Silence
    gives 0.

    Rows: IF-deviation cos, IF-deviation sin, group-delay cos, group-delay sin,
    `phase_bands` each, low bands first. Values in [-1, 1].
    """
    bins = cfg.num_fft_bins
    k = np.arange(bins, dtype=np.float64)
    advance = -2.0 * np.pi * k * cfg.hop_length_samples / cfg.n_fft
    rotate = tf.constant(np.cos(advance) + 1j * np.sin(advance), tf.complex64)
    prev = tf.concat([tf.zeros_like(spec[..., :1, :]), spec[..., :-1, :]], axis=-2)
    ifd = spec * tf.math.conj(prev) * rotate  # [..., frames, bins]
    gd = -spec[..., :-1] * tf.math.conj(spec[..., 1:])  # [..., frames, bins - 1]
    weights = (band_matrix(cfg, cfg.phase_bands) > 0).astype(np.float32)  # sums, not means
    rows = []
    # A pair (k, k+1) belongs to bin k's band.
    for products, w in ((ifd, weights), (gd, weights[:-1])):
        w = tf.constant(w)
        re = _swap_last_axes(
            tf.tensordot(tf.math.real(products), w, axes=1)
        )  # [..., bands, frames]
        im = _swap_last_axes(tf.tensordot(tf.math.imag(products), w, axes=1))
        size = tf.sqrt(re**2 + im**2)
        peak = tf.reduce_max(size, axis=[-2, -1], keepdims=True)
        floor = peak * 10.0 ** (-PHASE_FLOOR_DB / 10.0) + cfg.amin
        norm = tf.math.rsqrt(size**2 + floor**2)
        rows += [re * norm, im * norm]
    return tf.concat(rows, axis=-2)


def _swap_last_axes(x: tf.Tensor) -> tf.Tensor:
    rank = x.shape.rank
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return tf.transpose(x, perm)


def model_inputs(feats: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Stored features -> the model's inputs: band-major front-ends get a channel axis.

    `{"mel": [..., n_mels, frames]}` -> `{"mel": [..., n_mels, frames, 1]}`;
    time-major ones (mfcc, lfcc) and other keys pass as they are (`model.input_shapes`).
    """
    return {
        key: x[..., None] if key in FRONT_ENDS and not FeatureConfig.time_major(key) else x
        for key, x in feats.items()
    }
