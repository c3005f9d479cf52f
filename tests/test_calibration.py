"""calibration.py on synthetic logits: Platt fits, the small-sample guard, the out-of-fold choice.

numpy + scipy only (no TensorFlow): these run in a second or two.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepwave_tf import calibration, metrics
from deepwave_tf.config import CONFIG_DIR, ConfigError, load_config


def _miscalibrated(n: int, seed: int, scale: float = 1.0, bias: float = 0.0):
    """Targets drawn from sigmoid(z); the 'model' reports the logit w with sigmoid(scale w + bias)
    = sigmoid(z), i.e. w = (z - bias) / scale. scale = 1, bias = 0: already calibrated."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=n)
    y = (rng.uniform(size=n) < calibration.sigmoid(z)).astype(float)
    return (z - bias) / scale, y


def _two_outputs(w, y):
    return np.stack([w, w], axis=1), np.stack([y, y], axis=1)


def test_platt_recovers_known_scale_and_bias():
    w, y = _miscalibrated(20000, seed=0, scale=0.5, bias=-1.0)
    a, b = calibration.fit_platt(w, y)
    assert a == pytest.approx(0.5, rel=0.05)
    assert b == pytest.approx(-1.0, abs=0.05)
    # The optimum: no neighbour has a lower log loss.
    best = calibration.affine_log_losses(w, y, a, b).mean()
    for da, db in ((1.01, 0), (0.99, 0), (1, 0.01), (1, -0.01)):
        assert best <= calibration.affine_log_losses(w, y, a * da, b + db).mean()
    # Undoing the map gives back the raw probabilities.
    p = calibration.apply_affine(w, a, b)
    np.testing.assert_allclose(
        calibration.uncalibrate_affine(p, a, b), calibration.sigmoid(w), atol=1e-9
    )


def test_prior_pulls_a_small_sample_towards_the_identity():
    w, y = _miscalibrated(40, seed=1, scale=0.5, bias=-1.0)
    free = calibration.fit_platt(w, y)
    pulled = calibration.fit_platt(w, y, prior_strength=40.0)
    assert abs(np.log(pulled[0])) < abs(np.log(free[0]))
    assert abs(pulled[1]) < abs(free[1])
    t_free = calibration.fit_temperature(w, y)
    t_pulled = calibration.fit_temperature(w, y, prior_strength=40.0)
    assert abs(np.log(t_pulled)) < abs(np.log(t_free))


def test_temperature_range_bounds_the_fit_and_warns():
    w, y = _miscalibrated(2000, seed=2, scale=1 / 8)  # wants T = 8
    assert calibration.fit_temperature(w, y) == pytest.approx(8.0, rel=0.1)
    assert calibration.fit_temperature(w, y, temperature_range=(0.25, 4.0)) == pytest.approx(4.0)
    fitted = calibration.fit_calibration(*_two_outputs(w, y), method="temperature")
    assert fitted.temperatures == pytest.approx([4.0, 4.0])
    assert fitted.warnings[0] == (
        "fake: T = 4 is at the upper bound of export.calibration_temperature_range: on the "
        "validation split the logits barely predict the targets (an untrained model or a tiny "
        "split); its probabilities are flattened towards the validation base rate"
    )


def test_guard_keeps_the_raw_probabilities_on_a_tiny_validation_set():
    w, y = _miscalibrated(12, seed=3, scale=1 / 5)  # badly over-confident, but only 12 clips
    for method in ("auto", "temperature", "platt"):
        fitted = calibration.fit_calibration(*_two_outputs(w, y), method=method, min_clips=100)
        assert fitted.methods == ["none", "none"], method
        np.testing.assert_array_equal(fitted.scale, [1.0, 1.0])
        np.testing.assert_array_equal(fitted.bias, [0.0, 0.0])
        assert fitted.warnings == [
            "only 12 validation clips (export.calibration_min_clips = 100): too few to fit a "
            "calibration that carries over to new data, so the raw probabilities are kept "
            "(method none for fake and real); give validation more clips (a larger "
            "prep.val_fraction) or lower export.calibration_min_clips"
        ]
        assert fitted.details["fake"]["reason"] == "guard: 12 validation clips < 100"
        assert fitted.details["fake"]["cv"] is None


@pytest.mark.parametrize(
    ("scale", "bias", "expected"),
    [(1.0, 0.0, "none"), (0.4, 0.0, "temperature"), (2.5, 0.0, "temperature"), (1.0, 1.5, "platt")],
)
def test_cross_validation_keeps_a_method_only_when_it_helps_out_of_fold(scale, bias, expected):
    w, y = _miscalibrated(400, seed=4, scale=scale, bias=bias)
    fitted = calibration.fit_calibration(*_two_outputs(w, y), method="auto", min_clips=100)
    assert fitted.methods == [expected, expected]
    d = fitted.details["fake"]
    assert d["reason"].startswith("auto, 5-fold out-of-fold log loss: temperature gains")
    assert set(d["cv"]) == {"folds", "none", "temperature", "platt"}
    assert d["cv"]["folds"] == 5
    kept = d["cv"][expected]["log_loss"]
    if expected == "none":
        assert fitted.scale.tolist() == [1.0, 1.0] and fitted.bias.tolist() == [0.0, 0.0]
        assert "temperature gains" in d["reason"] and ": not kept" in d["reason"]
    else:
        assert kept < d["cv"]["none"]["log_loss"]
        assert d["cv"][expected]["ece"] < d["cv"]["none"]["ece"]
        assert f"{expected} gains" in d["reason"]
        # The kept map is refitted on all rows: scale ~ the true one (a prior of 2 clips barely pulls).
        assert fitted.scale[0] == pytest.approx(scale, rel=0.2)
    if expected == "temperature":
        assert fitted.bias.tolist() == [0.0, 0.0]
    assert fitted.warnings == []


