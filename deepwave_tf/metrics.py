"""The challenge metric and the calibration / detection metrics around it.

Challenge score (lower is better), over the label columns (fake, real):

    score = 0.5 * (1 - mean AUC) + 0.25 * mean Brier + 0.25 * mean ECE

- AUC: `sklearn.metrics.roc_auc_score` per column.
- Brier: mean squared difference between probability and 0/1 target.
- ECE: 10 uniform bins on [0, 1]; per bin |mean probability - fraction of
  positives|, weighted by the bin's share of the rows. Bins are closed on the
  right and the first one includes 0 (`(0.1, 0.2]`, ..., `[0, 0.1]`), the
  convention of `sklearn.calibration.calibration_curve`, which the challenge's
  scoring code calls.

Everything here is numpy (+ scikit-learn for AUC / ROC); no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# = features.LABEL_KEYS (a test checks it); not imported so that metrics stays
# free of TensorFlow and scores a submission in a second.
LABEL_KEYS = ("fake", "real")
ECE_BINS = 10


class MetricError(ValueError):
    """Inputs a metric cannot be computed on (shape mismatch, a single class, NaN)."""


def _as_binary(y_true: Any, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true, dtype=np.float64)
    if y.size and not np.all((y == 0) | (y == 1)):
        bad = np.unique(y[(y != 0) & (y != 1)])[:5]
        raise MetricError(f"{name} must hold only 0 and 1, found {bad.tolist()}")
    return y


def _as_prob(y_prob: Any, name: str = "y_prob") -> np.ndarray:
    p = np.asarray(y_prob, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise MetricError(f"{name} contains NaN or inf ({int(np.sum(~np.isfinite(p)))} values)")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise MetricError(f"{name} must lie in [0, 1], found [{p.min():.4g}, {p.max():.4g}]")
    return p


def _pair(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = _as_binary(y_true), _as_prob(y_prob)
    if y.shape != p.shape:
        raise MetricError(f"y_true has shape {y.shape} but y_prob has shape {p.shape}")
    if y.size == 0:
        raise MetricError("no rows to score")
    return y, p


# --------------------------------------------------------------------------- #
# Per-column metrics (1-D: [N] targets, [N] probabilities)
# --------------------------------------------------------------------------- #
def brier_score(y_true: Any, y_prob: Any) -> float:
    """Mean of (p - y)^2 over `[N]` rows."""
    y, p = _pair(y_true, y_prob)
    return float(np.mean((p - y) ** 2))


def log_loss(y_true: Any, y_prob: Any, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (nats) of `[N]` rows, probabilities clipped to [eps, 1-eps]."""
    y, p = _pair(y_true, y_prob)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def bin_ids(y_prob: Any, n_bins: int = ECE_BINS) -> np.ndarray:
    """Uniform-bin index in [0, n_bins) of each probability (right-closed bins)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], np.asarray(y_prob, np.float64), side="left")


def reliability_bins(y_true: Any, y_prob: Any, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per-bin counts, mean probability and fraction of positives (for plots and ECE).

    Returns:
        `{"count": [n_bins] int, "mean_prob": [n_bins], "frac_pos": [n_bins],
        "edges": [n_bins + 1]}`; empty bins have NaN means.
    """
    y, p = _pair(y_true, y_prob)
    ids = bin_ids(p, n_bins)
    count = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(ids, weights=p, minlength=n_bins) / count
        frac_pos = np.bincount(ids, weights=y, minlength=n_bins) / count
    return {
        "count": count,
        "mean_prob": mean_prob,
        "frac_pos": frac_pos,
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
    }


