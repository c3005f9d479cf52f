"""The two-input CNN + BiLSTM, built from its config only.

Inputs (names are the contract shared with records, tf.data and serving), by default:
- `mfcc` `[frames, n_mfcc]`: normalised per coefficient, then a Bidirectional LSTM;
- `mel` `[n_mels, frames, 1]` (log-mel dB): normalised per band, then Conv2D blocks;
- `waveform` `[num_samples]` (only with `"waveform"` in `model.branches`): the clip's
  samples, through SincNet band-passes and a 1-D CNN (`sincnet.py`).
The front-ends are `features.sequence` (what the BiLSTM branch, `branches` "mfcc",
reads) and `features.image` (what the CNN branch, "mel", reads): any of mfcc,
mel, linear, lfcc, phase. Each stored tensor is one input named by its key,
shaped as stored (`input_shapes`: band-major ones with a channel axis); a branch
that wants the other layout gets a Permute (the BiLSTM reads `[frames, bands]`,
the CNN `[bands, frames, 1]`); the "stats" branch reads every stored tensor.

Both branches are concatenated into a small dense head. Whatever the head, the
layer named `logits` gives two binary logits `[batch, 2]` = (fake, real) with
`fake = sigmoid(logits[:, 0])`, `real = sigmoid(logits[:, 1])`; export scales
them by fitted temperatures for calibration.
- `multilabel`: two independent sigmoids (a clip may hold 0, 1 or 2 voices);
- `softmax`: the seed's 2-class softmax; fake = p(fake), real = 1 - p(fake).

Outputs: `{"fake": [batch], "real": [batch]}` probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from deepwave_tf import sincnet
from deepwave_tf.config import Config, FeatureConfig
from deepwave_tf.features import LABEL_KEYS, WAVEFORM

LOGITS = "logits"


@keras.saving.register_keras_serializable(package="deepwave_tf")
class BinaryLogits(layers.Layer):
    """Head scores `[batch, 2]` -> binary logits `[batch, 2]` of (fake, real).

    For `head="softmax"` the two scores are softmax logits of the classes
    (fake, real): the binary logit of fake is `z0 - z1` and of real `z1 - z0`,
    so sigmoid of them equals the softmax probabilities.
    """

    def __init__(self, head: str = "multilabel", **kwargs):
        super().__init__(**kwargs)
        self.head = head

    def call(self, scores):
        if self.head == "softmax":
            diff = scores[:, :1] - scores[:, 1:]
            return ops.concatenate([diff, -diff], axis=-1)
        return scores

    def get_config(self):
        return {**super().get_config(), "head": self.head}


@keras.saving.register_keras_serializable(package="deepwave_tf")
class Column(layers.Layer):
    """`[batch, n]` -> `[batch]`, column `index`."""

    def __init__(self, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, self.index]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="deepwave_tf")
class BandStatistics(layers.Layer):
    """Statistics over `axis` (time) per band: `[batch, time, bands]` -> `[batch, M * bands]`.

    `moments` (`model.stats_moments`), each a `[batch, bands]` block in this order:
    "mean", "std", and of the first difference over time `d[t] = x[t + 1] - x[t]`,
    "diff_abs" (mean of `|d|`) and "diff_std" (std of `d`).

    `axis=2` reads `[batch, bands, time]` as it is: reducing over the last,
    contiguous axis spares the transposed copy of the whole mel a time-major
    layout would need (a fifth of `stats_views`'s training step).
    """

    def __init__(self, axis: int = 1, moments: tuple[str, ...] = ("mean", "std"), **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.moments = tuple(moments)

    def _std(self, x, mean):
        return ops.sqrt(
            ops.maximum(ops.mean(ops.square(x), axis=self.axis) - ops.square(mean), 1e-8)
        )

    def call(self, x):
        out = []
        mean = ops.mean(x, axis=self.axis)
        if "mean" in self.moments:
            out.append(mean)
        if "std" in self.moments:
            out.append(self._std(x, mean))
        if "diff_abs" in self.moments or "diff_std" in self.moments:
            d = ops.diff(x, axis=self.axis)
            if "diff_abs" in self.moments:
                out.append(ops.mean(ops.abs(d), axis=self.axis))
            if "diff_std" in self.moments:
                out.append(self._std(d, ops.mean(d, axis=self.axis)))
        return ops.concatenate(out, axis=-1) if len(out) > 1 else out[0]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "moments": list(self.moments)}


@keras.saving.register_keras_serializable(package="deepwave_tf")
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` over the channels of NHWC maps, as one fused TF op.

    Keras 3 computes batch norm as separate ops (mean, variance, then normalise):
    several passes over each conv activation forward and more backward. TF's
    `FusedBatchNormV3` (oneDNN on this CPU) does it in one op each way; the conv
    blocks' batch norm was ~40 % of the default's training step. Same weights,
    values (to float32 rounding) and moving averages as the Keras layer; other
    cases (not 4-D, another axis, renorm, a mask, half precision) fall back to it.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (
            mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not self.renorm
            and not self.synchronized
            and self.center
            and self.scale
            and inputs.dtype == "float32"
            and self.epsilon >= 1.001e-5  # the fused kernel's minimum
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        training = bool(training and self.trainable)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma,
            self.beta,
            mean=None if training else self.moving_mean,
            variance=None if training else self.moving_variance,
            epsilon=self.epsilon,
            is_training=training,
        )
        if training:
            # The fused op returns the unbiased batch variance; Keras averages the biased one.
            n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], variance.dtype)
            variance = variance * (n - 1.0) / n
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        return y


# GELU: the exact form x * Phi(x) (keras.activations.gelu's default) and the tanh form
# 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), each as one fused XLA kernel forward and
# one backward. Written as plain TF ops, each form is a chain of element-wise passes over
# the conv activations (the largest tensors of the step) and their autodiff gradient is
# longer still: on this CPU that made the default train ~0.8x as fast as with relu.
_SQRT_2_OVER_PI = float(np.sqrt(2 / np.pi))
_TANH_CUBIC = 0.044715


def _gelu_tanh_inner(x):
    return _SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x)


def gelu_values(x, approximate: bool):
    """GELU of a tensor in plain TF ops (the inference path, and the reference for the kernels)."""
    return tf.nn.gelu(x, approximate=approximate)


@tf.function(jit_compile=True, autograph=False)
def _gelu_exact_forward(x):
    return 0.5 * x * (1.0 + tf.math.erf(x * float(1 / np.sqrt(2))))


@tf.function(jit_compile=True, autograph=False)
def _gelu_exact_backward(x, dy):
    cdf = 0.5 * (1.0 + tf.math.erf(x * float(1 / np.sqrt(2))))
    pdf = tf.exp(-0.5 * x * x) * float(1 / np.sqrt(2 * np.pi))
    return dy * (cdf + x * pdf)


@tf.function(jit_compile=True, autograph=False)
def _gelu_tanh_forward(x):
    return 0.5 * x * (1.0 + tf.tanh(_gelu_tanh_inner(x)))


@tf.function(jit_compile=True, autograph=False)
def _gelu_tanh_backward(x, dy):
    t = tf.tanh(_gelu_tanh_inner(x))
    d_inner = _SQRT_2_OVER_PI * (1.0 + 3 * _TANH_CUBIC * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner)


@tf.custom_gradient
def _fused_gelu_exact(x):
    return _gelu_exact_forward(x), lambda dy: _gelu_exact_backward(x, dy)


@tf.custom_gradient
def _fused_gelu_tanh(x):
    return _gelu_tanh_forward(x), lambda dy: _gelu_tanh_backward(x, dy)


@keras.saving.register_keras_serializable(package="deepwave_tf")
class Gelu(layers.Layer):
    """GELU, exact (`approximate=False`) or tanh form: fused XLA kernels when training.

    Training runs one compiled kernel forward and one backward (XLA compiles
    once per input shape, a few ms for an element-wise kernel). Inference
    (predict, evaluate, the exported SavedModel) uses plain TF ops, so the
    export holds no XLA op; both paths agree to float32 rounding (~1e-6).
    """

    def __init__(self, approximate: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.approximate = approximate

    def call(self, x, training=None):
        if training:
            return (_fused_gelu_tanh if self.approximate else _fused_gelu_exact)(x)
        return gelu_values(x, self.approximate)

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}


def activation_layer(name: str, layer_name: str) -> layers.Layer:
    """`model.activation` ("relu" | "gelu" | "gelu_tanh") as a layer named `layer_name`."""
    if name == "relu":
        return layers.Activation("relu", name=layer_name)
    if name in ("gelu", "gelu_tanh"):
        return Gelu(approximate=name == "gelu_tanh", name=layer_name)
    raise ValueError(f"model.activation={name!r}: choose relu, gelu or gelu_tanh")


@keras.saving.register_keras_serializable(package="deepwave_tf")
def gelu_tanh(x):
    """The tanh form of GELU, for `Dense(activation=...)` (small tensors: plain ops)."""
    return keras.activations.gelu(x, approximate=True)


def _dense_activation(name: str):
    """`model.activation` for a Dense layer: Keras's own name, or `gelu_tanh`."""
    return gelu_tanh if name == "gelu_tanh" else name


def _l2(m):
    """`model.l2` as a kernel regulariser (None when 0, so default models are unchanged)."""
    return keras.regularizers.L2(m.l2) if m.l2 else None


def _hidden_dense(m, units: int, name: str):
    """A hidden Dense layer: `model.activation`, with `model.l2` on its kernel."""
    return layers.Dense(
        units, activation=_dense_activation(m.activation), kernel_regularizer=_l2(m), name=name
    )


def _normalization(stats: Mapping[str, Any] | None, key: str, size: int, axis: int, name: str):
    """Fixed (non-adapted) normalisation from prep's train statistics."""
    if stats and key in stats:
        mean = np.asarray(stats[key]["mean"], np.float32)
        std = np.asarray(stats[key]["std"], np.float32)
    else:  # no statistics given (e.g. a test model): identity
        mean, std = np.zeros(size, np.float32), np.ones(size, np.float32)
    if mean.shape != (size,):
        raise ValueError(f"stats['{key}']['mean'] has shape {mean.shape}, expected ({size},)")
    return layers.Normalization(
        axis=axis, mean=mean, variance=np.maximum(std, 1e-3) ** 2, name=name
    )


def _global_pool(x, how: str, rank: int, name: str):
    avg = layers.GlobalAveragePooling1D if rank == 1 else layers.GlobalAveragePooling2D
    mx = layers.GlobalMaxPooling1D if rank == 1 else layers.GlobalMaxPooling2D
    if how == "avg":
        return avg(name=f"{name}_avg")(x)
    if how == "max":
        return mx(name=f"{name}_max")(x)
    return layers.Concatenate(name=f"{name}_avgmax")(
        [avg(name=f"{name}_avg")(x), mx(name=f"{name}_max")(x)]
    )


def input_shapes(f: FeatureConfig) -> dict[str, tuple[int, ...]]:
    """`{key: shape}` of the model's inputs, unbatched: the stored shape, plus a channel
    axis for the band-major tensors (`features.model_inputs` adds it to stored features)."""
    return {
        key: f.feature_shape(key) if f.time_major(key) else (*f.feature_shape(key), 1)
        for key in f.feature_keys
    }


def build_model(cfg: Config, stats: Mapping[str, Any] | None = None) -> keras.Model:
    """Build the functional model from `cfg.model` and `cfg.features`.

    Args:
        cfg: full config (the inputs and their shapes come from `cfg.features`).
        stats: per-feature normalisation statistics from the records manifest,
            `{"mfcc": {"mean": [n_mfcc], "std": [n_mfcc]}, "mel": {"mean": [n_mels], ...}}`
            (one entry per stored front-end tensor).

    Returns:
        An uncompiled `keras.Model` named `cfg.model.name`.
    """
    m, f = cfg.model, cfg.features
    inputs = {key: keras.Input(shape=shape, name=key) for key, shape in input_shapes(f).items()}

    vectors = []
    normed = {}
    for key in f.feature_keys:
        shape = f.feature_shape(key)
        normed[key] = _normalization(
            stats,
            key,
            shape[1] if f.time_major(key) else shape[0],
            axis=-1 if f.time_major(key) else 1,
            name=f"{key}_norm",
        )(inputs[key])
    time_major: dict[str, Any] = {}  # one time-major view per input, shared by the branches

    def as_time_major(key):
        if key not in time_major:
            time_major[key] = _time_major(normed[key], key, f)
        return time_major[key]

    if "mfcc" in m.branches:
        vectors.append(_mfcc_branch(as_time_major(f.sequence), m))
    if "mel" in m.branches:
        vectors.append(_mel_branch(_band_major(normed[f.image], f.image, f), m))
    if "stats" in m.branches:
        # stats branch: per-band statistics over time (model.stats_moments; mean and std by
        # default) of every normalised input (image first).
        # Band-major inputs are reduced over their last (time) axis as they are: no
        # transposed copy of the image (bench_train.py).
        order = tuple(dict.fromkeys((f.image, f.sequence)))
        per_key = []
        for key in order:
            if f.time_major(key):
                per_key.append(
                    BandStatistics(moments=m.stats_moments, name=f"{key}_stats")(as_time_major(key))
                )
            else:
                bands = layers.Reshape(f.feature_shape(key), name=f"{key}_bands")(normed[key])
                per_key.append(
                    BandStatistics(axis=2, moments=m.stats_moments, name=f"{key}_stats")(bands)
                )
        s = layers.Concatenate(name="band_stats")(per_key) if len(per_key) > 1 else per_key[0]
        if m.stats_units:
            s = _hidden_dense(m, m.stats_units, "stats_dense")(s)
        else:  # standardised statistics straight to the head (a linear model on them)
            s = layers.BatchNormalization(center=False, scale=False, name="stats_standardize")(s)
            if m.stats_squares:  # z and z**2: a deviation either way can score as fake
                s = layers.Concatenate(name="stats_with_squares")(
                    [s, layers.Multiply(name="stats_squares")([s, s])]
                )
        vectors.append(s)
    if m.uses_waveform:
        # waveform branch: SincNet band-passes on the raw samples -> residual 1-D CNN.
        inputs[WAVEFORM] = keras.Input(shape=(f.num_samples,), name=WAVEFORM)
        vectors.append(
            sincnet.waveform_branch(
                inputs[WAVEFORM], m, f.sample_rate_hz, _global_pool, activation_layer
            )
        )

    # head: concatenate -> dense -> two binary logits -> probabilities.
    z = layers.Concatenate(name="concat")(vectors) if len(vectors) > 1 else vectors[0]
    if m.dense_units:
        z = _hidden_dense(m, m.dense_units, "dense")(z)
    if m.dropout > 0:
        z = layers.Dropout(m.dropout, name="dropout")(z)
    scores = layers.Dense(2, kernel_regularizer=_l2(m), name="scores")(z)
    logits = BinaryLogits(m.head, name=LOGITS)(scores)
    outputs = {
        key: layers.Activation("sigmoid", name=key)(Column(i, name=f"{key}_logit")(logits))
        for i, key in enumerate(LABEL_KEYS)
    }
    return keras.Model(inputs, outputs, name=m.name)


def _time_major(x, key: str, f: FeatureConfig):
    """A normalised input as `[batch, frames, bands]` (band-major ones lose their channel)."""
    if f.time_major(key):
        return x
    return layers.Permute((2, 1), name=f"{key}_time_major")(
        layers.Reshape(f.feature_shape(key), name=f"{key}_squeeze")(x)
    )


def _band_major(x, key: str, f: FeatureConfig):
    """A normalised input as `[batch, bands, frames, 1]` (the CNN's image)."""
    if not f.time_major(key):
        return x
    frames, bands = f.feature_shape(key)
    return layers.Reshape((bands, frames, 1), name=f"{key}_image")(
        layers.Permute((2, 1), name=f"{key}_band_major")(x)
    )


def _mfcc_branch(x, m):
    """MFCC branch: BiLSTM over time -> `[batch, units]`."""
    if m.mfcc_time_pool > 1:
        x = layers.AveragePooling1D(m.mfcc_time_pool, padding="same", name="mfcc_time_pool")(x)
    for i in range(m.lstm_layers):
        last = i == m.lstm_layers - 1
        x = layers.Bidirectional(
            layers.LSTM(
                m.lstm_units,
                return_sequences=not (last and m.lstm_pooling == "last"),
                dropout=m.lstm_dropout,
            ),
            name=f"bilstm_{i}",
        )(x)
    if m.lstm_pooling != "last":
        x = _global_pool(x, m.lstm_pooling, rank=1, name="mfcc_pool")
    return x


def _mel_branch(y, m):
    """mel branch: Conv2D blocks over (mel band, frame) -> `[batch, filters]`."""
    for i, filters in enumerate(m.conv_filters):
        y = layers.Conv2D(
            filters,
            m.conv_kernel,
            # A strided first conv: the full-resolution block costs most of the
            # step time on CPU (memory-bound BN/activation/pooling at n_mels x frames).
            strides=m.first_conv_stride if i == 0 else 1,
            padding="same",
            use_bias=not m.batch_norm,
            name=f"conv_{i}",
        )(y)
        if m.batch_norm:
            y = FusedBatchNormalization(name=f"conv_{i}_bn")(y)
        y = activation_layer(m.activation, f"conv_{i}_{m.activation}")(y)
        if m.pool_size > 1:
            y = layers.MaxPooling2D(m.pool_size, padding="same", name=f"conv_{i}_pool")(y)
    return _global_pool(y, m.conv_pooling, rank=2, name="mel_pool")


def logits_model(model: keras.Model) -> keras.Model:
    """The same network up to the `logits` layer: `{key: input}` -> `[batch, 2]`."""
    return keras.Model(model.inputs, model.get_layer(LOGITS).output, name=f"{model.name}_logits")
