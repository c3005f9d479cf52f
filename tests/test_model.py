"""model.py: every config builds and trains a step on sample records; heads, logits, save/load, tf.data parity."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from deepwave_tf import data, fit
from deepwave_tf import model as model_lib
from deepwave_tf.config import CONFIG_DIR, load_config
from deepwave_tf.features import LABEL_KEYS, MEL, MFCC, WAVEFORM

# text*.toml configure deepwave_tf.text (tests/test_text_model.py); configs whose front-end is
# not mfcc + mel (frontend_*.toml, stats_linear.toml) read other features than the sample records
# hold (tests/test_frontends.py).
CONFIGS = sorted(
    p.stem
    for p in CONFIG_DIR.glob("*.toml")
    if not p.stem.startswith("text") and load_config(p).features.feature_keys == (MFCC, MEL)
)


def random_inputs(cfg, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    f = cfg.features
    return {
        MFCC: rng.normal(size=(batch, *f.mfcc_shape)).astype(np.float32),
        MEL: rng.normal(-40, 20, size=(batch, *f.mel_shape, 1)).astype(np.float32),
    }


def sample_batch(records_dir, cfg, batch: int):
    """One un-augmented batch of sample train records."""
    plain = cfg.replace(
        augment=dataclasses.replace(cfg.augment, enabled=False, val_mixing=False),
        data=dataclasses.replace(cfg.data, batch_size=batch),
    )
    return next(iter(data.make_dataset(records_dir, "train", plain, training=False)))


def test_the_four_configs_exist():
    assert {"tiny", "default", "cnn_bilstm", "cnn_bilstm_gelu"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds_with_the_contract_names_and_shapes(name, sample_records, tiny_cfg):
    cfg = load_config(CONFIG_DIR / f"{name}.toml")
    assert cfg.features == tiny_cfg.features  # so the sample records serve every config
    f = cfg.features
    model = model_lib.build_model(cfg, data.load_stats(sample_records))
    assert model.name == cfg.model.name
    assert set(model.input) == {MFCC, MEL} | ({WAVEFORM} if cfg.model.uses_waveform else set())
    if cfg.model.uses_waveform:  # configs/waveform*.toml
        assert tuple(model.input[WAVEFORM].shape) == (None, f.num_samples)
        assert model.get_layer("sinc_conv").filters == cfg.model.waveform_filters
    assert tuple(model.input[MFCC].shape) == (None, *f.mfcc_shape)
    assert tuple(model.input[MEL].shape) == (None, *f.mel_shape, 1)
    assert set(model.output) == set(LABEL_KEYS)
    for key in LABEL_KEYS:
        assert tuple(model.output[key].shape) == (None,)
    logits = model.get_layer(model_lib.LOGITS)
    assert tuple(logits.output.shape) == (None, 2) and logits.head == cfg.model.head
    if "mel" in cfg.model.branches:
        filters = [model.get_layer(f"conv_{i}").filters for i in range(len(cfg.model.conv_filters))]
        assert filters == list(cfg.model.conv_filters)
    if "stats" in cfg.model.branches and cfg.model.stats_units:
        assert model.get_layer("stats_dense").units == cfg.model.stats_units
    elif "stats" in cfg.model.branches:  # stats_lr.toml: standardised statistics, no dense layer
        assert model.get_layer("stats_standardize").output.shape == (None, 2 * (128 + 40))


def train_one_step(name, records_dir):
    cfg = load_config(CONFIG_DIR / f"{name}.toml")
    model = fit.compile_model(model_lib.build_model(cfg, data.load_stats(records_dir)), cfg)
    x, y = sample_batch(records_dir, cfg, batch=4)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    out = model.predict_on_batch(x)
    for key in LABEL_KEYS:
        assert out[key].shape == (4,)
        assert ((out[key] >= 0) & (out[key] <= 1)).all()


def test_tiny_trains_a_step_on_sample_records(sample_records):
    train_one_step("tiny", sample_records)


@pytest.mark.slow  # 10-25 s each on 2 cores; benchmarks/bench_train.py trains every config too
@pytest.mark.parametrize("name", [c for c in CONFIGS if c != "tiny"])
def test_config_trains_a_step_on_sample_records(name, request):
    # The waveform configs read the samples: records prepped with the waveform stored.
    wave = load_config(CONFIG_DIR / f"{name}.toml").model.uses_waveform
    train_one_step(name, request.getfixturevalue("waveform_records" if wave else "sample_records"))


@pytest.mark.parametrize("head", ["multilabel", "softmax"])
def test_logits_layer_matches_outputs(tiny_cfg, head):
    cfg = tiny_cfg.replace(model=dataclasses.replace(tiny_cfg.model, head=head))
    model = model_lib.build_model(cfg)
    x = random_inputs(cfg, 8)
    out = model.predict_on_batch(x)
    logits = model_lib.logits_model(model).predict_on_batch(x)
    assert logits.shape == (8, 2)
    for i, key in enumerate(LABEL_KEYS):
        np.testing.assert_allclose(out[key], 1 / (1 + np.exp(-logits[:, i])), rtol=1e-5, atol=1e-6)
    if head == "softmax":  # the seed's 2-class softmax: real = 1 - fake
        np.testing.assert_allclose(out["real"], 1.0 - out["fake"], atol=1e-6)
        np.testing.assert_allclose(logits[:, 1], -logits[:, 0], atol=1e-6)
    else:  # two independent sigmoids (compared as logits: saturated probabilities, at
        # 1 - 1e-5 and 1e-5 on random inputs, once made real ~ 1 - fake to 1e-3)
        assert not np.allclose(logits[:, 1], -logits[:, 0], atol=1e-3)


def test_save_load_round_trip_equal_outputs(tiny_cfg, sample_records, tmp_path):
    cfg = tiny_cfg.replace(model=dataclasses.replace(tiny_cfg.model, head="softmax"))
    model = model_lib.build_model(cfg, data.load_stats(sample_records))
    x = random_inputs(cfg, 4, seed=1)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    want, got = model.predict_on_batch(x), loaded.predict_on_batch(x)
    for key in LABEL_KEYS:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_direct_call_equals_tf_data_predict(tiny_cfg, sample_records):
    model = model_lib.build_model(tiny_cfg, data.load_stats(sample_records))
    plain = tiny_cfg.replace(
        augment=dataclasses.replace(tiny_cfg.augment, enabled=False, val_mixing=False)
    )
    ds = data.make_dataset(sample_records, "val", plain, training=False)
    pred = model.predict(ds, verbose=0)
    direct = [model(x, training=False) for x, _ in ds]
    for key in LABEL_KEYS:
        got = np.concatenate([d[key].numpy() for d in direct])
        np.testing.assert_allclose(pred[key].reshape(-1), got, rtol=1e-5, atol=1e-6)


def test_first_conv_stride_keeps_layer_names_and_weights(tiny_cfg):
    strided = tiny_cfg.replace(model=dataclasses.replace(tiny_cfg.model, first_conv_stride=2))
    a, b = model_lib.build_model(tiny_cfg), model_lib.build_model(strided)
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert a.count_params() == b.count_params()  # the same weights, only the stride differs
    f = tiny_cfg.features
    assert tuple(b.get_layer("conv_0").output.shape[1:3]) == (
        -(-f.n_mels // 2),
        -(-f.num_frames // 2),
    )
    b.set_weights(a.get_weights())  # checkpoints are interchangeable
    assert b.predict_on_batch(random_inputs(tiny_cfg, 2))["fake"].shape == (2,)


# --------------------------------------------------------------------------- #
# Branches: the per-band statistics branch
# --------------------------------------------------------------------------- #
def test_band_statistics_layer_matches_numpy():
    from deepwave_tf import protocol

    rng = np.random.default_rng(3)
    mfcc = rng.normal(size=(3, 313, 40)).astype(np.float32)
    mel = rng.normal(-40, 20, size=(3, 128, 313)).astype(np.float32)
    layer = model_lib.BandStatistics()
    got = np.concatenate(
        [np.asarray(layer(np.swapaxes(mel, 1, 2))), np.asarray(layer(mfcc))], axis=1
    )
    # protocol.band_statistics orders (mel mean, mel std, mfcc mean, mfcc std), as here
    np.testing.assert_allclose(got, protocol.band_statistics(mfcc, mel), rtol=1e-3, atol=1e-3)


def test_band_statistics_moments_match_numpy_in_both_layouts():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 50, 7)).astype(np.float64)  # [batch, time, bands]
    d = np.diff(x, axis=1)
    expect = {
        "mean": x.mean(1),
        "std": x.std(1),
        "diff_abs": np.abs(d).mean(1),
        "diff_std": d.std(1),
    }
    for moments in (("diff_abs", "diff_std"), ("mean", "std", "diff_abs", "diff_std"), ("std",)):
        want = np.concatenate([expect[k] for k in moments], axis=1)
        layer = model_lib.BandStatistics(moments=moments)
        np.testing.assert_allclose(np.asarray(layer(x.astype(np.float32))), want, atol=1e-4)
        band_major = model_lib.BandStatistics(axis=2, moments=moments)  # [batch, bands, time]
        got = np.asarray(band_major(np.swapaxes(x, 1, 2).astype(np.float32)))
        np.testing.assert_allclose(got, want, atol=1e-4)
        again = model_lib.BandStatistics.from_config(layer.get_config())
        assert again.moments == moments and again.axis == 1


@pytest.mark.parametrize(
    "moments, message",
    [
        ((), "one or more of mean, std, diff_abs, diff_std"),
        (("mean", "skew"), "one or more of mean, std, diff_abs, diff_std"),
        (("std", "mean"), "each once, in that order"),
        (("mean", "mean"), "each once, in that order"),
    ],
)
def test_stats_moments_are_checked(moments, message, tiny_cfg):
    from deepwave_tf.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(tiny_cfg.model, stats_moments=moments)


def test_stats_moments_set_the_stats_branch_width(tiny_cfg):
    features = dataclasses.replace(
        tiny_cfg.features, sequence="lfcc", image="lfcc", n_lfcc=12, fmax_hz=8000.0
    )
    cfg = tiny_cfg.replace(
        features=features,
        augment=dataclasses.replace(tiny_cfg.augment, enabled=False, val_mixing=False),
        model=dataclasses.replace(
            tiny_cfg.model,
            branches=("stats",),
            stats_units=0,
            dense_units=0,
            stats_moments=("diff_abs", "diff_std"),
        ),
    )
    model = model_lib.build_model(cfg)
    assert set(model.input) == {"lfcc"}
    assert model.get_layer("scores").kernel.shape[0] == 2 * 12  # two moments of 12 coefficients
    x = np.random.default_rng(1).normal(size=(3, features.num_frames, 12)).astype(np.float32)
    out = model({"lfcc": x})
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3,) for k in LABEL_KEYS}
    reloaded = keras.models.model_from_json(model.to_json())
    assert reloaded.get_layer("lfcc_stats").moments == ("diff_abs", "diff_std")


def test_stats_squares_feed_the_head_z_and_its_square(tiny_cfg):
    features = dataclasses.replace(
        tiny_cfg.features, sequence="lfcc", image="lfcc", n_lfcc=12, fmax_hz=8000.0
    )
    model_cfg = dataclasses.replace(
        tiny_cfg.model, branches=("stats",), stats_units=0, dense_units=0, stats_squares=True
    )
    cfg = tiny_cfg.replace(
        features=features,
        augment=dataclasses.replace(tiny_cfg.augment, enabled=False, val_mixing=False),
        model=model_cfg,
    )
    model = model_lib.build_model(cfg)
    assert model.get_layer("scores").kernel.shape[0] == 2 * 2 * 12  # (mean, std) and squares
    x = np.random.default_rng(2).normal(size=(3, features.num_frames, 12)).astype(np.float32)
    probe = keras.Model(model.input, model.get_layer("stats_with_squares").output)
    z = np.asarray(keras.Model(model.input, model.get_layer("stats_standardize").output)(x))
    np.testing.assert_allclose(np.asarray(probe(x)), np.concatenate([z, z**2], axis=1), rtol=1e-6)
    reloaded = keras.models.model_from_json(model.to_json())
    assert reloaded.get_layer("scores").kernel.shape[0] == 48
    from deepwave_tf.config import ConfigError

    with pytest.raises(ConfigError, match="stats_squares needs model.stats_units = 0 \\(got 64\\)"):
        dataclasses.replace(model_cfg, stats_units=64)


@pytest.mark.parametrize(
    "branches, present, absent",
    [
        (("stats",), {"stats_dense", "mel_stats", "mfcc_stats"}, {"bilstm_0", "conv_0"}),
        (("mfcc", "mel", "stats"), {"stats_dense", "bilstm_0", "conv_0", "concat"}, set()),
        (("mfcc", "mel"), {"bilstm_0", "conv_0"}, {"stats_dense"}),
    ],
)
def test_branches_choose_what_feeds_the_head(branches, present, absent, tiny_cfg):
    cfg = tiny_cfg.replace(model=dataclasses.replace(tiny_cfg.model, branches=branches))
    model = model_lib.build_model(cfg)
    names = {layer.name for layer in model.layers}
    assert present <= names and not absent & names
    out = model(random_inputs(cfg, 2))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (2,) for k in LABEL_KEYS}
    reloaded = keras.models.model_from_json(model.to_json())  # every layer serialisable
    assert [w.shape for w in reloaded.weights] == [w.shape for w in model.weights]


@pytest.mark.parametrize(
    "sequence,image,inputs,layers",
    [
        # a band-major tensor in the BiLSTM and a time-major one in the CNN: permuted
        (
            "mel",
            "mfcc",
            {"mel": (128, 313, 1), "mfcc": (313, 40)},
            {"mel_time_major", "mfcc_image"},
        ),
        # the stats branch reduces a band-major tensor over its time axis as it is (no Permute)
        ("lfcc", "linear", {"lfcc": (313, 60), "linear": (64, 313, 1)}, {"linear_bands"}),
        ("phase", "phase", {"phase": (128, 313, 1)}, {"phase_time_major", "phase_stats"}),
    ],
)
def test_front_ends_feed_the_branches(sequence, image, inputs, layers, tiny_cfg):
    features = dataclasses.replace(
        tiny_cfg.features, sequence=sequence, image=image, linear_bins=64, n_lfcc=20, lfcc_deltas=2
    )
    cfg = tiny_cfg.replace(
        features=features,
        augment=dataclasses.replace(tiny_cfg.augment, enabled=False, val_mixing=False),
        model=dataclasses.replace(tiny_cfg.model, branches=("mfcc", "mel", "stats")),
    )
    model = model_lib.build_model(cfg)
    assert {k: tuple(v.shape[1:]) for k, v in model.input.items()} == inputs
    assert model_lib.input_shapes(cfg.features) == inputs
    names = {layer.name for layer in model.layers}
    assert layers | {"bilstm_0", "conv_0", "stats_dense"} <= names
    if sequence != "linear":
        assert "linear_time_major" not in names
    # stats: mean and std per band of each stored tensor, image first.
    bands = sum(shape[0] if len(shape) == 3 else shape[1] for shape in inputs.values())
    assert model.get_layer("stats_dense").kernel.shape[0] == 2 * bands
    rng = np.random.default_rng(0)
    x = {k: rng.normal(size=(2, *shape)).astype(np.float32) for k, shape in inputs.items()}
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (2,) for k in LABEL_KEYS}
    reloaded = keras.models.model_from_json(model.to_json())
    assert [w.shape for w in reloaded.weights] == [w.shape for w in model.weights]


def test_linear_stats_head_is_an_l2_logistic_regression_on_standardised_statistics(tiny_cfg):
    # stats_units = dense_units = 0: logits = W . standardise(band statistics) + b, exactly
    m = dataclasses.replace(
        tiny_cfg.model, branches=("stats",), stats_units=0, dense_units=0, dropout=0.0, l2=0.01
    )
    cfg = tiny_cfg.replace(model=m)
    model = model_lib.build_model(cfg)
    names = {layer.name for layer in model.layers}
    assert "stats_dense" not in names and "dense" not in names and "dropout" not in names
    scores = model.get_layer("scores")
    assert scores.kernel.shape == (2 * (128 + 40), 2)
    rng = np.random.default_rng(1)
    scores.kernel.assign(rng.normal(size=scores.kernel.shape).astype(np.float32))
    scores.bias.assign([0.5, -0.25])
    norm = model.get_layer("stats_standardize")
    norm.moving_mean.assign(rng.normal(size=336).astype(np.float32))
    norm.moving_variance.assign(rng.uniform(0.5, 2.0, size=336).astype(np.float32))
    x = random_inputs(cfg, 3)
    stats = keras.Model(model.input, model.get_layer("band_stats").output)(x)
    z = (np.asarray(stats) - norm.moving_mean.numpy()) / np.sqrt(
        norm.moving_variance.numpy() + norm.epsilon
    )
    logits = z @ scores.kernel.numpy() + scores.bias.numpy()
    out = model(x)
    np.testing.assert_allclose(
        np.asarray(out["fake"]), 1 / (1 + np.exp(-logits[:, 0])), rtol=1e-4, atol=1e-5
    )
    # the L2 penalty is on the kernel only: 0.01 * sum(w^2)
    (penalty,) = model.losses
    np.testing.assert_allclose(float(penalty), 0.01 * np.sum(scores.kernel.numpy() ** 2), rtol=1e-5)
    assert not model_lib.build_model(tiny_cfg).losses  # default models carry no penalty


def test_negative_head_sizes_are_a_config_error():
    from deepwave_tf.config import ConfigError

    with pytest.raises(ConfigError, match="model.stats_units, model.dense_units and model.l2"):
        load_config(CONFIG_DIR / "tiny.toml", ["model.l2=-1"])


def test_unknown_branch_is_a_config_error(tiny_cfg):
    from deepwave_tf.config import ConfigError

    with pytest.raises(ConfigError, match="model.branches=\\['lstm'\\]: choose one or more of"):
        load_config(CONFIG_DIR / "tiny.toml", ["model.branches=['lstm']"])


# --------------------------------------------------------------------------- #
# Fused layers: GELU kernels and batch norm, against their references
# --------------------------------------------------------------------------- #
def _gelu_reference(x, approximate):
    """numpy GELU and its derivative: tanh form or exact x * Phi(x)."""
    from scipy.special import erf

    if approximate:
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        return 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (
            1 + 3 * 0.044715 * x**2
        )
    cdf = 0.5 * (1 + erf(x / np.sqrt(2)))
    return x * cdf, cdf + x * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)


@pytest.mark.parametrize("approximate", [True, False], ids=["gelu_tanh", "gelu"])
def test_gelu_layer_matches_numpy_in_training_and_inference(approximate):
    import tensorflow as tf

    x64 = np.linspace(-6, 6, 2 * 3 * 5 * 7).reshape(2, 3, 5, 7)
    want, want_grad = _gelu_reference(x64, approximate)
    x = tf.constant(x64, tf.float32)
    layer = model_lib.Gelu(approximate=approximate)
    for training in (True, False):  # fused XLA kernels / plain ops
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
        np.testing.assert_allclose(y.numpy(), want, atol=2e-6, err_msg=f"training={training}")
        grad = tape.gradient(y, x).numpy()
        # float32: 1 +/- tanh cancels in the tails
        np.testing.assert_allclose(grad, want_grad, atol=1e-5, err_msg=f"training={training}")
    if approximate:  # the tanh form differs from the exact one by up to ~1e-3 here
        assert np.abs(want - _gelu_reference(x64, False)[0]).max() > 1e-4


def test_gelu_tanh_config_builds_uses_the_tanh_form_and_reloads(tiny_cfg, tmp_path):
    cfg = load_config(CONFIG_DIR / "tiny.toml", ["model.activation='gelu_tanh'"])
    model = model_lib.build_model(cfg)
    conv_act = model.get_layer("conv_0_gelu_tanh")
    assert isinstance(conv_act, model_lib.Gelu) and conv_act.approximate
    assert model.get_layer("dense").activation is model_lib.gelu_tanh
    z = np.linspace(-4, 4, 9, dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(model_lib.gelu_tanh(z)),
        _gelu_reference(z.astype(np.float64), True)[0],
        atol=1e-6,
    )
    # the plain `gelu` config keeps the exact form
    assert not model_lib.build_model(tiny_cfg).get_layer("conv_0_gelu").approximate
    x = random_inputs(cfg, 3, seed=2)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("conv_0_gelu_tanh").approximate
    want, got = model.predict_on_batch(x), loaded.predict_on_batch(x)
    for key in LABEL_KEYS:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)


def test_unknown_activation_is_a_config_error_naming_the_choices():
    from deepwave_tf.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(CONFIG_DIR / "tiny.toml", ["model.activation='swish'"])
    assert "model.activation='swish' is not one of ('relu', 'gelu', 'gelu_tanh')" in str(err.value)


def test_fused_batch_norm_matches_keras_batch_norm():
    import tensorflow as tf

    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(3, 2, (6, 10, 12, 5)).astype(np.float32))
    ref, fused = keras.layers.BatchNormalization(), model_lib.FusedBatchNormalization()
    ref.build(x.shape)
    fused.build(x.shape)
    weights = [rng.normal(size=v.shape).astype(np.float32) for v in ref.weights]
    weights[3] = np.abs(weights[3]) + 0.5  # moving variance
    ref.set_weights(weights)
    fused.set_weights(weights)
    assert [w.path for w in fused.weights] == [
        w.path.replace(ref.name, fused.name) for w in ref.weights
    ]
    probe = tf.constant(rng.normal(size=x.shape).astype(np.float32))
    for training in (True, False):
        grads = []
        for layer in (ref, fused):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
                loss = tf.reduce_sum(y * probe)
            grads.append(
                (y.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
            )
        for a, b in zip(*grads):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=f"training={training}")
        for a, b in zip(ref.weights, fused.weights):  # moving mean/variance updated alike
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(fused.moving_mean.numpy(), weights[2])  # training did update them
    # not 4-D NHWC: the Keras computation
    seq = tf.constant(rng.normal(2, 3, size=(4, 7, 5)).astype(np.float32))
    ref, fused = keras.layers.BatchNormalization(), model_lib.FusedBatchNormalization()
    np.testing.assert_allclose(fused(seq, training=True), ref(seq, training=True), atol=1e-5)


def test_clean_voice_config_is_a_linear_model_on_cepstral_frame_differences():
    cfg = load_config(CONFIG_DIR / "clean_voice.toml")
    f = cfg.features
    assert f.feature_keys == ("lfcc",) and f.top_db == 0.0 and f.lfcc_dims == 30
    model = model_lib.build_model(cfg)
    assert {k: tuple(v.shape[1:]) for k, v in model.input.items()} == {"lfcc": (f.num_frames, 30)}
    assert model.get_layer("lfcc_stats").moments == ("diff_abs", "diff_std")
    assert model.get_layer("scores").kernel.shape == (60, 2)  # straight from the statistics
    assert not {"stats_dense", "dense", "dropout"} & {layer.name for layer in model.layers}