def test_a_forced_method_that_hurts_out_of_fold_is_kept_with_a_warning():
    w, y = _miscalibrated(400, seed=5)  # already calibrated: Platt only adds noise
    fitted = calibration.fit_calibration(*_two_outputs(w, y), method="platt")
    assert fitted.methods == ["platt", "platt"]
    cv = fitted.details["fake"]["cv"]
    assert cv["platt"]["log_loss"] > cv["none"]["log_loss"]
    assert fitted.warnings[0] == (
        f"fake: export.calibration = platt is worse than none out of fold (log loss "
        f"{cv['platt']['log_loss']:.4f} vs {cv['none']['log_loss']:.4f}); kept as configured"
    )
    none = calibration.fit_calibration(*_two_outputs(w, y), method="none", min_clips=10**6)
    assert none.methods == ["none", "none"] and none.warnings == []
    assert none.details["real"]["reason"] == "export.calibration = none"


def test_one_class_or_too_few_of_a_class_keeps_none_per_output():
    w, y = _miscalibrated(300, seed=6, scale=0.4)
    logits = np.stack([w, w], axis=1)
    targets = np.stack([y, np.zeros_like(y)], axis=1)  # "real" never present
    fitted = calibration.fit_calibration(logits, targets)
    assert fitted.methods == ["temperature", "none"]
    assert fitted.warnings == [
        "real: all 300 validation targets are 0: calibration needs both classes, so the raw "
        "probabilities are kept (method none)"
    ]
    targets[:3, 1] = 1  # three positives: fewer than the 5 folds
    fitted = calibration.fit_calibration(logits, targets)
    assert fitted.methods == ["temperature", "none"]
    assert fitted.warnings == [
        "real: guard: 3 validation clips of class 1 < export.calibration_folds = 5: cannot "
        "cross-validate; the raw probabilities are kept"
    ]


def test_shared_map_keeps_real_one_minus_fake():
    """The softmax head: logits (d, -d); one (scale, bias), real gets (scale, -bias)."""
    d, y = _miscalibrated(600, seed=7, scale=0.5, bias=1.0)
    logits = np.stack([d, -d], axis=1)
    targets = np.stack([y, 1 - y], axis=1)
    fitted = calibration.fit_calibration(logits, targets, method="platt", shared=True)
    assert fitted.scale[0] == fitted.scale[1]
    assert fitted.bias[1] == -fitted.bias[0] != 0.0
    probs = calibration.apply_affine(logits, fitted.scale, fitted.bias)
    np.testing.assert_allclose(probs[:, 0] + probs[:, 1], 1.0, atol=1e-12)
    # The same map as a Platt fit on the fake column alone (the real column adds the same rows).
    a, b = calibration.fit_platt(d, y, temperature_range=(0.25, 4.0), prior_strength=1.0)
    assert fitted.scale[0] == pytest.approx(a, rel=1e-4)
    assert fitted.bias[0] == pytest.approx(b, abs=1e-4)
    auto = calibration.fit_calibration(logits, targets, shared=True)
    assert auto.methods == ["platt", "platt"]
    assert auto.details["fake"]["cv"] == auto.details["real"]["cv"]


def test_report_before_and_after_the_affine_map():
    w, y = _miscalibrated(1000, seed=8, scale=0.5, bias=-1.0)
    logits, targets = _two_outputs(w, y)
    report = calibration.calibration_report(
        logits, targets, scale=[0.5, 1.0], bias=[-1.0, 0.0], methods=["platt", "none"]
    )
    fake, real = report["fake"], report["real"]
    assert (fake["method"], fake["scale"], fake["bias"], fake["temperature"]) == (
        "platt",
        0.5,
        -1.0,
        2.0,
    )
    assert fake["after"]["ece"] == pytest.approx(
        metrics.expected_calibration_error(y, calibration.apply_affine(w, 0.5, -1.0))
    )
    assert fake["before"]["ece"] == pytest.approx(
        metrics.expected_calibration_error(y, calibration.sigmoid(w))
    )
    assert fake["after"]["log_loss"] < fake["before"]["log_loss"]
    assert real["before"] == real["after"]
    table = calibration.format_report(report)
    assert "platt" in table.splitlines()[2] and "-1.000" in table.splitlines()[2]


