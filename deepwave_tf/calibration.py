"""Temperature scaling: one scalar T > 0 per output, fitted on the validation split.

The exported model returns `sigmoid(logit / T)` for each output (fake, real).
T is chosen to minimise the validation log loss of those probabilities; it
never changes the ranking of clips (AUC / EER are unchanged), only how sure the
probabilities are, which is what the Brier and ECE parts of the challenge score
reward.

The log loss of `sigmoid(a * z)` is convex in `a = 1 / T` (it is a one-weight
logistic regression without intercept), so a bounded 1-D search over log T
finds the global minimum.

For the `softmax` head, real = 1 - fake must keep holding after calibration:
both logits are `±(z0 - z1)`, so one shared T (fitted on both columns together)
scales them identically.

numpy + scipy only; no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepwave_tf import metrics

# Bounds of the search. Outside this range the validation set is telling us
# something is broken (constant logits, a single class), not how to calibrate.
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0


class CalibrationError(ValueError):
    """Validation data a temperature cannot be fitted on."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (float64)."""
    x = np.asarray(x, np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def apply_temperature(logits: Any, temperatures: Any) -> np.ndarray:
    """Calibrated probabilities `sigmoid(logits / T)`.

    Args:
        logits: `[N]` or `[N, C]` binary logits.
        temperatures: scalar or `[C]`.

    Returns:
        Probabilities of the same shape as `logits` (float64).
    """
    return sigmoid(np.asarray(logits, np.float64) / np.asarray(temperatures, np.float64))


def logit(p: Any, eps: float = 1e-7) -> np.ndarray:
    """Inverse sigmoid, probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(p, np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def uncalibrate(probs: Any, temperatures: Any) -> np.ndarray:
    """Undo temperature scaling: `sigmoid(T * logit(p))` (the model's raw probabilities).

    Exact up to float32 saturation of `p` near 0 and 1 (clipped at 1e-7).
    """
    return sigmoid(np.asarray(temperatures, np.float64) * logit(probs))


def temperature_log_loss(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy (nats) of `sigmoid(logits / T)` against 0/1 targets."""
    s = np.asarray(logits, np.float64) / temperature
    y = np.asarray(targets, np.float64)
    # -[y log sig(s) + (1-y) log(1 - sig(s))] = y softplus(-s) + (1-y) softplus(s)
    return float(np.mean(y * np.logaddexp(0.0, -s) + (1.0 - y) * np.logaddexp(0.0, s)))


def fit_temperature(logits: Any, targets: Any) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] minimising the log loss of sigmoid(z / T).

    Args:
        logits: `[N]` (or any shape; flattened) binary logits.
        targets: same shape, 0/1.

    Raises:
        CalibrationError: no rows, non-binary targets, NaN logits, or a single
            class (the optimum is then T -> 0 or infinity, not a calibration).
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, np.float64).ravel()
    y = np.asarray(targets, np.float64).ravel()
    if z.shape != y.shape:
        raise CalibrationError(f"{z.size} logits but {y.size} targets")
    if z.size == 0:
        raise CalibrationError("no validation rows to fit a temperature on")
    if not np.all(np.isfinite(z)):
        raise CalibrationError("validation logits contain NaN or inf")
    if not np.all((y == 0) | (y == 1)):
        raise CalibrationError("validation targets must be 0 or 1")
    if y.min() == y.max():
        raise CalibrationError(
            f"all {y.size} validation targets are {int(y[0])}: a temperature needs both classes"
        )
    result = minimize_scalar(
        lambda log_t: temperature_log_loss(z, y, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(np.exp(result.x))


def fit_temperatures(logits: Any, targets: Any, shared: bool = False) -> np.ndarray:
    """One temperature per column, or one shared by all columns.

    Args:
        logits: `[N, C]` binary logits (C = 2: fake, real).
        targets: `[N, C]` 0/1.
        shared: fit a single T on all columns together (required for the
            softmax head, where real = 1 - fake must survive calibration).

    Returns:
        `[C]` temperatures (all equal when `shared`).
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(targets, np.float64)
    if z.ndim != 2 or z.shape != y.shape:
        raise CalibrationError(f"expected [N, C] logits and targets, got {z.shape} and {y.shape}")
    if shared:
        return np.full(z.shape[1], fit_temperature(z, y))
    return np.array([fit_temperature(z[:, i], y[:, i]) for i in range(z.shape[1])])


def calibration_report(
    logits: Any,
    targets: Any,
    temperatures: Any,
    labels: Sequence[str] = metrics.LABEL_KEYS,
) -> dict[str, dict[str, dict[str, float]]]:
    """Brier, ECE and log loss per output, before (T = 1) and after calibration.

    Returns:
        `{label: {"before": {"brier", "ece", "log_loss"}, "after": {...}, "temperature": T}}`.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(targets, np.float64)
    temps = np.broadcast_to(np.asarray(temperatures, np.float64), (z.shape[1],))
    report: dict[str, Any] = {}
    for i, label in enumerate(labels):
        row: dict[str, Any] = {"temperature": float(temps[i])}
        for name, t in (("before", 1.0), ("after", float(temps[i]))):
            p = apply_temperature(z[:, i], t)
            row[name] = {
                "brier": metrics.brier_score(y[:, i], p),
                "ece": metrics.expected_calibration_error(y[:, i], p),
                "log_loss": temperature_log_loss(z[:, i], y[:, i], t),
            }
        report[label] = row
    return report


def format_report(report: dict[str, Any]) -> str:
    """A small table of `calibration_report`."""
    lines = [
        f"{'output':<8}{'T':>8}  {'Brier':>15}  {'ECE':>15}  {'log loss':>15}",
        f"{'':<8}{'':>8}  {'before -> after':>15}  {'before -> after':>15}  {'before -> after':>15}",
    ]
    for label, row in report.items():
        cells = [
            f"{row['before'][m]:.4f} -> {row['after'][m]:.4f}" for m in ("brier", "ece", "log_loss")
        ]
        lines.append(
            f"{label:<8}{row['temperature']:>8.3f}  " + "  ".join(f"{c:>15}" for c in cells)
        )
    return "\n".join(lines)
