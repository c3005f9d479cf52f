"""The waveform branch: learnable band-pass filters on the raw samples (SincNet), then a 1-D CNN.

Why a waveform branch: mel, MFCC and the other magnitude front-ends throw the phase
away, and vocoders leave much of their trace in it (issue 11, item 2). RawNet2 and
AASIST read the raw waveform through SincNet filters (Ravanelli & Bengio 2018): each
filter is a band-pass whose two cut-offs are the only trainable numbers, so the
first layer stays interpretable and cheap in parameters (2 per filter) while
the network chooses which bands to resolve finely.

The branch, `waveform [batch, samples]` at `features.sample_rate_hz` ->
`[batch, 2 * waveform_channels[-1]]` (or `[batch, waveform_channels[-1]]` for
one-sided pooling):
1. `Decimate`: a fixed windowed-sinc low-pass and every k-th sample, down to
   `model.waveform_rate_hz` (16 kHz by default). Why: the dev corpus carries
   nothing above 8 kHz (README, "Generalisation"), so 16 kHz loses nothing there,
   while every later layer costs half as much, and a 129-tap filter spans 8 ms,
   with the frequency resolution of RawNet2/AASIST at their 16 kHz.
2. `SincConv`: `waveform_filters` band-passes of `waveform_kernel_samples` taps,
   Hamming-windowed, cut-offs initialised on the mel scale; computed from the
   trainable cut-offs in every call, so the gradient reaches them.
3. |x| -> max-pool 3 -> batch norm -> activation (as AASIST's first stage).
4. `waveform_channels` residual blocks (conv 3 - BN - act - conv 3 - BN, plus a
   1x1 projection when the width changes; act; max-pool 3).
5. global pooling (`model.conv_pooling`), as the mel CNN.

Core TF ops only (conv1d, sin, where): the exported SavedModel runs in stock
TensorFlow and TF Serving.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

MIN_LOW_HZ = 50.0  # lowest cut-off a filter can reach (SincNet)
MIN_BAND_HZ = 50.0  # narrowest band a filter can shrink to (SincNet)
DECIMATION_TAPS_PER_FACTOR = 64  # anti-alias filter length: 64 taps per decimation step, + 1


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_band_edges(filters: int, sample_rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """SincNet's initial bands: `filters + 1` mel-spaced edges from `MIN_LOW_HZ` up to
    Nyquist minus the minimum low cut-off and bandwidth.

    Returns:
        `(low_hz, band_hz)`, `[filters]` float64 each: band i is [low_i, low_i + band_i].
    """
    high = sample_rate_hz / 2.0 - (MIN_LOW_HZ + MIN_BAND_HZ)
    hz = _mel_to_hz(np.linspace(_hz_to_mel(MIN_LOW_HZ), _hz_to_mel(high), filters + 1))
    return hz[:-1], np.diff(hz)


def windowed_sinc_bandpass(low_hz, high_hz, kernel_samples: int, sample_rate_hz: float):
    """Hamming-windowed ideal band-pass kernels, unit gain in the pass band.

    `h[k] = w[k] (2 f2 sinc(2 f2 t_k) - 2 f1 sinc(2 f1 t_k)) / fs` with
    `t_k = (k - (K - 1) / 2) / fs`: the difference of two ideal low-passes.
    The `/ fs` makes the pass-band gain 1 whatever the bandwidth (SincNet instead
    scales each kernel's peak to 1, which makes narrow bands loud); batch norm
    follows either way.

    Args:
        low_hz, high_hz: `[filters]` cut-offs (any backend tensor or numpy array).
        kernel_samples: K, odd.
        sample_rate_hz: rate of the samples the kernels run on.

    Returns:
        `[K, filters]` float32 kernels.
    """
    half = (kernel_samples - 1) // 2
    t = np.arange(-half, half + 1, dtype=np.float64) / sample_rate_hz  # [K] seconds
    window = np.hamming(kernel_samples)  # symmetric Hamming, as SincNet
    t_nonzero = np.where(t == 0.0, 1.0, t)  # the centre tap is set apart: no 0/0
    t_c = ops.convert_to_tensor(t_nonzero[:, None], "float32")
    centre = ops.convert_to_tensor((t == 0.0)[:, None])
    low = ops.reshape(ops.cast(low_hz, "float32"), (1, -1))
    high = ops.reshape(ops.cast(high_hz, "float32"), (1, -1))
    two_pi = 2.0 * math.pi
    # 2 f sinc(2 f t) = sin(2 pi f t) / (pi t)
    taps = (ops.sin(two_pi * high * t_c) - ops.sin(two_pi * low * t_c)) / (math.pi * t_c)
    taps = ops.where(centre, 2.0 * (high - low), taps)
    return taps * ops.convert_to_tensor(window[:, None] / sample_rate_hz, "float32")


@keras.saving.register_keras_serializable(package="deepwave_tf")
class SincConv(layers.Layer):
    """SincNet convolution: `[batch, time]` or `[batch, time, 1]` -> `[batch, time', filters]`.

    Trainable weights: `low_hz` and `band_hz` `[filters]` (free parameters; the
    cut-offs used are `low = MIN_LOW_HZ + |low_hz|` and
    `high = clip(low + MIN_BAND_HZ + |band_hz|, MIN_LOW_HZ, fs / 2)`). The kernels
    are recomputed from them in every call (`windowed_sinc_bandpass`).
    Padding "same": `time' = ceil(time / stride)`.
    """

    def __init__(
        self,
        filters: int = 70,
        kernel_samples: int = 129,
        sample_rate_hz: float = 16000.0,
        stride: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kernel_samples < 3 or kernel_samples % 2 == 0:
            raise ValueError(f"SincConv kernel_samples={kernel_samples} must be odd and >= 3")
        if filters < 1 or stride < 1:
            raise ValueError(f"SincConv filters={filters}, stride={stride} must be >= 1")
        if sample_rate_hz / 2.0 <= MIN_LOW_HZ + MIN_BAND_HZ:
            raise ValueError(f"SincConv sample_rate_hz={sample_rate_hz} is too low")
        self.filters = int(filters)
        self.kernel_samples = int(kernel_samples)
        self.sample_rate_hz = float(sample_rate_hz)
        self.stride = int(stride)

    def build(self, input_shape):
        low, band = mel_band_edges(self.filters, self.sample_rate_hz)
        self.low_hz = self.add_weight(
            name="low_hz",
            shape=(self.filters,),
            initializer=keras.initializers.Constant(low - MIN_LOW_HZ),
        )
        self.band_hz = self.add_weight(
            name="band_hz",
            shape=(self.filters,),
            # Bands narrower than MIN_BAND_HZ (many filters at a low rate) start at it.
            initializer=keras.initializers.Constant(np.maximum(band - MIN_BAND_HZ, 0.0)),
        )

    def cutoffs_hz(self):
        """`(low, high)` `[filters]` cut-offs in Hz, as `call` uses them."""
        low = MIN_LOW_HZ + ops.abs(self.low_hz)
        high = ops.clip(
            low + MIN_BAND_HZ + ops.abs(self.band_hz), MIN_LOW_HZ, self.sample_rate_hz / 2
        )
        return low, high

    def kernels(self):
        """`[kernel_samples, filters]` float32: the filters `call` convolves with."""
        low, high = self.cutoffs_hz()
        return windowed_sinc_bandpass(low, high, self.kernel_samples, self.sample_rate_hz)

    def call(self, x):
        if len(x.shape) == 2:
            x = ops.expand_dims(x, -1)
        kernel = ops.expand_dims(self.kernels(), 1)  # [K, 1 input channel, filters]
        return ops.conv(x, kernel, strides=self.stride, padding="same")

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        return (input_shape[0], None if time is None else -(-time // self.stride), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_samples": self.kernel_samples,
            "sample_rate_hz": self.sample_rate_hz,
            "stride": self.stride,
        }


@keras.saving.register_keras_serializable(package="deepwave_tf")
class Decimate(layers.Layer):
    """`[batch, time]` -> `[batch, ceil(time / factor), 1]`: anti-alias low-pass, every factor-th sample.

    The low-pass is a fixed Hamming-windowed sinc of `64 factor + 1` taps with its
    cut-off at 0.9 of the new Nyquist (7.2 kHz for 32 -> 16 kHz), so the band the
    dev corpus carries (up to 8 kHz) folds back only above 7.2 kHz, where the
    filter attenuates by 20-50 dB. Not trainable; factor 1 passes the samples
    through (with the channel axis).
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        if factor < 1:
            raise ValueError(f"Decimate factor={factor} must be >= 1")
        self.factor = int(factor)

    def lowpass(self) -> np.ndarray:
        """`[taps]` float32 anti-alias kernel (unit gain at 0 Hz)."""
        taps = DECIMATION_TAPS_PER_FACTOR * self.factor + 1
        cutoff = 0.9 / self.factor  # of the input's Nyquist
        n = np.arange(taps) - (taps - 1) / 2
        h = cutoff * np.sinc(cutoff * n) * np.hamming(taps)
        return (h / h.sum()).astype(np.float32)

    def call(self, x):
        x = ops.expand_dims(x, -1)
        if self.factor == 1:
            return x
        kernel = ops.convert_to_tensor(self.lowpass()[:, None, None])
        return ops.conv(x, kernel, strides=self.factor, padding="same")

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        return (input_shape[0], None if time is None else -(-time // self.factor), 1)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="deepwave_tf")
class Abs(layers.Layer):
    """|x|, element-wise (a layer: a Lambda would not reload without unsafe deserialisation)."""

    def call(self, x):
        return ops.abs(x)


def waveform_branch(x, m, sample_rate_hz: int, global_pool, activation_layer):
    """waveform branch: decimate -> SincConv -> residual 1-D CNN -> `[batch, features]`.

    Args:
        x: `[batch, samples]` waveform tensor (Keras) at `sample_rate_hz`.
        m: `ModelConfig` (its `waveform_*`, `activation`, `conv_pooling`).
        sample_rate_hz: the clip's rate (`features.sample_rate_hz`).
        global_pool: `model._global_pool`, shared with the other branches.
        activation_layer: `model.activation_layer` (relu, gelu or gelu_tanh as a layer).
    """
    act = m.activation
    y = Decimate(sample_rate_hz // m.waveform_rate_hz, name="waveform_decimate")(x)
    y = SincConv(
        m.waveform_filters,
        m.waveform_kernel_samples,
        m.waveform_rate_hz,
        m.waveform_stride,
        name="sinc_conv",
    )(y)
    # AASIST's first stage: rectify, max-pool, batch norm, activation.
    y = Abs(name="sinc_abs")(y)
    y = layers.MaxPooling1D(3, padding="same", name="sinc_pool")(y)
    y = layers.BatchNormalization(name="sinc_bn")(y)
    y = activation_layer(act, f"sinc_{act}")(y)
    for i, channels in enumerate(m.waveform_channels):
        name = f"wave_block_{i}"
        skip = y
        y = layers.Conv1D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv_a")(y)
        y = layers.BatchNormalization(name=f"{name}_bn_a")(y)
        y = activation_layer(act, f"{name}_{act}_a")(y)
        y = layers.Conv1D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv_b")(y)
        y = layers.BatchNormalization(name=f"{name}_bn_b")(y)
        if skip.shape[-1] != channels:
            skip = layers.Conv1D(channels, 1, use_bias=False, name=f"{name}_project")(skip)
        y = layers.Add(name=f"{name}_add")([y, skip])
        y = activation_layer(act, f"{name}_{act}_b")(y)
        y = layers.MaxPooling1D(3, padding="same", name=f"{name}_pool")(y)
    return global_pool(y, m.conv_pooling, rank=1, name="waveform_pool")
