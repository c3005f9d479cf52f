"""Calibration of the two outputs: identity, temperature or Platt, chosen out of fold.

Every method is an affine map of each output's binary logit `z` before the
sigmoid, `p = sigmoid(scale * z + bias)`, baked into the exported graph:

- `none`: scale 1, bias 0 (the model's own probabilities);
- `temperature`: scale 1 / T, bias 0 (one scalar T > 0 per output);
- `platt`: a free scale > 0 and bias per output (Platt 1999: a one-feature
  logistic regression on the logit).

A positive scale never changes the ranking of clips (AUC / EER are unchanged),
only how sure the probabilities are, which is what the Brier and ECE parts of
the challenge score reward.

Why a guard: a temperature fitted on a handful of validation clips is a noisy
estimate that can make new data worse (`make demo` fitted T = 0.20 on 12-24
clips, and test ECE went from 0.06 to 0.14). So `fit_calibration`
1. keeps `none` below `min_clips` validation clips, with a warning that says why;
2. bounds T (and 1 / Platt scale) to `temperature_range` and adds a Gaussian
   prior on log(scale) and bias worth `prior_strength` pseudo-clips, pulling
   small-sample fits towards the identity;
3. in `auto` mode, scores the three methods by k-fold cross-validation on the
   validation split (out-of-fold log loss per clip) and keeps a more complex
   method only if it beats the simpler one by more than one standard error of
   the paired per-clip differences (the one-standard-error rule), so a method
   is kept only when it helps out of fold.

Several rows per clip: with `augment.val_mixing` each validation clip is mixed
anew in each of `export.calibration_passes` passes (other second voices, noise,
levels), so the fit sees the mixing distribution instead of one draw of it (on
the dev corpus 4 passes did not lower the test ECE: README). `clips` names each row's clip: the clip count is what the
guard counts, folds keep a clip's rows together, and the standard error is taken
over clips (their rows' losses summed), never over correlated rows.

Log loss is the criterion (a proper scoring rule, smooth, and far less noisy
than a 10-bin ECE on a fold of a few dozen clips); the out-of-fold Brier and
ECE are reported next to it.

For the `softmax` head, real = 1 - fake must keep holding after calibration:
the logits are `±(z0 - z1)`, so one shared map is fitted on the fake column
together with the flipped real column (`-z_real`, `1 - y_real`), and real gets
`(scale, -bias)`.

Both log losses are convex in (scale, bias), so the bounded searches find the
global minimum. numpy + scipy only; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepwave_tf import metrics

# Widest temperature search (`fit_temperature`'s default). Outside this range the
# validation set is telling us something is broken (constant logits, a single
# class), not how to calibrate; the export narrows it (`export.calibration_temperature_range`).
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0
MAX_ABS_BIAS = 10.0  # Platt bias bound (a shift of 10 in logit is already p 0.5 -> 0.99995)
METHODS = ("none", "temperature", "platt")  # in order of complexity
CHOICES = ("auto", *METHODS)
SE_RULE = 1.0  # a method must beat the simpler one by this many standard errors out of fold


class CalibrationError(ValueError):
    """Validation data a calibration cannot be fitted on."""


# --------------------------------------------------------------------------- #
# The maps
# --------------------------------------------------------------------------- #
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (float64)."""
    x = np.asarray(x, np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def logit(p: Any, eps: float = 1e-7) -> np.ndarray:
    """Inverse sigmoid, probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(p, np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def apply_temperature(logits: Any, temperatures: Any) -> np.ndarray:
    """Calibrated probabilities `sigmoid(logits / T)`.

    Args:
        logits: `[N]` or `[N, C]` binary logits.
        temperatures: scalar or `[C]`.

    Returns:
        Probabilities of the same shape as `logits` (float64).
    """
    return sigmoid(np.asarray(logits, np.float64) / np.asarray(temperatures, np.float64))


def apply_affine(logits: Any, scale: Any, bias: Any = 0.0) -> np.ndarray:
    """Calibrated probabilities `sigmoid(scale * logits + bias)`.

    Args:
        logits: `[N]` or `[N, C]` binary logits.
        scale, bias: scalars or `[C]`.

    Returns:
        Probabilities of the same shape as `logits` (float64).
    """
    z = np.asarray(logits, np.float64)
    return sigmoid(np.asarray(scale, np.float64) * z + np.asarray(bias, np.float64))


def uncalibrate(probs: Any, temperatures: Any) -> np.ndarray:
    """Undo temperature scaling: `sigmoid(T * logit(p))` (the model's raw probabilities).

    Exact up to float32 saturation of `p` near 0 and 1 (clipped at 1e-7).
    """
    return sigmoid(np.asarray(temperatures, np.float64) * logit(probs))


def uncalibrate_affine(probs: Any, scale: Any, bias: Any = 0.0) -> np.ndarray:
    """Undo `apply_affine`: `sigmoid((logit(p) - bias) / scale)`.

    Exact up to float32 saturation of `p` near 0 and 1 (clipped at 1e-7). The
    map is increasing, so it also commutes with a max over windows (exact for
    `export.aggregate = "max"`, approximate for "mean" over several windows).
    """
    s = np.asarray(scale, np.float64)
    return sigmoid((logit(probs) - np.asarray(bias, np.float64)) / s)


# --------------------------------------------------------------------------- #
# Fitting one map
# --------------------------------------------------------------------------- #
def affine_log_losses(logits: Any, targets: Any, scale: float, bias: float = 0.0) -> np.ndarray:
    """Per-row binary cross-entropy (nats) of `sigmoid(scale * logits + bias)`."""
    s = scale * np.asarray(logits, np.float64) + bias
    y = np.asarray(targets, np.float64)
    # -[y log sig(s) + (1-y) log(1 - sig(s))] = y softplus(-s) + (1-y) softplus(s)
    return y * np.logaddexp(0.0, -s) + (1.0 - y) * np.logaddexp(0.0, s)


def temperature_log_loss(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy (nats) of `sigmoid(logits / T)` against 0/1 targets."""
    return float(np.mean(affine_log_losses(logits, targets, 1.0 / temperature)))


def _checked(logits: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, np.float64).ravel()
    y = np.asarray(targets, np.float64).ravel()
    if z.shape != y.shape:
        raise CalibrationError(f"{z.size} logits but {y.size} targets")
    if z.size == 0:
        raise CalibrationError("no validation rows to fit a calibration on")
    if not np.all(np.isfinite(z)):
        raise CalibrationError("validation logits contain NaN or inf")
    if not np.all((y == 0) | (y == 1)):
        raise CalibrationError("validation targets must be 0 or 1")
    if y.min() == y.max():
        raise CalibrationError(
            f"all {y.size} validation targets are {int(y[0])}: a calibration needs both classes"
        )
    return z, y


def _check_range(temperature_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(t) for t in temperature_range)
    if not 0 < lo <= 1 <= hi:
        raise CalibrationError(
            f"temperature range {list(temperature_range)} must satisfy 0 < min <= 1 <= max"
        )
    return lo, hi


def fit_temperature(
    logits: Any,
    targets: Any,
    *,
    temperature_range: Sequence[float] = (MIN_TEMPERATURE, MAX_TEMPERATURE),
    prior_strength: float = 0.0,
) -> float:
    """The T in `temperature_range` minimising the log loss of sigmoid(z / T).

    Args:
        logits: `[N]` (or any shape; flattened) binary logits.
        targets: same shape, 0/1.
        temperature_range: `(min, max)` bounds of the search.
        prior_strength: weight, in clips, of a standard normal prior on log T
            (0: plain maximum likelihood). Its pull fades as N grows.

    Raises:
        CalibrationError: no rows, non-binary targets, NaN logits, or a single
            class (the optimum is then T -> 0 or infinity, not a calibration).
    """
    from scipy.optimize import minimize_scalar

    z, y = _checked(logits, targets)
    lo, hi = _check_range(temperature_range)
    penalty = prior_strength / (2.0 * z.size)

    def objective(log_t: float) -> float:
        return float(np.mean(affine_log_losses(z, y, np.exp(-log_t)))) + penalty * log_t**2

    result = minimize_scalar(
        objective, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-7}
    )
    return float(np.exp(result.x))


def fit_platt(
    logits: Any,
    targets: Any,
    *,
    temperature_range: Sequence[float] = (MIN_TEMPERATURE, MAX_TEMPERATURE),
    prior_strength: float = 0.0,
) -> tuple[float, float]:
    """Platt scaling: the `(scale, bias)` minimising the log loss of sigmoid(scale * z + bias).

    Args:
        logits, targets: as `fit_temperature`.
        temperature_range: bounds of `1 / scale` (the scale stays positive: the
            ranking of clips never flips); |bias| <= MAX_ABS_BIAS.
        prior_strength: weight, in clips, of a standard normal prior on
            log(scale) and on bias (0: plain maximum likelihood).

    Raises:
        CalibrationError: as `fit_temperature`.
    """
    from scipy.optimize import minimize

    z, y = _checked(logits, targets)
    lo, hi = _check_range(temperature_range)
    penalty = prior_strength / (2.0 * z.size)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_a, b = params
        a = np.exp(log_a)
        s = a * z + b
        loss = float(np.mean(y * np.logaddexp(0.0, -s) + (1.0 - y) * np.logaddexp(0.0, s)))
        residual = sigmoid(s) - y  # d loss / d s
        grad = np.array([np.mean(residual * z) * a, np.mean(residual)])
        return loss + penalty * (log_a**2 + b**2), grad + 2.0 * penalty * params

    result = minimize(
        objective,
        x0=np.zeros(2),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-np.log(hi), -np.log(lo)), (-MAX_ABS_BIAS, MAX_ABS_BIAS)],
        options={"ftol": 1e-13, "gtol": 1e-9},
    )
    return float(np.exp(result.x[0])), float(result.x[1])


