"""augment.py: exact targets, exact mixtures, masks, plans, noise bank.

Plans are built by hand where a result must be checked exactly; real mel
spectrograms come from synthetic waveforms through `features.compute_features`.
"""

from __future__ import annotations

import dataclasses
import math

import librosa
import numpy as np
import pytest
import tensorflow as tf

from deepwave_tf import augment
from deepwave_tf import features as F

B = 4


@pytest.fixture(scope="module")
def cfgs(tiny_cfg):
    aug = dataclasses.replace(tiny_cfg.augment, noise_bank_per_kind=1)
    return tiny_cfg.features, aug


@pytest.fixture(scope="module")
def bank(cfgs):
    fc, aug = cfgs
    return augment.make_noise_bank(fc, aug, seed=3)


@pytest.fixture(scope="module")
def batch(cfgs):
    """4 distinct clips (tones, a chirp, noise) as records would hold them."""
    fc, _ = cfgs
    t = np.arange(fc.num_samples) / fc.sample_rate_hz
    rng = np.random.default_rng(0)
    waves = np.stack(
        [
            0.3 * np.sin(2 * np.pi * 440 * t) * (t < 2.0),
            0.1 * np.sin(2 * np.pi * (200 + 300 * t) * t),
            0.05 * rng.standard_normal(t.size),
            0.2 * np.sin(2 * np.pi * 1500 * t) * (t > 1.0),
        ]
    ).astype(np.float32)
    feats = F.compute_features(tf.constant(waves), fc)
    x = {F.MFCC: feats[F.MFCC], F.MEL: feats[F.MEL][..., None]}
    y = {"fake": tf.constant([1.0, 0.0, 0.0, 1.0]), "real": tf.constant([0.0, 1.0, 1.0, 0.0])}
    return x, y


def make_plan(bank, fc, **over):
    """A plan that changes nothing (no mix, voiced, no noise, no floor, no masks), then `over`."""
    z_i = tf.zeros([B], tf.int32)
    z_f = tf.zeros([B], tf.float32)
    f_b = tf.zeros([B], tf.bool)
    draw = augment.NoiseDraw(z_i, z_i, tf.ones([B]), z_i, z_f)
    no_masks = (tf.zeros([B, 0], tf.int32), tf.zeros([B, 0], tf.int32))
    fields = dict(
        shift=z_i,
        partner=tf.range(B, dtype=tf.int32),
        partner_shift=z_i,
        mix=f_b,
        gain_db=z_f,
        kind=z_i,
        background=f_b,
        snr_db=tf.fill([B], 10.0),
        floor_db=tf.fill([B], math.inf),
        silence_dbfs=tf.fill([B], -60.0),
        silence_zero=f_b,
        noise=draw,
        floor_noise=draw,
        time_masks=no_masks,
        freq_masks=no_masks,
    )
    for key, value in over.items():
        fields[key] = (
            tf.constant(value) if not isinstance(value, (tuple, augment.NoiseDraw)) else value
        )
    return augment.MixPlan(**fields)


def mean_power(p):
    return p.mean(axis=(-2, -1), keepdims=True)


