"""metrics.py against hand-computed values on a 6-row table, and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from deepwave_tf import metrics

# Six clips, columns (fake, real). Values chosen off the bin edges.
Y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 1], [0, 0]])
P = np.array([[0.90, 0.15], [0.60, 0.75], [0.35, 0.85], [0.05, 0.18], [0.30, 0.12], [0.70, 0.78]])

# By hand --------------------------------------------------------------------
# fake: positives {.9, .6, .3}, negatives {.35, .05, .7}; pairs won: .9 -> 3, .6 -> 2, .3 -> 1.
AUC_FAKE = 6 / 9
# real: positives {.75, .85, .12}, negatives {.15, .18, .78}; .75 -> 2, .85 -> 3, .12 -> 0.
AUC_REAL = 5 / 9
BRIER_FAKE = (0.1**2 + 0.4**2 + 0.35**2 + 0.05**2 + 0.7**2 + 0.7**2) / 6
BRIER_REAL = (0.15**2 + 0.25**2 + 0.15**2 + 0.18**2 + 0.88**2 + 0.78**2) / 6
# fake: every probability sits alone in its bin -> mean |p - y|.
ECE_FAKE = (0.1 + 0.4 + 0.35 + 0.05 + 0.7 + 0.7) / 6
# real: bin (0.1, 0.2] = {.15 (0), .18 (0), .12 (1)}: |0.15 - 1/3|, weight 3/6;
#       bin (0.7, 0.8] = {.75 (1), .78 (0)}: |0.765 - 0.5|, weight 2/6;
#       bin (0.8, 0.9] = {.85 (1)}: 0.15, weight 1/6.
ECE_REAL = 3 / 6 * abs(0.15 - 1 / 3) + 2 / 6 * abs(0.765 - 0.5) + 1 / 6 * 0.15
SCORE = (
    0.5 * (1 - (AUC_FAKE + AUC_REAL) / 2)
    + 0.25 * (BRIER_FAKE + BRIER_REAL) / 2
    + 0.25 * (ECE_FAKE + ECE_REAL) / 2
)


def test_challenge_score_matches_hand_computation():
    out = metrics.challenge_score(Y, P)
    assert out["auc"] == pytest.approx({"fake": AUC_FAKE, "real": AUC_REAL}, abs=1e-12)
    assert out["brier"] == pytest.approx({"fake": BRIER_FAKE, "real": BRIER_REAL}, abs=1e-12)
    assert out["ece"] == pytest.approx({"fake": ECE_FAKE, "real": ECE_REAL}, abs=1e-12)
    assert out["score"] == pytest.approx(SCORE, abs=1e-12)
    assert out["score"] == pytest.approx(0.32627152777, abs=1e-9)  # the number itself
    assert out["n"] == 6


def test_equal_error_rate_by_hand():
    # Threshold 0.6: fake clips .9, .6 accepted (FNR 1/3), real .7 accepted (FPR 1/3).
    assert metrics.equal_error_rate(Y[:, 0], P[:, 0]) == pytest.approx(1 / 3)
    eer, threshold = metrics.eer_with_threshold(Y[:, 0], P[:, 0])
    assert threshold == pytest.approx(0.6)
    # Perfect separation and perfect inversion.
    assert metrics.equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert metrics.equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 1.0


def test_equal_error_rate_interpolates():
    # Overlapping score distributions: FPR and FNR cross between ROC points.
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)]
    s = np.r_[rng.normal(0, 1, 500), rng.normal(2, 1, 500)]
    # Two unit-variance Gaussians 2 apart: EER = Phi(-1) = 0.1587.
    assert metrics.equal_error_rate(y, s) == pytest.approx(0.1587, abs=0.025)


def test_ece_bin_edges_are_right_closed():
    # 0.1 lies in the first bin [0, 0.1] (sklearn's calibration_curve convention), 0.0 and 1.0 included.
    assert metrics.bin_ids([0.0, 0.1, 0.10001, 0.5, 0.95, 1.0]).tolist() == [0, 0, 1, 4, 9, 9]
    # Two rows in one bin: |mean p - frac pos| = |0.15 - 0.5|.
    assert metrics.expected_calibration_error([0, 1], [0.1, 0.2]) == pytest.approx(
        0.5 * abs(0.1 - 0) + 0.5 * abs(0.2 - 1)
    )
    assert metrics.expected_calibration_error([0, 1], [0.12, 0.18]) == pytest.approx(0.35)
    # Perfect calibration on exact 0/1 probabilities.
    assert metrics.expected_calibration_error([0, 1, 1], [0.0, 1.0, 1.0]) == 0.0


def test_against_sklearn_on_random_table():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rng = np.random.default_rng(1125)
    y = rng.integers(0, 2, size=(300, 2))
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, size=(300, 2)), 0, 1)
    out = metrics.challenge_score(y, p)
    for i, key in enumerate(metrics.LABEL_KEYS):
        assert out["auc"][key] == pytest.approx(roc_auc_score(y[:, i], p[:, i]), abs=1e-12)
        assert out["brier"][key] == pytest.approx(brier_score_loss(y[:, i], p[:, i]), abs=1e-12)
        frac_pos, mean_prob = calibration_curve(y[:, i], p[:, i], n_bins=10, strategy="uniform")
        counts = np.bincount(metrics.bin_ids(p[:, i]), minlength=10)
        weights = counts[counts > 0] / len(p)
        assert out["ece"][key] == pytest.approx(np.sum(weights * np.abs(frac_pos - mean_prob)))


def test_log_loss_matches_sklearn():
    from sklearn.metrics import log_loss

    y = Y[:, 0]
    assert metrics.log_loss(y, P[:, 0]) == pytest.approx(log_loss(y, P[:, 0]), abs=1e-12)


def test_label_keys_match_features():
    from deepwave_tf import features

    assert metrics.LABEL_KEYS == features.LABEL_KEYS


@pytest.mark.parametrize(
    "y, p, message",
    [
        (np.ones((4, 2)), np.full((4, 2), 0.5), "AUC needs both classes, but all 4 targets are 1"),
        (Y, P[:5], "y_true has shape (6, 2) but y_prob has shape (5, 2)"),
        (Y, np.where(P > 0.8, 1.5, P), "y_prob must lie in [0, 1], found [0.05, 1.5]"),
        (Y, np.where(P > 0.8, np.nan, P), "y_prob contains NaN or inf (2 values)"),
        (np.where(Y == 1, 2, Y), P, "y_true must hold only 0 and 1, found [2.0]"),
        (Y[:, :1], P[:, :1], "expected [N, 2] arrays (fake, real), got (6, 1)"),
    ],
)
def test_challenge_score_rejects_bad_input(y, p, message):
    with pytest.raises(metrics.MetricError) as e:
        metrics.challenge_score(y, p)
    assert message in str(e.value)