def expected_calibration_error(y_true: Any, y_prob: Any, n_bins: int = ECE_BINS) -> float:
    """ECE on `n_bins` uniform bins: sum over bins of (n_bin / N) * |mean p - frac positives|."""
    bins = reliability_bins(y_true, y_prob, n_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    gaps = np.abs(bins["mean_prob"][filled] - bins["frac_pos"][filled])
    return float(np.sum(weights * gaps))


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve (sklearn); needs both classes present."""
    from sklearn.metrics import roc_auc_score

    y, p = _pair(y_true, y_score)
    if len(np.unique(y)) < 2:
        raise MetricError(f"AUC needs both classes, but all {y.size} targets are {int(y[0])}")
    return float(roc_auc_score(y, p))


def equal_error_rate(y_true: Any, y_score: Any) -> float:
    """EER: the error rate where false-positive rate = false-negative rate.

    Computed on the ROC curve (sklearn), interpolating linearly between the two
    operating points where FPR - FNR changes sign.

    Args:
        y_true: `[N]` 0/1, 1 = the positive class (e.g. fake).
        y_score: `[N]` scores, higher = more positive.

    Returns:
        EER in [0, 1].
    """
    return eer_with_threshold(y_true, y_score)[0]


def eer_with_threshold(y_true: Any, y_score: Any) -> tuple[float, float]:
    """`(eer, threshold)`; see `equal_error_rate`. The threshold is the ROC point nearest the EER."""
    from sklearn.metrics import roc_curve

    y = _as_binary(y_true)
    s = np.asarray(y_score, np.float64)
    if y.shape != s.shape or y.size == 0:
        raise MetricError(
            f"y_true {y.shape} and y_score {s.shape} must be the same non-empty shape"
        )
    if len(np.unique(y)) < 2:
        raise MetricError(f"EER needs both classes, but all {y.size} targets are {int(y[0])}")
    fpr, tpr, thresholds = roc_curve(y, s)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # goes from <= 0 (strict threshold) to >= 0 (lenient)
    i = int(np.argmax(diff >= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i]), float(thresholds[i])
    # Linear interpolation between points i-1 (diff < 0) and i (diff > 0).
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    nearest = i if w >= 0.5 else i - 1
    return float(eer), float(thresholds[nearest])


# --------------------------------------------------------------------------- #
# The challenge score
# --------------------------------------------------------------------------- #
def challenge_score(
    y_true: Any,
    y_prob: Any,
    labels: Sequence[str] = LABEL_KEYS,
    n_bins: int = ECE_BINS,
) -> dict[str, Any]:
    """The challenge score and its parts.

    Args:
        y_true: `[N, C]` 0/1 targets, columns in `labels` order (fake, real).
        y_prob: `[N, C]` probabilities in [0, 1].
        labels: column names.

    Returns:
        `{"score", "mean_auc", "mean_brier", "mean_ece", "auc": {label: ..},
        "brier": {label: ..}, "ece": {label: ..}, "n": N}` (floats; lower score
        is better).

    Raises:
        MetricError: mismatched shapes, targets other than 0/1, probabilities
            outside [0, 1] or NaN, or a column with a single class (AUC undefined).
    """
    y, p = _pair(y_true, y_prob)
    if y.ndim != 2 or y.shape[1] != len(labels):
        raise MetricError(
            f"expected [N, {len(labels)}] arrays ({', '.join(labels)}), got {y.shape}"
        )
    auc = {k: roc_auc(y[:, i], p[:, i]) for i, k in enumerate(labels)}
    brier = {k: brier_score(y[:, i], p[:, i]) for i, k in enumerate(labels)}
    ece = {k: expected_calibration_error(y[:, i], p[:, i], n_bins) for i, k in enumerate(labels)}
    mean_auc = float(np.mean(list(auc.values())))
    mean_brier = float(np.mean(list(brier.values())))
    mean_ece = float(np.mean(list(ece.values())))
    return {
        "score": 0.5 * (1.0 - mean_auc) + 0.25 * mean_brier + 0.25 * mean_ece,
        "mean_auc": mean_auc,
        "mean_brier": mean_brier,
        "mean_ece": mean_ece,
        "auc": auc,
        "brier": brier,
        "ece": ece,
        "n": int(y.shape[0]),
    }