def test_union_targets_for_mixtures_and_zero_for_noise_and_silence(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    plan = make_plan(
        bank,
        fc,
        partner=[1, 0, 3, 2],
        mix=[True, False, True, True],
        kind=[augment.VOICED, augment.VOICED, augment.NOISE_ONLY, augment.SILENCE],
    )
    _, out = augment.apply_plan(x, y, plan, bank, fc, aug)
    # 0 mixes with 1 (fake + real) -> (1, 1); 1 not mixed -> its own (0, 1);
    # 2 noise only and 3 silence -> (0, 0) whatever their partners.
    np.testing.assert_array_equal(out["fake"].numpy(), [1, 0, 0, 0])
    np.testing.assert_array_equal(out["real"].numpy(), [1, 1, 0, 0])
    assert out["fake"].dtype == tf.float32


def test_fake_plus_fake_stays_fake_only(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    plan = make_plan(bank, fc, partner=[3, 2, 1, 0], mix=[True, True, True, True])
    _, out = augment.apply_plan(x, y, plan, bank, fc, aug)
    # 0+3 and 3+0 are fake+fake -> (1, 0); 1+2 and 2+1 real+real -> (0, 1)
    np.testing.assert_array_equal(out["fake"].numpy(), [1, 0, 0, 1])
    np.testing.assert_array_equal(out["real"].numpy(), [0, 1, 1, 0])


def test_mixed_features_equal_features_of_the_power_sum(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    gains = np.array([3.0, 0.0, -6.0, 0.0], np.float32)
    plan = make_plan(bank, fc, partner=[2, 0, 3, 1], mix=[True, False, True, False], gain_db=gains)
    got, _ = augment.apply_plan(x, y, plan, bank, fc, aug)

    p = F.db_to_power(x[F.MEL][..., 0]).numpy().astype(np.float64)
    level = mean_power(p)
    partner = p[[2, 0, 3, 1]]
    partner = partner * level / mean_power(partner) * 10 ** (gains[:, None, None] / 10)
    mixed = p + np.where(np.array([1, 0, 1, 0], bool)[:, None, None], partner, 0.0)
    mixed = mixed * level / mean_power(mixed)  # back to the clip's level
    want = F.features_from_power_mel(tf.constant(mixed, tf.float32), fc)
    np.testing.assert_allclose(got[F.MEL][..., 0].numpy(), want[F.MEL].numpy(), atol=1e-3)
    np.testing.assert_allclose(got[F.MFCC].numpy(), want[F.MFCC].numpy(), atol=1e-2)
    # Unmixed examples come back as they were (up to the dB -> power -> dB round trip).
    np.testing.assert_allclose(got[F.MEL].numpy()[[1, 3]], x[F.MEL].numpy()[[1, 3]], atol=1e-3)
    # MFCC is the DCT of the returned (mixed) mel: both inputs describe the same mixture.
    np.testing.assert_allclose(
        got[F.MFCC].numpy(), F.mfcc_from_log_mel(got[F.MEL][..., 0], fc).numpy(), atol=1e-4
    )


def test_time_shift_is_a_circular_roll(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    shifts = [0, 5, -7, 100]
    plan = make_plan(bank, fc, shift=shifts)
    power = F.db_to_power(x[F.MEL][..., 0])
    rolled = augment.roll_frames(power, tf.constant(shifts)).numpy()
    for i, s in enumerate(shifts):
        np.testing.assert_array_equal(rolled[i], np.roll(power.numpy()[i], s, axis=-1))
    got, _ = augment.apply_plan(x, y, plan, bank, fc, aug)
    want = np.roll(x[F.MEL].numpy()[1, :, :, 0], 5, axis=-1)
    np.testing.assert_allclose(got[F.MEL].numpy()[1, :, :, 0], want, atol=1e-3)


def test_background_noise_at_the_planned_snr_and_level_kept(bank, batch, cfgs):
    fc, _ = cfgs
    x, _ = batch
    snr = np.array([5.0, 10.0, 20.0, 30.0], np.float32)
    draw = augment.NoiseDraw(
        tf.constant([0, 1, 2, 3]),
        tf.constant([4, 5, 6, 0]),
        tf.constant([0.3, 0.5, 1.0, 0.0]),
        tf.constant([0, 10, 20, 30]),
        tf.constant([-3.0, 0.0, 3.0, 6.0]),
    )
    plan = make_plan(bank, fc, background=[True] * 4, snr_db=snr, noise=draw)
    p = F.db_to_power(x[F.MEL][..., 0])
    out = augment.mix_power(p, plan, bank).numpy().astype(np.float64)
    p = p.numpy().astype(np.float64)
    level = mean_power(p)
    np.testing.assert_allclose(mean_power(out), level, rtol=1e-4)  # level restored
    # the final rescale of voice + noise back to the clip's level
    scale = 1 / (1 + 10 ** (-snr[:, None, None] / 10))
    noise = out - p * scale
    measured = 10 * np.log10(mean_power(p * scale) / mean_power(noise))[:, 0, 0]
    np.testing.assert_allclose(measured, snr, atol=0.01)
    assert (noise > -1e-6 * level).all()


def test_noise_only_and_silence_examples(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    plan = make_plan(
        bank,
        fc,
        kind=[augment.NOISE_ONLY, augment.SILENCE, augment.SILENCE, augment.VOICED],
        silence_zero=[False, True, False, False],
        silence_dbfs=[-60.0, -60.0, -70.0, -60.0],
    )
    p = F.db_to_power(x[F.MEL][..., 0])
    out = augment.mix_power(p, plan, bank).numpy()
    noise = augment.noise_power(bank, plan.noise).numpy()
    # noise only: the bank noise, at the clip's level
    np.testing.assert_allclose(
        out[0], noise[0] * mean_power(p.numpy()[0]) / mean_power(noise[0]), rtol=1e-4
    )
    assert (out[1] == 0).all()  # exact digital zero
    floor = augment.noise_power(bank, plan.floor_noise).numpy()
    np.testing.assert_allclose(out[2], floor[2] * 10 ** (-70 / 10), rtol=1e-5)
    feats, labels = augment.apply_plan(x, y, plan, bank, fc, aug)
    mel_zero = feats[F.MEL].numpy()[1]
    # as a digital-zero test clip: 10 log10(amin) everywhere
    np.testing.assert_allclose(mel_zero, 10 * np.log10(fc.amin), atol=1e-4)
    assert labels["fake"].numpy().tolist() == [0, 0, 0, 1]
    assert labels["real"].numpy().tolist() == [0, 0, 0, 0]


def test_noise_floor_level_under_each_clip(bank, batch, cfgs):
    fc, _ = cfgs
    x, _ = batch
    draw = augment.NoiseDraw(
        tf.constant([0, 1, 2, 0]),
        tf.constant([0, 1, 2, 0]),
        tf.ones([B]),
        tf.zeros([B], tf.int32),
        tf.zeros([B]),
    )
    below = np.array([20.0, 30.0, 60.0, math.inf], np.float32)
    plan = make_plan(bank, fc, floor_db=below, floor_noise=draw)
    p = F.db_to_power(x[F.MEL][..., 0])
    out = augment.mix_power(p, plan, bank).numpy().astype(np.float64)
    p = p.numpy().astype(np.float64)
    level = mean_power(p)
    floor = augment.noise_power(bank, draw).numpy().astype(np.float64)
    floor = floor / mean_power(floor) * level * 10 ** (-below[:, None, None] / 10)
    want = (p + floor) * level / mean_power(p + floor)
    np.testing.assert_allclose(out, want, rtol=2e-5)
    np.testing.assert_allclose(out[3], p[3], rtol=1e-5)  # inf dB under = no floor
    for i in (0, 1):  # well above float32 resolution: measure the floor level back
        scale = 1 / (1 + 10 ** (-below[i] / 10))
        got_db = 10 * np.log10(mean_power(p[i] * scale) / mean_power(out[i] - p[i] * scale))
        assert abs(float(got_db) - below[i]) < 0.05, (i, got_db)


def test_masks_set_exactly_the_planned_bands_and_frames(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    time_masks = (
        tf.constant([[10, 200], [0, 0], [300, 5], [50, 60]]),
        tf.constant([[5, 20], [0, 0], [13, 3], [20, 20]]),
    )
    freq_masks = (tf.constant([[3], [0], [120], [64]]), tf.constant([[12], [0], [8], [1]]))
    plan = make_plan(bank, fc, time_masks=time_masks, freq_masks=freq_masks)
    plain, _ = augment.apply_plan(x, y, make_plan(bank, fc), bank, fc, aug)
    got, _ = augment.apply_plan(x, y, plan, bank, fc, aug)
    mel, ref = got[F.MEL].numpy()[..., 0], plain[F.MEL].numpy()[..., 0]
    frames = {
        0: list(range(10, 15)) + list(range(200, 220)),
        1: [],
        2: list(range(300, 313)) + [5, 6, 7],
        3: list(range(50, 80)),
    }
    bands = {0: list(range(3, 15)), 1: [], 2: list(range(120, 128)), 3: [64]}
    for i in range(B):
        want = np.zeros(mel.shape[1:], bool)
        want[:, frames[i]] = True
        want[bands[i], :] = True
        value = ref[i].mean()
        np.testing.assert_allclose(mel[i][want], value, rtol=1e-5)
        np.testing.assert_array_equal(mel[i][~want], ref[i][~want])
    # MFCC untouched unless mask_mfcc
    np.testing.assert_array_equal(got[F.MFCC].numpy(), plain[F.MFCC].numpy())
    got2, _ = augment.apply_plan(x, y, plan, bank, fc, dataclasses.replace(aug, mask_mfcc=True))
    # The augmentation folds the dB factor into its DCT matrix: float32 rounding
    # on MFCC values of up to a few hundred.
    np.testing.assert_allclose(
        got2[F.MFCC].numpy(), F.mfcc_from_log_mel(got[F.MEL][..., 0], fc).numpy(), atol=2e-4
    )


def test_drawn_masks_are_within_configured_widths(bank, cfgs):
    fc, aug = cfgs
    aug = dataclasses.replace(
        aug, time_masks=2, time_mask_frames=20, freq_masks=3, freq_mask_bins=12
    )
    widths_t, widths_f = [], []
    for s in range(20):
        plan = augment.draw_plan(tf.constant([s, 1]), 64, fc, aug, bank, training=True)
        start, width = (v.numpy() for v in plan.time_masks)
        assert start.shape == (64, 2)
        assert (width >= 0).all() and (width <= 20).all() and (start + width <= fc.num_frames).all()
        widths_t.append(width)
        start, width = (v.numpy() for v in plan.freq_masks)
        assert start.shape == (64, 3)
        assert (width <= 12).all() and (start + width <= fc.n_mels).all() and (start >= 0).all()
        widths_f.append(width)
    assert set(np.concatenate(widths_t).ravel()) == set(range(21))  # 0..W, all reachable
    assert set(np.concatenate(widths_f).ravel()) == set(range(13))


def test_plans_are_seeded_and_follow_the_probabilities(bank, cfgs):
    fc, aug = cfgs
    aug = dataclasses.replace(
        aug, mix_prob=0.5, noise_only_prob=0.1, silence_prob=0.05, background_prob=0.7
    )
    a = augment.draw_plan(tf.constant([1, 2]), 4000, fc, aug, bank, training=True)
    b = augment.draw_plan(tf.constant([1, 2]), 4000, fc, aug, bank, training=True)
    c = augment.draw_plan(tf.constant([1, 3]), 4000, fc, aug, bank, training=True)
    np.testing.assert_array_equal(a.partner.numpy(), b.partner.numpy())
    np.testing.assert_array_equal(a.gain_db.numpy(), b.gain_db.numpy())
    assert not np.array_equal(a.partner.numpy(), c.partner.numpy())
    assert sorted(a.partner.numpy()) == list(range(4000))  # a permutation
    kind = a.kind.numpy()
    assert abs((kind == augment.NOISE_ONLY).mean() - 0.1) < 0.02
    assert abs((kind == augment.SILENCE).mean() - 0.05) < 0.015
    assert abs(a.mix.numpy().mean() - 0.5) < 0.03
    assert np.abs(a.gain_db.numpy()).max() <= aug.mix_gain_db
    snr = a.snr_db.numpy()
    assert snr.min() >= aug.snr_db_min and snr.max() <= aug.snr_db_max
    assert a.shift.numpy().any() and a.time_masks[0].shape == (4000, aug.time_masks)
    # floor noise only from stationary kinds
    kinds = {bank.kinds[i] for i in a.floor_noise.index_a.numpy()}
    assert kinds <= set(augment.STATIONARY_KINDS)
    # validation plans: no clip shift, no masks
    v = augment.draw_plan(tf.constant([1, 2]), 16, fc, aug, bank, training=False)
    assert not v.shift.numpy().any()
    assert v.time_masks[0].shape == (16, 0) and v.freq_masks[0].shape == (16, 0)


def test_clean_examples_get_no_partner_noise_floor_or_mask(bank, batch, cfgs):
    fc, aug = cfgs
    aug = dataclasses.replace(
        aug, mix_prob=0.5, noise_only_prob=0.1, silence_prob=0.1, background_prob=0.7
    )
    seed = tf.constant([1, 2])
    base = augment.draw_plan(seed, 4000, fc, aug, bank, training=True)
    cleaned = dataclasses.replace(aug, clean_prob=0.3)
    a = augment.draw_plan(seed, 4000, fc, cleaned, bank, training=True)
    clean = (
        (a.kind.numpy() == augment.VOICED)
        & ~a.mix.numpy()
        & ~a.background.numpy()
        & np.isinf(a.floor_db.numpy())
        & (a.time_masks[1].numpy() == 0).all(axis=1)
        & (a.freq_masks[1].numpy() == 0).all(axis=1)
    )
    assert abs(clean.mean() - 0.3) < 0.03  # (the noise floor is on, so no other example is)
    # everything else is the plan drawn without clean examples, example for example
    other = ~clean
    np.testing.assert_array_equal(a.mix.numpy()[other], base.mix.numpy()[other])
    np.testing.assert_array_equal(a.kind.numpy()[other], base.kind.numpy()[other])
    np.testing.assert_array_equal(a.floor_db.numpy()[other], base.floor_db.numpy()[other])
    np.testing.assert_array_equal(a.shift.numpy(), base.shift.numpy())  # time shift kept
    # validation mixing is never left clean
    v = augment.draw_plan(seed, 400, fc, cleaned, bank, training=False)
    w = augment.draw_plan(seed, 400, fc, aug, bank, training=False)
    np.testing.assert_array_equal(v.mix.numpy(), w.mix.numpy())
    np.testing.assert_array_equal(v.kind.numpy(), w.kind.numpy())
    # a clean example comes out as the clip itself
    x, y = batch
    plan = augment.draw_plan(
        seed,
        B,
        fc,
        dataclasses.replace(cleaned, clean_prob=1.0, time_shift=False),
        bank,
        training=True,
    )
    out, targets = augment.apply_plan(x, y, plan, bank, fc, cleaned)
    np.testing.assert_allclose(out[F.MEL].numpy(), x[F.MEL].numpy(), atol=1e-3)
    for key in y:
        np.testing.assert_array_equal(targets[key].numpy(), y[key].numpy())


def test_noise_bank(cfgs):
    fc, aug = cfgs
    aug = dataclasses.replace(aug, noise_bank_per_kind=2, noise_dir="")  # synthetic only
    a = augment.make_noise_bank(fc, aug, seed=5)
    b = augment.make_noise_bank(fc, aug, seed=5)
    assert a.power.shape == (2 * len(augment.NOISE_KINDS), fc.n_mels, fc.num_frames)
    assert a.kinds == tuple(k for k in augment.NOISE_KINDS for _ in range(2))
    np.testing.assert_array_equal(a.power.numpy(), b.power.numpy())
    p = a.power.numpy()
    assert np.isfinite(p).all() and (p >= 0).all()
    # band-limited: the top mel bands (well above noise_max_hz = 8 kHz) hold almost nothing
    centres = librosa.mel_frequencies(fc.n_mels + 2, fmin=fc.fmin_hz, fmax=fc.fmax_hz)[1:-1]
    high = centres > aug.noise_max_hz * 1.2
    assert p[:, high].mean() < 1e-6 * p[:, ~high].mean()
    with pytest.raises(ValueError, match="unknown noise kind"):
        augment.synth_noise("rain", np.random.default_rng(0), 100, fc.sample_rate_hz)


def test_augment_batch_end_to_end_is_seeded(bank, batch, cfgs):
    fc, aug = cfgs
    x, y = batch
    a = augment.augment_batch(x, y, tf.constant([4, 2]), fc, aug, bank, training=True)
    b = augment.augment_batch(x, y, tf.constant([4, 2]), fc, aug, bank, training=True)
    for key in (F.MFCC, F.MEL):
        assert a[0][key].shape == x[key].shape
        np.testing.assert_array_equal(a[0][key].numpy(), b[0][key].numpy())
        assert np.isfinite(a[0][key].numpy()).all()


@pytest.mark.parametrize(
    "override, message",
    [
        (["augment.mix_prob=1.5"], "augment.mix_prob must be in"),
        (["augment.noise_only_prob=0.6", "augment.silence_prob=0.5"], "must be <= 1"),
        (["augment.snr_db_min=40.0"], "augment.snr_db_min must be <= augment.snr_db_max"),
        (["augment.time_mask_frames=-1"], "mask counts and widths"),
        (["augment.noise_bank_per_kind=0"], "noise_bank_per_kind"),
        (["augment.recorded_noise_share=1.0"], "recorded_noise_share must be in"),
        (["augment.clean_prob=-0.1"], "augment.clean_prob must be in"),
    ],
)
def test_augment_config_is_checked(override, message):
    from deepwave_tf.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


def test_xla_compiled_augmentation_matches_plain_tensorflow(bank, batch, cfgs):
    """`augment.jit_compile` changes how the batch is computed, never what: same plan, same result."""
    fc, aug = cfgs
    x, y = batch
    seed = tf.constant([7, 1])
    plain = augment.augment_batch(
        x, y, seed, fc, dataclasses.replace(aug, jit_compile=False), bank, training=True
    )
    xla = augment.augment_batch(
        x, y, seed, fc, dataclasses.replace(aug, jit_compile=True), bank, training=True
    )
    for key in ("fake", "real"):
        np.testing.assert_array_equal(xla[1][key].numpy(), plain[1][key].numpy())
    # XLA's exp/log differ from Eigen's in the last bits: compare in dB.
    np.testing.assert_allclose(xla[0][F.MEL].numpy(), plain[0][F.MEL].numpy(), atol=1e-3)
    np.testing.assert_allclose(xla[0][F.MFCC].numpy(), plain[0][F.MFCC].numpy(), atol=1e-2)
    assert xla[0][F.MEL].shape == (B, fc.n_mels, fc.num_frames, 1)
    assert xla[0][F.MFCC].shape == (B, fc.num_frames, fc.n_mfcc)


def test_time_major_input_gives_the_same_batch(bank, batch, cfgs):
    """The pipeline hands the augmentation the mel time-major, as records store it."""
    fc, aug = cfgs
    x, y = batch
    seed = tf.constant([5, 3])
    band = augment.augment_batch(x, y, seed, fc, aug, bank, training=True)
    time_major = {F.MEL: tf.transpose(x[F.MEL][..., 0], [0, 2, 1])}
    tm = augment.augment_batch(time_major, y, seed, fc, aug, bank, training=True, time_major=True)
    assert tm[0][F.MEL].shape == (B, fc.n_mels, fc.num_frames, 1)
    for key in (F.MEL, F.MFCC):
        np.testing.assert_array_equal(tm[0][key].numpy(), band[0][key].numpy())
    for key in ("fake", "real"):
        np.testing.assert_array_equal(tm[1][key].numpy(), band[1][key].numpy())


def test_xla_cache_flag_is_opt_in(tmp_path):
    import deepwave_tf

    env = {"DEEPWAVE_XLA_CACHE": str(tmp_path / "xla"), "TF_XLA_FLAGS": "--tf_xla_auto_jit=0"}
    flags = deepwave_tf._xla_cache_flags(env)
    assert flags == f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={tmp_path / 'xla'}"
    assert (tmp_path / "xla").is_dir()
    # Off unless asked for (TF 2.17 logs a protobuf "error" on every cache hit).
    assert deepwave_tf._xla_cache_flags({}) is None
    assert deepwave_tf._xla_cache_flags({"XDG_CACHE_HOME": str(tmp_path / "cache")}) is None
    assert deepwave_tf._xla_cache_flags({"DEEPWAVE_XLA_CACHE": "off"}) is None
    own = {
        "TF_XLA_FLAGS": "--tf_xla_persistent_cache_directory=/elsewhere",
        "DEEPWAVE_XLA_CACHE": str(tmp_path / "mine"),
    }
    assert deepwave_tf._xla_cache_flags(own) is None


# --------------------------------------------------------------------------- #
# Recorded noise (data/noise/)
# --------------------------------------------------------------------------- #
def test_recorded_noise_bank_from_the_committed_pieces(cfgs):
    fc, aug = cfgs  # 1 synthetic per kind; recorded_noise_share 0.5 -> 7 recorded
    assert aug.noise_dir == "data/noise"
    aug = dataclasses.replace(aug, recorded_noise_share=0.5)
    bank = augment.make_noise_bank(fc, aug, seed=5)
    n_syn = len(augment.NOISE_KINDS)
    assert augment.recorded_count(aug) == n_syn
    assert bank.power.shape == (2 * n_syn, fc.n_mels, fc.num_frames)
    assert bank.kinds[:n_syn] == augment.NOISE_KINDS
    assert {k for k in bank.kinds[n_syn:]} <= {"rec_music", "rec_ambience", "rec_sfx"}
    p = bank.power.numpy()
    assert np.isfinite(p).all() and (p >= 0).all()
    assert (p[n_syn:].mean(axis=(1, 2)) > 0).all()
    # the synthetic entries are the same with or without the recorded ones
    synthetic = augment.make_noise_bank(fc, dataclasses.replace(aug, noise_dir=""), seed=5)
    np.testing.assert_array_equal(p[:n_syn], synthetic.power.numpy())
    # recorded entries keep within the pieces' 8 kHz band too
    centres = librosa.mel_frequencies(fc.n_mels + 2, fmin=fc.fmin_hz, fmax=fc.fmax_hz)[1:-1]
    high = centres > 8000.0 * 1.2
    assert p[n_syn:, high].mean() < 1e-6 * p[n_syn:, ~high].mean()
    # the committed bank: every piece is in exactly one part, and each part has every kind
    train = augment.recorded_pieces(aug.noise_dir, "train")
    val = augment.recorded_pieces(aug.noise_dir, "val")
    assert not {path for _, path in train} & {path for _, path in val}
    for part in (train, val):
        assert {kind for kind, _ in part} == {"music", "ambience", "sfx"}


def write_tone_bank(root, freqs_hz, groups, rate=16000):
    """A noise_dir of 2 s pure tones (one frequency per piece) and its sources.csv."""
    import soundfile as sf

    root.mkdir()
    t = np.arange(2 * rate) / rate
    lines = ["file,kind,package,version,licence,original,group"]
    for i, (f, g) in enumerate(zip(freqs_hz, groups)):
        sf.write(root / f"t{i}.ogg", 0.3 * np.sin(2 * np.pi * f * t), rate, format="OGG")
        lines.append(f"t{i}.ogg,music,test,0,CC0-1.0,tone {f} Hz,{g}")
    (root / "sources.csv").write_text("\n".join(lines) + "\n")


def test_recorded_train_and_val_parts_are_disjoint_and_seeded(cfgs, tmp_path):
    fc, aug = cfgs
    groups = [f"g{i}" for i in range(24)]
    parts = [augment.noise_part(g) for g in groups]
    assert 0 < parts.count("val") < parts.count("train")  # about a quarter to val
    freqs = 200.0 * 1.15 ** np.arange(len(groups))  # 200 .. 4970 Hz, in distinct mel bands
    write_tone_bank(tmp_path / "tones", freqs, groups)
    aug = dataclasses.replace(aug, noise_dir=str(tmp_path / "tones"), recorded_noise_share=0.5)
    n_syn = len(augment.NOISE_KINDS)
    assert augment.recorded_count(aug) == n_syn  # share 0.5: as many as synthetic
    centres = librosa.mel_frequencies(fc.n_mels + 2, fmin=fc.fmin_hz, fmax=fc.fmax_hz)[1:-1]

    def tones_heard(part, seed):
        bank = augment.make_noise_bank(fc, aug, seed=seed, part=part)
        assert bank.size == 2 * n_syn
        peaks = bank.band_means.numpy()[n_syn:].argmax(axis=1)
        # each entry is one tone: the nearest piece frequency to its loudest band
        return {int(np.abs(freqs - centres[b]).argmin()) for b in peaks}

    in_train = {i for i, p in enumerate(parts) if p == "train"}
    heard_train, heard_val = tones_heard("train", 5), tones_heard("val", 5)
    assert heard_train <= in_train and heard_val <= set(range(len(groups))) - in_train
    assert len(heard_val) == parts.count("val") < n_syn  # every val piece before a repeat
    # seeded: the same seed gives the same bank, another seed other crops and order
    a = augment.make_noise_bank(fc, aug, seed=5).power.numpy()
    augment._make_noise_bank.cache_clear()
    np.testing.assert_array_equal(a, augment.make_noise_bank(fc, aug, seed=5).power.numpy())
    b = augment.make_noise_bank(fc, aug, seed=6).power.numpy()
    assert not np.array_equal(a[n_syn:], b[n_syn:])


def test_missing_recorded_noise_is_a_config_error_naming_the_path(cfgs, tmp_path):
    from deepwave_tf.config import ConfigError

    fc, aug = cfgs
    for where in (tmp_path / "nowhere", tmp_path):  # missing, and a directory without pieces
        bad = dataclasses.replace(aug, noise_dir=str(where))
        with pytest.raises(ConfigError, match=f"no recorded noise at {where} "):
            augment.make_noise_bank(fc, bad, seed=1)
    write_tone_bank(tmp_path / "tones", [440.0], ["g1"])  # g1: a train group
    (tmp_path / "tones" / "t0.ogg").unlink()
    with pytest.raises(ConfigError, match="t0.ogg .listed in .* is missing"):
        augment.make_noise_bank(fc, dataclasses.replace(aug, noise_dir=str(tmp_path / "tones")), 1)
    # "" (or a share of 0) asks for synthetic noise only: no directory needed
    for off in (
        {"noise_dir": ""},
        {"noise_dir": str(tmp_path / "nowhere"), "recorded_noise_share": 0.0},
    ):
        bank = augment.make_noise_bank(fc, dataclasses.replace(aug, **off), seed=1)
        assert bank.kinds == augment.NOISE_KINDS
