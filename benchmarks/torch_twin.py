"""A PyTorch twin of `deepwave_tf.model.build_model`, built from the same `Config`.

Only `benchmarks/bench_train.py` uses it, to compare training speed with PyTorch
layer for layer; torch is in the optional `bench` extra, never a dependency of
the package or its tests. The twin follows `build_model` section by section, so
a model option that changes the Keras graph must change this file too;
`check_twin` (run by the benchmark before timing) compares shapes and trainable
parameter counts and fails loudly when the two drift.

Inputs are the config's front-ends (`features.sequence`, time-major, for the
BiLSTM; `features.image`, band-major, for the CNN; both for the stats branch):
mfcc and mel by default, lfcc, linear or phase in the frontend_* configs.
Layouts are each framework's own: the Keras model reads the image NHWC
`[batch, bands, frames, 1]`, the twin NCHW `[batch, 1, bands, frames]`.
Both read the sequence `[batch, frames, dims]`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepwave_tf.config import Config, ModelConfig
from deepwave_tf.features import WAVEFORM

# Keras's defaults where torch's differ (the values matter for the numbers, not the speed).
KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # torch's momentum = 1 - Keras's 0.99
KERAS_BCE_EPS = 1e-7


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's "same" padding of one axis: (before, after), output ceil(size / stride)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _activation(name: str):
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()  # exact (erf), as keras.activations.gelu's default
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    raise ValueError(f"model.activation={name!r} has no PyTorch twin")


class _GlobalPool(nn.Module):
    """Global "avg" | "max" | "avgmax" (concatenated) pooling over `dims`."""

    def __init__(self, how: str, dims: tuple[int, ...]):
        super().__init__()
        self.how, self.dims = how, dims

    def forward(self, x):
        parts = []
        if self.how in ("avg", "avgmax"):
            parts.append(x.mean(dim=self.dims))
        if self.how in ("max", "avgmax"):
            parts.append(x.amax(dim=self.dims))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


def _band_statistics(x):
    """`[batch, time, bands]` -> `[batch, 2 * bands]` (model.BandStatistics)."""
    mean = x.mean(dim=1)
    std = torch.sqrt(torch.clamp((x * x).mean(dim=1) - mean * mean, min=1e-8))
    return torch.cat([mean, std], dim=-1)


class MfccBranch(nn.Module):
    """MFCC branch: (average pool over time) -> stacked BiLSTM -> `[batch, features]`."""

    def __init__(self, m: ModelConfig, n_mfcc: int, num_frames: int):
        # n_mfcc: the sequence front-end's values per frame (MFCC, or LFCC with deltas)
        super().__init__()
        self.m = m
        # Keras's "same" average pooling: ceil(frames / pool) windows, the padding split as
        # TF splits it (the smaller half first) and left out of each window's mean.
        self.pool = None
        if m.mfcc_time_pool > 1:
            pad_before = _same_padding(num_frames, m.mfcc_time_pool, m.mfcc_time_pool)[0]
            self.pool = nn.AvgPool1d(
                m.mfcc_time_pool, padding=pad_before, ceil_mode=True, count_include_pad=False
            )
        self.lstms = nn.ModuleList(
            nn.LSTM(
                n_mfcc if i == 0 else 2 * m.lstm_units,
                m.lstm_units,
                batch_first=True,
                bidirectional=True,
            )
            for i in range(m.lstm_layers)
        )
        self.drop = nn.Dropout(m.lstm_dropout) if m.lstm_dropout > 0 else None
        self.global_pool = None if m.lstm_pooling == "last" else _GlobalPool(m.lstm_pooling, (1,))

    def forward(self, x):  # [batch, frames, n_mfcc]
        if self.pool is not None:
            x = self.pool(x.transpose(1, 2)).transpose(1, 2)
        h_n = None
        for lstm in self.lstms:
            if self.drop is not None:  # Keras's LSTM(dropout=) drops the layer's inputs
                x = self.drop(x)
            x, (h_n, _) = lstm(x)
        if self.global_pool is None:  # Bidirectional(return_sequences=False): both final states
            return torch.cat([h_n[0], h_n[1]], dim=-1)
        return self.global_pool(x)


class MelBranch(nn.Module):
    """mel branch: Conv2D (+ BN) + activation (+ max pool) blocks -> global pool.

    Convolutions pad k // 2 on each side: the output size of Keras's "same"
    (ceil(n / stride)) at the same cost. With a stride, TF pads the odd extra
    row at the end only, so `exact_padding=True` pads the first conv's input as
    TF does (an extra copy): the weights-copied parity check needs it, the
    timing does not.
    """

    def __init__(self, m: ModelConfig, mel_shape: tuple[int, int], exact_padding: bool = False):
        super().__init__()
        self.first_pad = None
        if exact_padding and m.first_conv_stride > 1:
            (top, bottom), (left, right) = (
                _same_padding(n, m.conv_kernel, m.first_conv_stride) for n in mel_shape
            )
            self.first_pad = (left, right, top, bottom)
        if m.conv_kernel % 2 != 1:
            raise ValueError("the twin pads like Keras's 'same' only for odd model.conv_kernel")
        blocks, channels = [], 1
        for i, filters in enumerate(m.conv_filters):
            block = [
                # padding k // 2 with stride s gives Keras's "same" output size, ceil(n / s).
                nn.Conv2d(
                    channels,
                    filters,
                    m.conv_kernel,
                    stride=m.first_conv_stride if i == 0 else 1,
                    padding=0 if (i == 0 and self.first_pad) else m.conv_kernel // 2,
                    bias=not m.batch_norm,
                )
            ]
            if m.batch_norm:
                block.append(nn.BatchNorm2d(filters, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM))
            block.append(_activation(m.activation))
            if m.pool_size > 1:
                block.append(nn.MaxPool2d(m.pool_size, ceil_mode=True))
            blocks.append(nn.Sequential(*block))
            channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.global_pool = _GlobalPool(m.conv_pooling, (2, 3))

    def forward(self, y):  # [batch, 1, n_mels, frames]
        if self.first_pad is not None:
            y = F.pad(y, self.first_pad)
        return self.global_pool(self.blocks(y))


def _tf_same_pad(x, kernel: int, stride: int, value: float = 0.0):
    """Pad the last axis as TF's "same" does (the smaller half first)."""
    return F.pad(x, _same_padding(x.shape[-1], kernel, stride), value=value)