def fit_method(
    method: str,
    logits: Any,
    targets: Any,
    *,
    temperature_range: Sequence[float] = (MIN_TEMPERATURE, MAX_TEMPERATURE),
    prior_strength: float = 0.0,
) -> tuple[float, float]:
    """`(scale, bias)` of `method` ("none", "temperature" or "platt") fitted on the rows."""
    if method == "none":
        return 1.0, 0.0
    if method == "temperature":
        t = fit_temperature(
            logits, targets, temperature_range=temperature_range, prior_strength=prior_strength
        )
        return 1.0 / t, 0.0
    if method == "platt":
        return fit_platt(
            logits, targets, temperature_range=temperature_range, prior_strength=prior_strength
        )
    raise CalibrationError(f"unknown calibration method {method!r} (one of {', '.join(METHODS)})")


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


# --------------------------------------------------------------------------- #
# Choosing the method out of fold
# --------------------------------------------------------------------------- #
def stratified_folds(y: Any, k: int, seed: int = 0) -> np.ndarray:
    """Fold index `[N]` in 0..k-1: each class shuffled and dealt round-robin over the folds."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    offset = 0
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)  # the next class continues where this one stopped: balanced sizes
    return fold


def cross_validate(
    logits: Any,
    targets: Any,
    clip_fold: np.ndarray,
    clip_of_row: np.ndarray | None = None,
    *,
    methods: Sequence[str] = METHODS,
    temperature_range: Sequence[float] = (MIN_TEMPERATURE, MAX_TEMPERATURE),
    prior_strength: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Out-of-fold scores of each method.

    Args:
        logits, targets: `[R]` rows.
        clip_fold: fold of each clip `[N]` (`stratified_folds`).
        clip_of_row: clip index of each row `[R]` (default: row i is clip i).
            Rows of one clip are always in the same fold and their losses add
            up (the shared fit of the softmax head has two rows per clip).

    Returns:
        `{method: {"log_loss", "brier", "ece", "per_clip": [N] log losses}}`,
        the log loss and Brier per row (mean), the ECE over all rows.
    """
    z = np.asarray(logits, np.float64).ravel()
    y = np.asarray(targets, np.float64).ravel()
    clip_of_row = np.arange(len(z)) if clip_of_row is None else np.asarray(clip_of_row)
    row_fold = np.asarray(clip_fold)[clip_of_row]
    out = {}
    for method in methods:
        probs = np.empty_like(z)
        for f in np.unique(row_fold):
            held = row_fold == f
            a, b = fit_method(
                method,
                z[~held],
                y[~held],
                temperature_range=temperature_range,
                prior_strength=prior_strength,
            )
            probs[held] = apply_affine(z[held], a, b)
        p = np.clip(probs, 1e-15, 1 - 1e-15)
        row_loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        out[method] = {
            "log_loss": float(row_loss.mean()),
            "brier": metrics.brier_score(y, probs),
            "ece": metrics.expected_calibration_error(y, probs),
            "per_clip": np.bincount(clip_of_row, weights=row_loss, minlength=len(clip_fold)),
        }
    return out


