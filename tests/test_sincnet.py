"""sincnet.py: the SincNet layer (shapes, band-pass responses, config round trip, gradients),
the decimator, the waveform branch in the model, and the config checks around it."""

from __future__ import annotations

import numpy as np
import pytest

from deepwave_tf import sincnet
from deepwave_tf.config import REPO_ROOT, ConfigError, load_config


def response_db(kernel: np.ndarray, rate: float, n_fft: int = 8192):
    """|H(f)| in dB of one `[K]` kernel, with its frequencies in Hz."""
    h = np.abs(np.fft.rfft(kernel, n_fft))
    return np.fft.rfftfreq(n_fft, 1.0 / rate), 20 * np.log10(np.maximum(h, 1e-12))


def test_sinc_conv_shapes_and_same_padding():
    layer = sincnet.SincConv(filters=12, kernel_samples=65, sample_rate_hz=16000, stride=3)
    x = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    y = layer(x)
    assert tuple(y.shape) == (2, 334, 12)  # ceil(1000 / 3)
    assert tuple(layer(x[..., None]).shape) == (2, 334, 12)  # [batch, time, 1] as well
    assert layer.compute_output_shape((None, 1000)) == (None, 334, 12)
    assert tuple(layer.kernels().shape) == (65, 12)
    assert [w.name for w in layer.trainable_weights] == ["low_hz", "band_hz"]
    assert layer.count_params() == 24


def test_sinc_conv_equals_numpy_convolution_with_its_kernels():
    layer = sincnet.SincConv(filters=4, kernel_samples=17, sample_rate_hz=16000, stride=1)
    x = np.random.default_rng(1).standard_normal((1, 200)).astype(np.float32)
    y = np.asarray(layer(x))[0]  # [200, 4]
    k = np.asarray(layer.kernels())  # symmetric kernels: convolution == correlation
    for i in range(4):
        want = np.convolve(x[0], k[:, i], mode="same")
        np.testing.assert_allclose(y[:, i], want, atol=1e-5)


def test_kernels_are_band_passes_within_their_mel_initialised_bands():
    rate, taps = 16000.0, 251
    layer = sincnet.SincConv(filters=10, kernel_samples=taps, sample_rate_hz=rate)
    layer.build((None, 1000))
    low, high = (np.asarray(t) for t in layer.cutoffs_hz())
    # Mel initialisation: increasing, contiguous bands from 50 Hz, wider upwards.
    assert low[0] == pytest.approx(sincnet.MIN_LOW_HZ)
    np.testing.assert_allclose(high[:-1], low[1:], rtol=1e-5)
    assert np.all(np.diff(high - low) > 0)
    assert high[-1] == pytest.approx(rate / 2 - sincnet.MIN_LOW_HZ - sincnet.MIN_BAND_HZ, 1e-4)
    kernels = np.asarray(layer.kernels())
    np.testing.assert_allclose(kernels, kernels[::-1], atol=1e-7)  # linear phase
    # Hamming window: the transition spans about 3.3 fs / K, half on each side of a cut-off.
    edge = 2.0 * rate / taps
    for i in range(1, 10):  # band 0 (50-257 Hz) is too narrow for a flat top at 251 taps
        f, db = response_db(kernels[:, i], rate)
        inside = (f > low[i] + edge) & (f < high[i] - edge)
        outside = (f < low[i] - edge) | (f > high[i] + edge)
        assert inside.any() and outside.any()
        assert np.all(np.abs(db[inside]) < 0.1), (i, db[inside].min(), db[inside].max())
        assert db[outside].max() < -45, (i, db[outside].max())  # Hamming sidelobes ~ -53 dB
        at_cutoffs = np.interp([low[i], high[i]], f, db)
        np.testing.assert_allclose(at_cutoffs, -6.02, atol=0.3)  # half amplitude at the cut-offs