class _SamePool1d(nn.Module):
    """Keras's `MaxPooling1D(k, padding="same")` on `[batch, channels, time]`."""

    def __init__(self, k: int, exact: bool):
        super().__init__()
        self.k, self.exact = k, exact
        self.pool = nn.MaxPool1d(k, ceil_mode=not exact)

    def forward(self, x):
        if self.exact:
            x = _tf_same_pad(x, self.k, self.k, float("-inf"))
        return self.pool(x)


class _ResBlock1d(nn.Module):
    """sincnet.waveform_branch's residual block: conv3-BN-act-conv3-BN (+ 1x1 projection), act, pool 3."""

    def __init__(self, c_in: int, c_out: int, activation: str, exact: bool):
        super().__init__()
        bn = dict(eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)
        self.conv_a = nn.Conv1d(c_in, c_out, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm1d(c_out, **bn)
        self.act_a = _activation(activation)
        self.conv_b = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm1d(c_out, **bn)
        self.project = nn.Conv1d(c_in, c_out, 1, bias=False) if c_in != c_out else None
        self.act_b = _activation(activation)
        self.pool = _SamePool1d(3, exact)

    def forward(self, x):
        y = self.bn_b(self.conv_b(self.act_a(self.bn_a(self.conv_a(x)))))
        skip = x if self.project is None else self.project(x)
        return self.pool(self.act_b(y + skip))


class WaveformBranch(nn.Module):
    """sincnet.waveform_branch: decimate -> SincConv -> |x|, pool, BN, act -> residual blocks -> pool.

    The sinc kernels are recomputed from the two trainable cut-off vectors in
    every call, as `SincConv` does. Strided convolutions and the pools pad as
    TF's "same" (explicitly) only with `exact_padding` (the parity check); the
    timed twin uses torch's own padding of the same output size.
    """

    def __init__(self, m: ModelConfig, sample_rate_hz: int, exact_padding: bool = False):
        super().__init__()
        from deepwave_tf import sincnet

        self.exact = exact_padding
        self.factor = sample_rate_hz // m.waveform_rate_hz
        self.rate = float(m.waveform_rate_hz)
        self.stride = m.waveform_stride
        self.kernel_samples = m.waveform_kernel_samples
        decimate = sincnet.Decimate(self.factor).lowpass() if self.factor > 1 else None
        self.register_buffer(
            "lowpass", None if decimate is None else torch.from_numpy(decimate)[None, None]
        )
        low, band = sincnet.mel_band_edges(m.waveform_filters, self.rate)
        self.low_hz = nn.Parameter(torch.tensor(low - sincnet.MIN_LOW_HZ, dtype=torch.float32))
        self.band_hz = nn.Parameter(
            torch.tensor(np.maximum(band - sincnet.MIN_BAND_HZ, 0.0), dtype=torch.float32)
        )
        half = (self.kernel_samples - 1) // 2
        t = np.arange(-half, half + 1, dtype=np.float64) / self.rate
        self.register_buffer(
            "t", torch.tensor(np.where(t == 0.0, 1.0, t)[:, None], dtype=torch.float32)
        )
        self.register_buffer("centre", torch.tensor((t == 0.0)[:, None]))
        self.register_buffer(
            "window",
            torch.tensor(np.hamming(self.kernel_samples)[:, None] / self.rate, dtype=torch.float32),
        )
        self.min_low, self.min_band = sincnet.MIN_LOW_HZ, sincnet.MIN_BAND_HZ
        self.sinc_pool = _SamePool1d(3, exact_padding)
        self.sinc_bn = nn.BatchNorm1d(
            m.waveform_filters, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM
        )
        self.sinc_act = _activation(m.activation)
        blocks, c_in = [], m.waveform_filters
        for channels in m.waveform_channels:
            blocks.append(_ResBlock1d(c_in, channels, m.activation, exact_padding))
            c_in = channels
        self.blocks = nn.Sequential(*blocks)
        self.global_pool = _GlobalPool(m.conv_pooling, (2,))

    def kernels(self):
        """`[filters, 1, K]` band-pass kernels (sincnet.windowed_sinc_bandpass)."""
        low = self.min_low + self.low_hz.abs()
        high = torch.clamp(low + self.min_band + self.band_hz.abs(), self.min_low, self.rate / 2)
        two_pi = 2.0 * np.pi
        taps = (torch.sin(two_pi * high * self.t) - torch.sin(two_pi * low * self.t)) / (
            np.pi * self.t
        )
        taps = torch.where(self.centre, 2.0 * (high - low), taps) * self.window  # [K, filters]
        return taps.t()[:, None, :]

    def _conv(self, x, kernel, stride: int):
        k = kernel.shape[-1]
        if self.exact:
            return F.conv1d(_tf_same_pad(x, k, stride), kernel, stride=stride)
        return F.conv1d(x, kernel, stride=stride, padding=k // 2)

    def forward(self, wave):  # [batch, samples]
        x = wave[:, None, :]
        if self.lowpass is not None:
            x = self._conv(x, self.lowpass, self.factor)
        x = self._conv(x, self.kernels(), self.stride)
        x = self.sinc_act(self.sinc_bn(self.sinc_pool(x.abs())))
        return self.global_pool(self.blocks(x))


class TorchTwin(nn.Module):
    """`build_model(cfg)` in PyTorch: `(sequence, image)` -> `{"fake", "real"}` probabilities `[batch]`."""

    def __init__(self, cfg: Config, exact_padding: bool = False):
        super().__init__()
        m, f = cfg.model, cfg.features
        self.m = m
        seq_dims, image_shape = _front_end_shapes(cfg)
        # Fixed normalisation (identity statistics, as build_model without stats).
        self.register_buffer("mfcc_mean", torch.zeros(seq_dims))
        self.register_buffer("mfcc_std", torch.ones(seq_dims))
        self.register_buffer("mel_mean", torch.zeros(image_shape[0], 1))
        self.register_buffer("mel_std", torch.ones(image_shape[0], 1))
        width = 0
        self.mfcc = MfccBranch(m, seq_dims, f.num_frames) if "mfcc" in m.branches else None
        if self.mfcc is not None:
            width += 2 * m.lstm_units * (2 if m.lstm_pooling == "avgmax" else 1)
        self.mel = MelBranch(m, image_shape, exact_padding) if "mel" in m.branches else None
        if self.mel is not None:
            width += m.conv_filters[-1] * (2 if m.conv_pooling == "avgmax" else 1)
        self.stats = None
        if "stats" in m.branches:
            if m.stats_squares:
                raise ValueError("model.stats_squares has no PyTorch twin")
            if tuple(m.stats_moments) != ("mean", "std"):
                raise ValueError(
                    f"model.stats_moments={list(m.stats_moments)} has no PyTorch twin "
                    "(it computes the mean and std only)"
                )
            n_stats = 2 * (image_shape[0] + seq_dims)
            if m.stats_units:
                self.stats = nn.Sequential(
                    nn.Linear(n_stats, m.stats_units), _activation(m.activation)
                )
                width += m.stats_units
            else:  # model.py's stats_standardize: batch norm without scale or offset
                self.stats = nn.BatchNorm1d(n_stats, eps=1e-3, momentum=0.01, affine=False)
                width += n_stats
        self.wave = None
        if m.uses_waveform:
            self.wave = WaveformBranch(m, f.sample_rate_hz, exact_padding)
            width += m.waveform_channels[-1] * (2 if m.conv_pooling == "avgmax" else 1)
        # head
        self.dense = (
            nn.Sequential(nn.Linear(width, m.dense_units), _activation(m.activation))
            if m.dense_units
            else nn.Identity()
        )
        self.dropout = nn.Dropout(m.dropout) if m.dropout > 0 else nn.Identity()
        self.scores = nn.Linear(m.dense_units or width, 2)

    def penalty(self):
        """`model.l2` on the dense kernels, as Keras adds it to the loss (0 when off)."""
        if not self.m.l2:
            return 0.0
        kernels = [self.scores.weight]
        if isinstance(self.dense, nn.Sequential):
            kernels.append(self.dense[0].weight)
        if isinstance(self.stats, nn.Sequential):
            kernels.append(self.stats[0].weight)
        return self.m.l2 * sum((w**2).sum() for w in kernels)

    def forward(self, mfcc, mel, wave=None):
        """mfcc: the sequence `[batch, frames, dims]`; mel: the image `[batch, 1, bands, frames]`;
        wave: the samples `[batch, samples]` (waveform branch only)."""
        mfcc = (mfcc - self.mfcc_mean) / self.mfcc_std
        mel = (mel - self.mel_mean) / self.mel_std
        vectors = []
        if self.mfcc is not None:
            vectors.append(self.mfcc(mfcc))
        if self.mel is not None:
            vectors.append(self.mel(mel))
        if self.stats is not None:
            mel_t = mel[:, 0].transpose(1, 2)  # [batch, frames, n_mels]
            s = torch.cat([_band_statistics(mel_t), _band_statistics(mfcc)], dim=-1)
            vectors.append(self.stats(s))
        if self.wave is not None:
            vectors.append(self.wave(wave))
        z = torch.cat(vectors, dim=-1) if len(vectors) > 1 else vectors[0]
        scores = self.scores(self.dropout(self.dense(z)))
        if self.m.head == "softmax":  # model.BinaryLogits
            diff = scores[:, :1] - scores[:, 1:]
            logits = torch.cat([diff, -diff], dim=-1)
        else:
            logits = scores
        probs = torch.sigmoid(logits)
        return {"fake": probs[:, 0], "real": probs[:, 1]}


def loss_fn(cfg: Config, probs, labels):
    """`fit.compile_model`'s loss: BCE on `fake` (softmax head) or the sum over both outputs."""
    keys = ("fake",) if cfg.model.head == "softmax" else ("fake", "real")
    return sum(
        F.binary_cross_entropy(probs[k].clamp(KERAS_BCE_EPS, 1 - KERAS_BCE_EPS), labels[k])
        for k in keys
    )


def make_trainer(cfg: Config):
    """(twin, one training step `step(mfcc, mel, labels) -> loss`), Adam(`train.learning_rate`)."""
    twin = TorchTwin(cfg)
    twin.train()
    # Keras's Adam epsilon is 1e-7 (torch's 1e-8); the rest of the defaults match.
    opt = torch.optim.Adam(twin.parameters(), lr=cfg.train.learning_rate, eps=1e-7)

    def step(mfcc, mel, labels, wave=None):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(cfg, twin(mfcc, mel, wave), labels) + twin.penalty()
        loss.backward()
        opt.step()
        return loss

    return twin, step


def _front_end_shapes(cfg: Config) -> tuple[int, tuple[int, int]]:
    """(values per frame of the sequence, `(bands, frames)` of the image); refuses layouts
    the twin does not follow (a band-major sequence, a time-major image, or one tensor for both)."""
    f = cfg.features
    if f.sequence == f.image or not f.time_major(f.sequence) or f.time_major(f.image):
        raise NotImplementedError(
            f"features.sequence={f.sequence!r}, features.image={f.image!r}: the PyTorch twin "
            "needs a time-major sequence (mfcc, lfcc) and a band-major image (mel, linear, phase)"
        )
    return f.feature_shape(f.sequence)[1], f.feature_shape(f.image)


def random_batch(cfg: Config, batch: int, seed: int = 0):
    """Numpy `(sequence, image_nhwc, labels, waveform or None)`: normal inputs, 0/1 labels."""
    f = cfg.features
    seq_dims, image_shape = _front_end_shapes(cfg)
    rng = np.random.default_rng(seed)
    seq = rng.standard_normal((batch, f.num_frames, seq_dims), dtype=np.float32)
    image = rng.standard_normal((batch, *image_shape, 1), dtype=np.float32)
    labels = {k: rng.integers(0, 2, batch).astype(np.float32) for k in ("fake", "real")}
    wave = None
    if cfg.model.uses_waveform:
        wave = rng.standard_normal((batch, f.num_samples), dtype=np.float32)
    return seq, image, labels, wave


def keras_inputs(cfg: Config, seq, image_nhwc, wave=None) -> dict:
    """The batch as the Keras model's input dict, keyed by front-end name (and `waveform`)."""
    out = {cfg.features.sequence: seq, cfg.features.image: image_nhwc}
    if wave is not None:
        out[WAVEFORM] = wave
    return out


def to_torch(mfcc, mel_nhwc, labels, wave=None):
    """The numpy batch in the twin's layout (image NCHW), contiguous."""
    return (
        torch.from_numpy(mfcc),
        torch.from_numpy(np.ascontiguousarray(mel_nhwc.transpose(0, 3, 1, 2))),
        {k: torch.from_numpy(v) for k, v in labels.items()},
        None if wave is None else torch.from_numpy(wave),
    )


def lstm_extra_biases(m: ModelConfig) -> int:
    """torch's LSTM has two bias vectors (b_ih, b_hh) where Keras has one: 4 units each."""
    return 2 * m.lstm_layers * 4 * m.lstm_units if "mfcc" in m.branches else 0


def copy_keras_weights(keras_model, twin: TorchTwin) -> None:
    """Set the twin's parameters and BN statistics to the Keras model's, layer by layer."""
    m = twin.m

    def put(param, value, transpose=None):
        value = np.asarray(value)
        if transpose is not None:
            value = value.transpose(transpose)
        if tuple(param.shape) != value.shape:
            raise AssertionError(f"shape {tuple(param.shape)} in torch, {value.shape} in Keras")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    if twin.mel is not None:
        for i, block in enumerate(twin.mel.blocks):
            conv = keras_model.get_layer(f"conv_{i}")
            put(block[0].weight, conv.kernel, (3, 2, 0, 1))  # HWIO -> OIHW
            if conv.use_bias:
                put(block[0].bias, conv.bias)
            if m.batch_norm:
                bn = keras_model.get_layer(f"conv_{i}_bn")
                for name, value in zip(
                    ("weight", "bias", "running_mean", "running_var"),
                    (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance),
                ):
                    put(getattr(block[1], name), value)
    if twin.mfcc is not None:
        for i, lstm in enumerate(twin.mfcc.lstms):
            bi = keras_model.get_layer(f"bilstm_{i}")
            for suffix, layer in (("", bi.forward_layer), ("_reverse", bi.backward_layer)):
                cell = layer.cell  # gates i, f, c, o in both frameworks
                put(getattr(lstm, f"weight_ih_l0{suffix}"), cell.kernel, (1, 0))
                put(getattr(lstm, f"weight_hh_l0{suffix}"), cell.recurrent_kernel, (1, 0))
                put(getattr(lstm, f"bias_ih_l0{suffix}"), cell.bias)
                put(getattr(lstm, f"bias_hh_l0{suffix}"), np.zeros(cell.bias.shape, np.float32))
    if twin.wave is not None:
        _copy_waveform_weights(keras_model, twin.wave, put)
    dense = [(twin.scores, "scores")]
    if isinstance(twin.dense, nn.Sequential):
        dense.append((twin.dense[0], "dense"))
    if isinstance(twin.stats, nn.Sequential):
        dense.append((twin.stats[0], "stats_dense"))
    elif twin.stats is not None:
        norm = keras_model.get_layer("stats_standardize")
        put(twin.stats.running_mean, norm.moving_mean)
        put(twin.stats.running_var, norm.moving_variance)
    for linear, name in dense:
        layer = keras_model.get_layer(name)
        put(linear.weight, layer.kernel, (1, 0))
        put(linear.bias, layer.bias)


def _copy_waveform_weights(keras_model, wave: WaveformBranch, put) -> None:
    """The waveform branch's cut-offs, convolutions and batch norms, Keras -> twin."""

    def put_bn(module, name):
        bn = keras_model.get_layer(name)
        for attr, value in zip(
            ("weight", "bias", "running_mean", "running_var"),
            (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance),
        ):
            put(getattr(module, attr), value)

    sinc = keras_model.get_layer("sinc_conv")
    put(wave.low_hz, sinc.low_hz)
    put(wave.band_hz, sinc.band_hz)
    put_bn(wave.sinc_bn, "sinc_bn")
    for i, block in enumerate(wave.blocks):
        name = f"wave_block_{i}"
        for conv, suffix in (
            (block.conv_a, "conv_a"),
            (block.conv_b, "conv_b"),
            (block.project, "project"),
        ):
            if conv is not None:
                put(conv.weight, keras_model.get_layer(f"{name}_{suffix}").kernel, (2, 1, 0))
        put_bn(block.bn_a, f"{name}_bn_a")
        put_bn(block.bn_b, f"{name}_bn_b")


def check_twin(cfg: Config, keras_model, twin: TorchTwin, batch, atol: float = 1e-4) -> float:
    """Raise if the twin differs from the Keras model; returns the largest output difference.

    Compares the trainable parameter counts, then copies the Keras weights
    into a fresh twin with TF's padding and compares inference outputs.
    """
    k_params = int(sum(np.prod(w.shape) for w in keras_model.trainable_weights))
    t_params = sum(p.numel() for p in twin.parameters() if p.requires_grad)
    if t_params - lstm_extra_biases(cfg.model) != k_params:
        raise AssertionError(
            f"{cfg.model.name}: the PyTorch twin has {t_params:,} trainable parameters "
            f"({lstm_extra_biases(cfg.model):,} of them torch's second LSTM bias), the Keras "
            f"model {k_params:,}: benchmarks/torch_twin.py no longer follows model.build_model"
        )
    mfcc, mel, _, wave = batch
    exact = TorchTwin(cfg, exact_padding=True)
    copy_keras_weights(keras_model, exact)
    exact.eval()
    seq_t, image_t, _, wave_t = to_torch(mfcc, mel, {}, wave)
    with torch.no_grad():
        got = exact(seq_t, image_t, wave_t)
    want = keras_model(keras_inputs(cfg, mfcc, mel, wave), training=False)
    worst = 0.0
    for key, value in got.items():
        diff = np.abs(value.numpy() - np.asarray(want[key]))
        worst = max(worst, float(diff.max()))
    if worst > atol:
        raise AssertionError(
            f"{cfg.model.name}: the PyTorch twin's outputs differ from the Keras model's by "
            f"{worst:.2e} (> {atol}) with the same weights: benchmarks/torch_twin.py no longer "
            "follows model.build_model"
        )
    return worst