def choose_method(cv: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    """The method kept by the one-standard-error rule, and one sentence per comparison.

    Starting from `none`, each more complex method replaces the current choice
    only if its mean out-of-fold per-clip log loss is lower by more than
    SE_RULE standard errors of the paired differences.
    """
    chosen, notes = "none", []
    for method in (m for m in METHODS[1:] if m in cv):
        diff = cv[chosen]["per_clip"] - cv[method]["per_clip"]  # > 0: `method` is better
        gain = float(diff.mean())
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
        kept = gain > SE_RULE * se
        notes.append(
            f"{method} gains {gain:+.4f} ± {se:.4f} (1 SE) per clip over {chosen}: "
            f"{'kept' if kept else 'not kept'}"
        )
        if kept:
            chosen = method
    return chosen, notes


# --------------------------------------------------------------------------- #
# The export's calibration of both outputs
# --------------------------------------------------------------------------- #
@dataclasses.dataclass
class Fitted:
    """A calibration of every output: `p = sigmoid(scale * logit + bias)`.

    Attributes:
        scale, bias: `[C]`.
        details: per output, `{"method", "scale", "bias", "temperature", "reason", "cv"}`
            (`cv`: out-of-fold log loss, Brier and ECE per method, or None).
        warnings: what the guard did and why, one sentence each.
    """

    scale: np.ndarray
    bias: np.ndarray
    details: dict[str, dict[str, Any]]
    warnings: list[str]

    @property
    def methods(self) -> list[str]:
        return [d["method"] for d in self.details.values()]

    @property
    def temperatures(self) -> np.ndarray:
        """`1 / scale`: the temperatures when no output uses a bias."""
        return 1.0 / self.scale

    @staticmethod
    def identity(labels: Sequence[str] = metrics.LABEL_KEYS, reason: str = "") -> Fitted:
        details = {
            k: {
                "method": "none",
                "scale": 1.0,
                "bias": 0.0,
                "temperature": 1.0,
                "reason": reason,
                "cv": None,
            }
            for k in labels
        }
        return Fitted(np.ones(len(labels)), np.zeros(len(labels)), details, [])


def fit_calibration(
    logits: Any,
    targets: Any,
    *,
    method: str = "auto",
    shared: bool = False,
    min_clips: int = 100,
    folds: int = 5,
    temperature_range: Sequence[float] = (0.25, 4.0),
    prior_strength: float = 2.0,
    labels: Sequence[str] = metrics.LABEL_KEYS,
    seed: int = 0,
    clips: Any = None,
) -> Fitted:
    """Choose and fit the calibration of each output (see the module docstring).

    Args:
        logits, targets: `[R, C]` validation logits and 0/1 targets.
        clips: `[R]` the clip index (0..N-1) of each row, for several rows per clip
            (mixing passes); default: row i is clip i.
        method: "auto" (cross-validated choice), or "none" / "temperature" /
            "platt" (that method; its out-of-fold scores are still reported and
            a warning says when it is worse than none out of fold).
        shared: one map for both outputs (softmax head); real gets `(scale, -bias)`.
        min_clips: fewer validation clips keep `none` for every method, with a warning.
        folds: k of the k-fold cross-validation.
        temperature_range, prior_strength: as `fit_platt` (the defaults are
            `ExportConfig`'s). The shared fit has two rows per clip, so its
            prior weighs half as much per clip.
        labels: output names, for the details and warnings.
        seed: fold assignment.

    Raises:
        CalibrationError: malformed arrays or settings (never for data that are
            merely too few or one-class: those keep `none` with a warning).
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(targets, np.float64)
    if z.ndim != 2 or z.shape != y.shape or z.shape[1] != len(labels):
        raise CalibrationError(
            f"expected [N, {len(labels)}] logits and targets, got {z.shape} and {y.shape}"
        )
    if method not in CHOICES:
        raise CalibrationError(
            f"unknown calibration method {method!r} (one of {', '.join(CHOICES)})"
        )
    if folds < 2:
        raise CalibrationError(f"cross-validation needs at least 2 folds, got {folds}")
    _check_range(temperature_range)
    rows = len(z)
    if clips is None:
        clip_of = np.arange(rows)
    else:
        clip_of = np.asarray(clips)
        if clip_of.shape != (rows,) or not np.issubdtype(clip_of.dtype, np.integer):
            raise CalibrationError(
                f"clips must be [{rows}] integer clip indices, got {clip_of.shape}"
            )
        if rows and (clip_of.min() < 0 or np.bincount(clip_of).min() == 0):
            raise CalibrationError("clips must number the clips 0..N-1 with none missing")
    n = int(clip_of.max()) + 1 if rows else 0
    # a clip's class for stratifying the folds: its first row's target
    first_row = np.unique(clip_of, return_index=True)[1] if rows else np.zeros(0, np.int64)
    if method == "none":
        return Fitted.identity(labels, "export.calibration = none")
    if n < min_clips:
        fitted = Fitted.identity(labels, f"guard: {n} validation clips < {min_clips}")
        fitted.warnings.append(
            f"only {n} validation clips (export.calibration_min_clips = {min_clips}): too few to "
            f"fit a calibration that carries over to new data, so the raw probabilities are kept "
            f"(method none for {' and '.join(labels)}); give validation more clips (a larger "
            "prep.val_fraction) or lower export.calibration_min_clips"
        )
        return fitted

    # The groups of columns that get one map each: every column, or all together (shared).
    if shared:
        groups = [
            (
                list(labels),
                np.concatenate([z[:, 0], -z[:, 1]]),
                np.concatenate([y[:, 0], 1.0 - y[:, 1]]),
                y[first_row, 0],
                np.concatenate([clip_of, clip_of]),
            )
        ]
    else:
        groups = [([k], z[:, i], y[:, i], y[first_row, i], clip_of) for i, k in enumerate(labels)]

    fitted = Fitted.identity(labels)
    # The prior is worth `prior_strength` clips: as many pseudo-rows as a clip has rows.
    per_clip = rows / n if n else 1.0
    settings = dict(temperature_range=temperature_range, prior_strength=prior_strength * per_clip)
    for names, gz, gy, strat, clip_of_row in groups:
        name = " and ".join(names) + (" (shared)" if shared else "")
        counts = {int(c): int((strat == c).sum()) for c in (0, 1)}
        rare = min(counts, key=counts.get)
        if counts[rare] == 0 or gy.min() == gy.max():
            fitted.warnings.append(
                f"{name}: all {rows} validation targets are {1 - rare}: calibration needs both "
                "classes, so the raw probabilities are kept (method none)"
            )
            for k in names:
                fitted.details[k]["reason"] = "guard: a single class in validation"
            continue
        cv, notes = None, []
        if counts[rare] >= folds:
            clip_fold = stratified_folds(strat, folds, seed)
            cv = cross_validate(gz, gy, clip_fold, clip_of_row, **settings)
        if method == "auto":
            if cv is None:
                chosen = "none"
                reason = (
                    f"guard: {counts[rare]} validation clips of class {rare} < "
                    f"export.calibration_folds = {folds}: cannot cross-validate"
                )
                fitted.warnings.append(f"{name}: {reason}; the raw probabilities are kept")
            else:
                chosen, notes = choose_method(cv)
                reason = f"auto, {folds}-fold out-of-fold log loss: " + "; ".join(notes)
        else:
            chosen = method
            reason = f"export.calibration = {method}"
            if cv is None:
                fitted.warnings.append(
                    f"{name}: {counts[rare]} validation clips of class {rare} < "
                    f"export.calibration_folds = {folds}: {method} is fitted without an "
                    "out-of-fold check"
                )
            elif cv[method]["log_loss"] > cv["none"]["log_loss"]:
                fitted.warnings.append(
                    f"{name}: export.calibration = {method} is worse than none out of fold "
                    f"(log loss {cv[method]['log_loss']:.4f} vs {cv['none']['log_loss']:.4f}); "
                    "kept as configured"
                )
        a, b = fit_method(chosen, gz, gy, **settings)
        lo, hi = _check_range(temperature_range)
        t = 1.0 / a
        if chosen != "none" and t >= hi * (1 - 1e-3):
            fitted.warnings.append(
                f"{name}: T = {t:.3g} is at the upper bound of export.calibration_temperature_range: "
                "on the validation split the logits barely predict the targets (an untrained "
                "model or a tiny split); its probabilities are flattened towards the validation "
                "base rate"
            )
        elif chosen != "none" and t <= lo * (1 + 1e-3):
            fitted.warnings.append(
                f"{name}: T = {t:.3g} is at the lower bound of export.calibration_temperature_range: "
                "the validation split asks for sharper probabilities than the range allows"
            )
        cv_public = (
            None
            if cv is None
            else {"folds": folds}
            | {m: {k: v for k, v in s.items() if k != "per_clip"} for m, s in cv.items()}
        )
        for j, k in enumerate(names):
            i = list(labels).index(k)
            bias = -b if (shared and j == 1) else b
            fitted.scale[i], fitted.bias[i] = a, bias
            fitted.details[k] = {
                "method": chosen,
                "scale": a,
                "bias": bias,
                "temperature": t,
                "reason": reason,
                "cv": cv_public,
            }
    return fitted


# --------------------------------------------------------------------------- #
# Reports
# --------------------------------------------------------------------------- #
def calibration_report(
    logits: Any,
    targets: Any,
    temperatures: Any = None,
    labels: Sequence[str] = metrics.LABEL_KEYS,
    *,
    scale: Any = None,
    bias: Any = 0.0,
    methods: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Brier, ECE and log loss per output, before (identity) and after calibration.

    The map is `temperatures` (scale = 1 / T, no bias) or `scale` and `bias`.

    Returns:
        `{label: {"before": {"brier", "ece", "log_loss"}, "after": {...},
        "temperature": 1 / scale, "scale", "bias", "method"}}`.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(targets, np.float64)
    c = z.shape[1]
    if scale is None:
        scale = 1.0 / np.asarray(1.0 if temperatures is None else temperatures, np.float64)
    scales = np.broadcast_to(np.asarray(scale, np.float64), (c,))
    biases = np.broadcast_to(np.asarray(bias, np.float64), (c,))
    report: dict[str, Any] = {}
    for i, label in enumerate(labels):
        a, b = float(scales[i]), float(biases[i])
        row: dict[str, Any] = {"temperature": 1.0 / a, "scale": a, "bias": b}
        if methods is not None:
            row["method"] = methods[i]
        for name, (sa, sb) in (("before", (1.0, 0.0)), ("after", (a, b))):
            p = apply_affine(z[:, i], sa, sb)
            row[name] = {
                "brier": metrics.brier_score(y[:, i], p),
                "ece": metrics.expected_calibration_error(y[:, i], p),
                "log_loss": float(np.mean(affine_log_losses(z[:, i], y[:, i], sa, sb))),
            }
        report[label] = row
    return report


def format_report(report: dict[str, Any]) -> str:
    """A small table of `calibration_report`."""
    lines = [
        f"{'output':<8}{'method':>12}{'T':>8}{'bias':>8}  {'Brier':>15}  {'ECE':>15}  "
        f"{'log loss':>15}",
        f"{'':<36}  {'before -> after':>15}  {'before -> after':>15}  {'before -> after':>15}",
    ]
    for label, row in report.items():
        cells = [
            f"{row['before'][m]:.4f} -> {row['after'][m]:.4f}" for m in ("brier", "ece", "log_loss")
        ]
        lines.append(
            f"{label:<8}{row.get('method', ''):>12}{row['temperature']:>8.3f}"
            f"{row.get('bias', 0.0):>8.3f}  " + "  ".join(f"{c:>15}" for c in cells)
        )
    return "\n".join(lines)


def format_choice(details: dict[str, dict[str, Any]]) -> str:
    """`Fitted.details` as text: per output the method kept, its parameters and why, then the
    out-of-fold scores of each method when there are some."""
    lines = []
    for label, d in details.items():
        lines.append(
            f"{label}: {d['method']} (scale {d['scale']:.4f}, bias {d['bias']:+.4f}, "
            f"T {d['temperature']:.4f}) - {d['reason']}"
        )
        for m in METHODS:
            if d["cv"] is not None and m in d["cv"]:
                s = d["cv"][m]
                lines.append(
                    f"    out of fold {m:<12} log loss {s['log_loss']:.4f}  "
                    f"Brier {s['brier']:.4f}  ECE {s['ece']:.4f}"
                )
    return "\n".join(lines)