def test_get_config_round_trip_and_model_save_load(tmp_path):
    import keras

    layer = sincnet.SincConv(filters=6, kernel_samples=31, sample_rate_hz=8000, stride=2)
    config = layer.get_config()
    assert {k: config[k] for k in ("filters", "kernel_samples", "sample_rate_hz", "stride")} == {
        "filters": 6,
        "kernel_samples": 31,
        "sample_rate_hz": 8000.0,
        "stride": 2,
    }
    clone = sincnet.SincConv.from_config(config)
    assert clone.get_config() == config
    assert sincnet.Decimate.from_config(sincnet.Decimate(4).get_config()).factor == 4

    inp = keras.Input((400,))
    out = sincnet.Abs()(sincnet.SincConv(6, 31, 8000, 2)(sincnet.Decimate(2)(inp)))
    model = keras.Model(inp, out)
    sinc = model.layers[2]
    sinc.low_hz.assign(np.linspace(10, 900, 6))  # moved off the initial values
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).standard_normal((3, 400)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    np.testing.assert_allclose(loaded.layers[2].low_hz.numpy(), np.linspace(10, 900, 6))


def test_gradient_reaches_the_cutoffs():
    import tensorflow as tf

    layer = sincnet.SincConv(filters=5, kernel_samples=33, sample_rate_hz=16000)
    x = tf.constant(np.random.default_rng(3).standard_normal((2, 500)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x)))
    g_low, g_band = tape.gradient(loss, [layer.low_hz, layer.band_hz])
    assert np.all(np.isfinite(g_low)) and np.all(np.isfinite(g_band))
    assert np.all(np.abs(g_low.numpy()) > 0) and np.all(np.abs(g_band.numpy()) > 0)


def test_decimate_keeps_the_speech_band_and_removes_what_would_alias():
    rate = 32000
    t = np.arange(rate) / rate
    layer = sincnet.Decimate(2)
    for hz, keep in ((1000.0, True), (6000.0, True), (12000.0, False)):
        x = np.sin(2 * np.pi * hz * t).astype(np.float32)[None]
        y = np.asarray(layer(x))
        assert y.shape == (1, rate // 2, 1)
        rms = np.sqrt(np.mean(y[0, 1000:-1000, 0] ** 2)) / np.sqrt(0.5)
        if keep:
            assert rms == pytest.approx(1.0, abs=0.01), hz
        else:  # 12 kHz would fold to 4 kHz at 16 kHz
            assert rms < 0.01, (hz, rms)
    assert np.asarray(sincnet.Decimate(1)(np.ones((1, 7), np.float32))).shape == (1, 7, 1)


def test_model_with_the_waveform_branch_alone_and_beside_stats(tiny_cfg, wave_overrides):
    from deepwave_tf import model as model_lib

    f = tiny_cfg.features
    for branches, extra in ((["waveform"], ()), (["waveform", "stats"], ("stats_dense",))):
        cfg = load_config(
            REPO_ROOT / "configs" / "tiny.toml", [*wave_overrides, f"model.branches={branches}"]
        )
        model = model_lib.build_model(cfg)
        assert sorted(model.input) == ["mel", "mfcc", "waveform"]
        assert tuple(model.input["waveform"].shape) == (None, f.num_samples)
        names = {layer.name for layer in model.layers}
        assert {"waveform_decimate", "sinc_conv", "wave_block_1_pool", *extra} <= names
        x = {
            "mfcc": np.zeros((2, *f.mfcc_shape), np.float32),
            "mel": np.zeros((2, *f.mel_shape, 1), np.float32),
            "waveform": np.random.default_rng(0).standard_normal((2, f.num_samples)).astype("f4"),
        }
        out = model(x, training=False)
        assert {k: tuple(v.shape) for k, v in out.items()} == {"fake": (2,), "real": (2,)}
    # The default model does not take the waveform.
    assert "waveform" not in model_lib.build_model(tiny_cfg).input


def test_config_refuses_what_the_branch_cannot_do(wave_overrides):
    tiny = REPO_ROOT / "configs" / "tiny.toml"
    with pytest.raises(ConfigError, match="set augment.enabled = false and augment.val_mixing"):
        load_config(tiny, ["model.branches=['waveform']"])
    with pytest.raises(ConfigError, match="augment.val_mixing = false"):
        load_config(tiny, ["model.branches=['waveform']", "augment.enabled=false"])
    with pytest.raises(ConfigError, match="waveform_rate_hz=24000 must divide"):
        load_config(tiny, [*wave_overrides, "model.waveform_rate_hz=24000"])
    with pytest.raises(ConfigError, match="waveform_kernel_samples=128 must be odd"):
        load_config(tiny, [*wave_overrides, "model.waveform_kernel_samples=128"])
    with pytest.raises(ConfigError, match="mfcc, mel, stats, waveform"):
        load_config(tiny, ["model.branches=['raw']"])
    # The shipped candidates load.
    for name in ("waveform", "waveform_stats"):
        cfg = load_config(REPO_ROOT / "configs" / f"{name}.toml")
        assert cfg.model.uses_waveform and cfg.prep.store_waveform