def test_bad_settings_are_errors_that_name_them():
    w, y = _miscalibrated(200, seed=9)
    with pytest.raises(calibration.CalibrationError, match="unknown calibration method 'isotonic'"):
        calibration.fit_calibration(*_two_outputs(w, y), method="isotonic")
    with pytest.raises(calibration.CalibrationError, match="at least 2 folds, got 1"):
        calibration.fit_calibration(*_two_outputs(w, y), folds=1)
    with pytest.raises(ConfigError, match="export.calibration='isotonic' is not one of"):
        load_config(None, ["export.calibration=isotonic"])
    with pytest.raises(ConfigError, match=r"export.calibration_temperature_range=\[2.0, 4.0\]"):
        load_config(None, ["export.calibration_temperature_range=[2.0, 4.0]"])
    with pytest.raises(ConfigError, match="export.calibration_folds must be >= 2"):
        load_config(None, ["export.calibration_folds=1"])


def test_format_choice_names_the_method_its_parameters_and_why():
    w, y = _miscalibrated(400, seed=4, scale=0.4)
    fitted = calibration.fit_calibration(*_two_outputs(w, y))
    lines = calibration.format_choice(fitted.details).splitlines()
    d, cv = fitted.details["fake"], fitted.details["fake"]["cv"]
    assert lines[0] == (
        f"fake: temperature (scale {d['scale']:.4f}, bias +0.0000, T {d['temperature']:.4f}) - "
        + d["reason"]
    )
    assert lines[1:4] == [
        f"    out of fold {m:<12} log loss {cv[m]['log_loss']:.4f}  "
        f"Brier {cv[m]['brier']:.4f}  ECE {cv[m]['ece']:.4f}"
        for m in ("none", "temperature", "platt")
    ]
    assert len(lines) == 8  # the same for real
    guarded = calibration.fit_calibration(*_two_outputs(w[:12], y[:12]))
    assert calibration.format_choice(guarded.details).splitlines() == [
        f"{k}: none (scale 1.0000, bias +0.0000, T 1.0000) - guard: 12 validation clips < 100"
        for k in ("fake", "real")
    ]


# --------------------------------------------------------------------------- #
# Several rows per clip (export.calibration_passes)
# --------------------------------------------------------------------------- #
def test_rows_of_one_clip_count_once_for_the_guard():
    w, y = _miscalibrated(60, seed=11, scale=0.5)
    z, t = _two_outputs(np.tile(w, 4), np.tile(y, 4))
    clips = np.tile(np.arange(60), 4)
    guarded = calibration.fit_calibration(z, t, method="temperature", min_clips=100, clips=clips)
    assert guarded.methods == ["none", "none"]
    assert guarded.details["fake"]["reason"] == "guard: 60 validation clips < 100"
    rows = calibration.fit_calibration(z, t, method="temperature", min_clips=100)
    assert rows.methods == ["temperature", "temperature"]  # 240 rows taken as 240 clips


def test_cross_validation_keeps_a_clips_rows_in_one_fold():
    w, y = _miscalibrated(150, seed=12)
    clips = np.tile(np.arange(150), 3)
    z = np.tile(w, 3)
    t = np.tile(y, 3)
    clip_fold = calibration.stratified_folds(y, 5, seed=0)
    cv = calibration.cross_validate(z, t, clip_fold, clips, methods=("none", "temperature"))
    # per clip: the sum of its 3 rows' losses; with identical rows 3x one row's loss
    single = calibration.cross_validate(w, y, clip_fold, methods=("none", "temperature"))
    for m in ("none", "temperature"):
        np.testing.assert_allclose(cv[m]["per_clip"], 3 * single[m]["per_clip"], rtol=1e-6)


def test_multi_pass_fit_equals_the_fit_on_the_pooled_rows():
    w, y = _miscalibrated(3000, seed=13, scale=1 / 2.5)  # wants T = 2.5
    clips = np.tile(np.arange(1000), 3)
    fitted = calibration.fit_calibration(*_two_outputs(w, y), method="temperature", clips=clips)
    # prior worth 2 clips = 6 rows here
    t = calibration.fit_temperature(w, y, temperature_range=(0.25, 4.0), prior_strength=6.0)
    assert fitted.temperatures == pytest.approx([t, t], rel=1e-6)
    assert fitted.temperatures[0] == pytest.approx(2.5, rel=0.1)


@pytest.mark.parametrize(
    "clips, match",
    [
        (np.zeros(5, np.int64), r"clips must be \[6\] integer clip indices"),
        (None, "clips must number the clips 0..N-1 with none missing"),
        (np.linspace(0, 1, 6), r"clips must be \[6\] integer clip indices"),
    ],
)
def test_malformed_clip_indices_are_an_error(clips, match):
    w, y = _miscalibrated(6, seed=14)
    if match.startswith("clips must number"):
        clips = np.array([0, 1, 2, 0, 1, 4])  # clip 3 missing
    with pytest.raises(calibration.CalibrationError, match=match):
        calibration.fit_calibration(*_two_outputs(w, y), clips=clips)


def test_calibration_passes_must_be_positive():
    with pytest.raises(ConfigError, match="export.calibration_passes must be >= 1"):
        load_config(CONFIG_DIR / "tiny.toml", ["export.calibration_passes=0"])
