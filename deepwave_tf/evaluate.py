"""Score the test clips against their labels: the challenge metric, breakdowns and plots.

    python -m deepwave_tf.evaluate --model EXPORT --data DIR --labels test_labels.csv --out DIR
                                   [--submission FILE] [--config FILE] [--set export.KEY=VALUE]

Predictions come from the export, through `submit`'s code (the same decode,
windows and batches as the submission), or from an existing `--submission`
(checked with `submit.check_submission` first; `--model` is then optional and
only read for its calibration). Scoring with `--model` takes
`export.window_hop_seconds` / `export.aggregate` (long clips) from `--set`,
the `[export]` section of `--config FILE`, or the export, in that order.

Writes to `--out`:
- `metrics.json`: `score` = 0.5 (1 - mean AUC) + 0.25 mean Brier + 0.25 mean ECE
  (lower is better) and its parts per column; `eer_fake_single_voice`: EER of
  the `fake` score on clips holding exactly one voice (meta.csv conditions
  `single_real` / `single_fake` when present, else fake + real == 1);
  `calibration` (when the export is known): per output the method the export
  kept (none / temperature / platt), its scale and bias, and the ECE and Brier
  `before` and `after` calibration on these test clips (the raw probabilities
  are recovered as `sigmoid((logit(p) - bias) / scale)`: exact for one window
  per clip or `aggregate = max`, approximate for `mean` over several windows);
  `uncalibrated`: the challenge metrics of those raw probabilities; `conditions`: per
  meta.csv `label` (single_real, single_fake, real+fake, fake+fake, real+real,
  noise, silence; without meta.csv the condition is derived from the targets)
  the mean fake / real probability and `accuracy` (acc@0.5 in the printed
  table: the share of clips whose fake and real are both on the right side of
  0.5), also per output; `source.export`: the window settings used; `generators`: per
  generator family of meta.csv, the fake detection rate at 0.5 and the AUC
  against single-real clips;
- `predictions.csv`: id, condition, targets and probabilities;
- `roc.png`, `reliability.png` (before and after calibration), `histograms.png`
  (score histograms by condition).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf import calibration, cli, metrics, submit
from deepwave_tf.metrics import LABEL_KEYS

META_CSV = "meta.csv"
SINGLE_VOICE = ("single_real", "single_fake")
# Display order of conditions: the challenge's (meta.csv), then the ones derived from targets.
CONDITION_ORDER = (
    "single_real",
    "single_fake",
    "real+fake",
    "fake+fake",
    "real+real",
    "noise",
    "silence",
    "real",
    "fake",
    "no voice",
)


ACC_NOTE = (
    "fake, real: mean probabilities per condition; acc@0.5: the share of clips whose fake "
    "and real are both on the right side of 0.5 (>= 0.5 exactly when that voice is present)"
)


class EvaluateError(ValueError):
    """Labels, predictions or metadata that cannot be evaluated together."""


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #
def read_labels(path: str | Path) -> dict[str, tuple[int, int]]:
    """`id -> (fake, real)` from a labels csv (`id,fake,real`, 0/1)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluateError(f"labels file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in submit.COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise EvaluateError(
                f"{path} has no {', '.join(missing)} column (expected id,fake,real)"
            )
        out = {}
        for line, row in enumerate(reader, start=2):
            try:
                values = tuple(int(float(row[k])) for k in LABEL_KEYS)
            except ValueError:
                raise EvaluateError(
                    f"{path} line {line}: labels must be 0 or 1, got {row}"
                ) from None
            if any(v not in (0, 1) for v in values):
                raise EvaluateError(f"{path} line {line}: labels must be 0 or 1, got {row}")
            out[row["id"].strip()] = values
    return out


def read_submission(path: str | Path, data_dir: str | Path) -> dict[str, tuple[float, float]]:
    """`id -> (fake, real)` of a submission that passes `submit.check_submission`."""
    problems = submit.check_submission(path, data_dir)
    if problems:
        raise EvaluateError(
            f"submission {path} is invalid ({cli.plural(len(problems), 'problem')}):\n  "
            + "\n  ".join(problems)
        )
    with open(path, newline="", encoding="utf-8-sig") as f:
        return {r["id"].strip(): (float(r["fake"]), float(r["real"])) for r in csv.DictReader(f)}


def read_meta(data_dir: Path, ids: Sequence[str]) -> dict[str, dict[str, str]] | None:
    """meta.csv rows of `ids` (None if there is no meta.csv)."""
    path = data_dir / META_CSV
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = {r["id"].strip(): r for r in csv.DictReader(f)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise EvaluateError(
            f"{path} has no row for {len(missing)} test ids, e.g. {', '.join(missing[:5])}"
        )
    return {i: rows[i] for i in ids}


def derived_condition(fake: int, real: int) -> str:
    """Condition of a clip from its targets alone (when there is no meta.csv)."""
    return {(1, 0): "fake", (0, 1): "real", (1, 1): "real+fake", (0, 0): "no voice"}[(fake, real)]


def clip_conditions(
    meta: dict[str, dict[str, str]] | None, ids: Sequence[str], y: np.ndarray
) -> np.ndarray:
    """Each clip's condition: its meta.csv `label` (`read_meta`), or without meta.csv
    (`meta` None) the one its `[N, 2]` targets imply (`derived_condition`)."""
    if meta is not None:
        return np.array([meta[i].get("label") or "unknown" for i in ids])
    return np.array([derived_condition(int(a), int(b)) for a, b in y])


def export_calibration(metadata: dict[str, Any]) -> dict[str, Any]:
    """`{"scale": [2], "bias": [2], "methods": [2]}` of an export's metadata.

    Exports made before Platt scaling record only `temperatures` (scale = 1 / T, no bias).
    """
    calib = metadata.get("calibration") or {}
    if "scale" in calib and "bias" in calib:
        scale = [float(a) for a in calib["scale"]]
        bias = [float(b) for b in calib["bias"]]
        outputs = calib.get("outputs") or {}
        methods = [outputs.get(k, {}).get("method", "?") for k in LABEL_KEYS]
    else:
        temps = [float(t) for t in metadata["temperatures"]]
        scale, bias = [1.0 / t for t in temps], [0.0] * len(temps)
        methods = ["none" if t == 1.0 else "temperature" for t in temps]
    return {"scale": scale, "bias": bias, "methods": methods}


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #
def ordered_conditions(conditions: np.ndarray) -> list[str]:
    """The distinct conditions, in `CONDITION_ORDER` (unknown ones after, sorted)."""
    present = set(conditions.tolist())
    return [c for c in CONDITION_ORDER if c in present] + sorted(present - set(CONDITION_ORDER))


def condition_breakdown(conditions: np.ndarray, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Per condition: n, mean probabilities, accuracy at 0.5 (both outputs right) and per output."""
    out = {}
    for cond in ordered_conditions(conditions):
        m = conditions == cond
        correct = (p[m] >= 0.5) == (y[m] == 1)
        row = {"n": int(m.sum())}
        for i, k in enumerate(LABEL_KEYS):
            row[f"mean_{k}"] = float(p[m, i].mean())
            row[f"target_{k}"] = float(y[m, i].mean())
            row[f"accuracy_{k}"] = float(correct[:, i].mean())
        row["accuracy"] = float(correct.all(axis=1).mean())
        out[cond] = row
    return out


def generator_breakdown(
    meta: dict[str, dict[str, str]], ids: Sequence[str], y: np.ndarray, p: np.ndarray
) -> dict[str, Any]:
    """Per generator family (meta.csv `generator`, split on '+'): fake detection and AUC vs single-real."""
    gens = [{g for g in (meta[i].get("generator") or "").split("+") if g and g != "-"} for i in ids]
    labels = np.array([meta[i].get("label", "") for i in ids])
    single_real = labels == "single_real"
    out = {}
    for g in sorted(set().union(*gens)):
        m = np.array([g in s for s in gens]) & (y[:, 0] == 1)
        if not m.any():
            continue
        row = {
            "n": int(m.sum()),
            "mean_fake": float(p[m, 0].mean()),
            "detected_at_0.5": float((p[m, 0] >= 0.5).mean()),
        }
        if single_real.any():
            both = m | single_real
            row["auc_vs_single_real"] = metrics.roc_auc(m[both].astype(int), p[both, 0])
        out[g] = row
    return out


def compute_metrics(
    ids: Sequence[str],
    y: np.ndarray,
    p: np.ndarray,
    conditions: np.ndarray,
    meta: dict[str, dict[str, str]] | None,
    calib: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything in metrics.json (see the module docstring).

    `calib`: the export's calibration (`export_calibration`), or None when unknown.
    """
    out = metrics.challenge_score(y, p)
    if meta is not None:
        single = np.isin(conditions, SINGLE_VOICE)
        single_rule = "meta.csv label in " + ", ".join(SINGLE_VOICE)
    else:
        single = y.sum(axis=1) == 1
        single_rule = "fake + real == 1"
    try:
        eer, thr = metrics.eer_with_threshold(y[single, 0], p[single, 0])
        out["eer_fake_single_voice"] = eer
        out["eer_threshold"] = thr
    except metrics.MetricError as e:
        out["eer_fake_single_voice"] = None
        out["eer_note"] = str(e)
    out["single_voice_clips"] = {"n": int(single.sum()), "rule": single_rule}
    if calib is not None:
        raw = calibration.uncalibrate_affine(p, calib["scale"], calib["bias"])
        uncal = metrics.challenge_score(y, raw)
        out["temperatures"] = dict(zip(LABEL_KEYS, (1.0 / a for a in calib["scale"])))
        out["uncalibrated"] = {
            k: uncal[k]
            for k in ("score", "mean_auc", "mean_brier", "mean_ece", "auc", "brier", "ece")
        }
        out["calibration"] = {
            "methods": dict(zip(LABEL_KEYS, calib["methods"])),
            "scale": dict(zip(LABEL_KEYS, calib["scale"])),
            "bias": dict(zip(LABEL_KEYS, calib["bias"])),
            "ece": {"before": uncal["ece"], "after": out["ece"]},
            "brier": {"before": uncal["brier"], "after": out["brier"]},
            "mean_ece": {"before": uncal["mean_ece"], "after": out["mean_ece"]},
            "mean_brier": {"before": uncal["mean_brier"], "after": out["mean_brier"]},
        }
    out["conditions"] = condition_breakdown(conditions, y, p)
    if meta is not None:
        out["generators"] = generator_breakdown(meta, ids, y, p)
    return out


# --------------------------------------------------------------------------- #
# Plots
# --------------------------------------------------------------------------- #
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(
    path: Path, y: np.ndarray, p: np.ndarray, single: np.ndarray, result: dict[str, Any]
) -> list[str]:
    """ROC curves per output, the single-voice `fake` curve with its EER point.

    Returns:
        The legend's labels, in order (every line and marker has one).
    """
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, k in enumerate(LABEL_KEYS):
        fpr, tpr, _ = roc_curve(y[:, i], p[:, i])
        ax.plot(fpr, tpr, label=f"{k} (all clips): AUC {result['auc'][k]:.3f}")
    eer = result.get("eer_fake_single_voice")
    if eer is not None:
        fpr, tpr, _ = roc_curve(y[single, 0], p[single, 0])
        ax.plot(fpr, tpr, "--", label=f"fake, single-voice clips: EER {eer:.3f}")
        ax.plot([eer], [1 - eer], "ko", ms=5, label="EER point (false positive = miss rate)")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance (AUC 0.5)")
    ax.plot(
        [0, 1],
        [1, 0],
        ":",
        color="lightgrey",
        lw=1,
        label="equal error line (EER points lie on it)",
    )
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=f"ROC per output ({len(y)} test clips)",
    )
    legend = ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [t.get_text() for t in legend.get_texts()]


def plot_reliability(
    path: Path, y: np.ndarray, p: np.ndarray, calib: dict[str, Any] | None
) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(
        2, 2, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    width = 0.1
    for i, k in enumerate(LABEL_KEYS):
        ax, hist = axes[0, i], axes[1, i]
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="perfect calibration")
        series = []
        if calib is not None:
            a, b = calib["scale"][i], calib["bias"][i]
            raw = calibration.uncalibrate_affine(p[:, i], a, b)
            series.append(("before (raw)", raw, "tab:orange"))
            series.append(
                (
                    f"after ({calib['methods'][i]}: T = {1 / a:.2f}, bias {b:+.2f})",
                    p[:, i],
                    "tab:blue",
                )
            )
        else:
            series.append(("as submitted", p[:, i], "tab:blue"))
        for j, (name, probs, color) in enumerate(series):
            b = metrics.reliability_bins(y[:, i], probs)
            filled = b["count"] > 0
            ece = metrics.expected_calibration_error(y[:, i], probs)
            ax.plot(
                b["mean_prob"][filled],
                b["frac_pos"][filled],
                "o-",
                color=color,
                label=f"{name}: ECE {ece:.3f}",
            )
            centers = b["edges"][:-1] + width / 2
            offset = (j - (len(series) - 1) / 2) * width / len(series)
            hist.bar(
                centers + offset, b["count"], width=width / len(series), color=color, alpha=0.8
            )
        ax.set(
            xlim=(0, 1),
            ylim=(-0.02, 1.02),
            ylabel="fraction of positives",
            title=f"{k}: reliability (10 bins)",
        )
        ax.legend(loc="upper left", fontsize=8)
        hist.set(xlabel=f"predicted probability ({k})", ylabel="clips per bin")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_histograms(path: Path, y: np.ndarray, p: np.ndarray, conditions: np.ndarray) -> None:
    """One panel per output; per condition a row of histogram bars (a ridgeline), so a
    glance shows which conditions get high and low scores. Red rows should score high
    (target 1), green rows low (target 0), grey rows are mixed."""
    plt = _pyplot()
    conds = ordered_conditions(conditions)[::-1]  # rows are drawn bottom-up: the first on top
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.55 * len(conds) + 1.6), sharey=True)
    edges = np.linspace(0, 1, 21)
    width = edges[1] - edges[0]
    for i, k in enumerate(LABEL_KEYS):
        ax = axes[i]
        for r, cond in enumerate(conds):
            m = conditions == cond
            counts, _ = np.histogram(p[m, i], bins=edges)
            target = y[m, i].mean()
            color = "tab:red" if target == 1 else "tab:green" if target == 0 else "tab:grey"
            ax.bar(
                edges[:-1],
                0.85 * counts / max(counts.max(), 1),
                width=width,
                bottom=r,
                align="edge",
                color=color,
                alpha=0.85,
                edgecolor="white",
                linewidth=0.5,
            )
            ax.axhline(r, color="lightgrey", lw=0.5)
        ax.axvline(0.5, color="black", ls=":", lw=1)
        ax.set(xlim=(0, 1), xlabel=f"{k} probability", title=f"{k}: red should be high, green low")
    axes[0].set_yticks(np.arange(len(conds)) + 0.4)
    axes[0].set_yticklabels([f"{c} (n={int((conditions == c).sum())})" for c in conds])
    axes[0].set_ylim(-0.1, len(conds))
    fig.suptitle("score histograms by condition (bar height relative within each row)", fontsize=10)
    fig.subplots_adjust(left=0.17, right=0.98, top=0.86, bottom=0.12 + 0.2 / len(conds), wspace=0.1)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- #
# run
# --------------------------------------------------------------------------- #
def run(
    data_dir: str | Path,
    labels: str | Path,
    out_dir: str | Path,
    *,
    model: str | Path | None = None,
    submission: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    plots: bool = True,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate predictions of `data_dir`'s test clips against `labels`; see the module docstring.

    `plots=False` skips the PNGs (matplotlib takes seconds per figure).
    `config` ([export] section) and `overrides` (`export.KEY=VALUE`) change
    how `model` scores long clips, on top of the export's own config; the
    settings used are recorded under `export` in metrics.json.

    Returns:
        The metrics written to `out_dir/metrics.json`.

    Raises:
        EvaluateError: neither model nor submission, unreadable clips,
            an invalid submission, ids without labels, a single-class column.
    """
    from deepwave_tf import serving

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    truth = read_labels(labels)
    calib = None
    if submission is not None:
        preds = read_submission(submission, data_dir)
        ids = [i for i, _ in submit.read_test_csv(data_dir)]
        source = {"submission": str(Path(submission).resolve())}
        if model is not None:
            export_dir = serving.resolve_export_dir(model)
            calib = export_calibration(serving.read_metadata(export_dir))
            source["model"] = str(export_dir.resolve())
    elif model is not None:
        ids, scores, loaded = submit.score_test_set(
            model,
            data_dir,
            batch_size=batch_size,
            progress=progress,
            config=config,
            overrides=overrides,
        )
        export_cfg = submit.resolve_export_config(loaded, config, overrides)
        bad = [f"{i} ({s.path}): {s.error}" for i, s in zip(ids, scores) if not s.ok]
        if bad:
            raise EvaluateError(f"{len(bad)} test clips could not be read:\n  " + "\n  ".join(bad))
        preds = {i: (s.fake, s.real) for i, s in zip(ids, scores)}
        calib = export_calibration(loaded.metadata)
        source = {
            "model": str(loaded.path.resolve()),
            "export": {
                "window_hop_seconds": export_cfg.window_hop_seconds,
                "aggregate": export_cfg.aggregate,
            },
        }
    else:
        raise EvaluateError("give --model EXPORT (to score the test clips) or --submission FILE")

    unlabelled = [i for i in ids if i not in truth]
    if unlabelled:
        raise EvaluateError(
            f"{len(unlabelled)} test ids have no row in {labels}, e.g. {', '.join(unlabelled[:5])}"
        )
    y = np.array([truth[i] for i in ids], np.float64)
    p = np.array([preds[i] for i in ids], np.float64)
    meta = read_meta(data_dir, ids)
    conditions = clip_conditions(meta, ids, y)
    try:
        result = compute_metrics(ids, y, p, conditions, meta, calib)
    except metrics.MetricError as e:
        raise EvaluateError(f"cannot score these test clips: {e}") from e
    result["source"] = source
    result["labels"] = str(Path(labels).resolve())
    result["condition_source"] = META_CSV if meta is not None else "targets (no meta.csv)"

    out_dir.mkdir(parents=True, exist_ok=True)
    result["plots"] = {}
    if plots:
        single = np.isin(conditions, SINGLE_VOICE) if meta is not None else y.sum(axis=1) == 1
        files = {
            "roc": out_dir / "roc.png",
            "reliability": out_dir / "reliability.png",
            "histograms": out_dir / "histograms.png",
        }
        plot_roc(files["roc"], y, p, single, result)
        plot_reliability(files["reliability"], y, p, calib)
        plot_histograms(files["histograms"], y, p, conditions)
        result["plots"] = {k: str(v) for k, v in files.items()}
    with open(out_dir / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "condition", "fake_true", "real_true", "fake", "real"])
        for i, c, t, q in zip(ids, conditions, y, p):
            w.writerow([i, c, int(t[0]), int(t[1]), repr(float(q[0])), repr(float(q[1]))])
    (out_dir / "metrics.json").write_text(json.dumps(_finite(result), indent=2) + "\n")
    return result


def _finite(obj: Any) -> Any:
    """JSON has no NaN: write None instead."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def format_summary(result: dict[str, Any]) -> str:
    lines = [
        f"challenge score {result['score']:.4f} (lower is better) on {result['n']} clips: "
        f"mean AUC {result['mean_auc']:.4f}, mean Brier {result['mean_brier']:.4f}, "
        f"mean ECE {result['mean_ece']:.4f}",
    ]
    for k in LABEL_KEYS:
        lines.append(
            f"  {k:<5} AUC {result['auc'][k]:.4f}  Brier {result['brier'][k]:.4f}  ECE {result['ece'][k]:.4f}"
        )
    if result.get("eer_fake_single_voice") is not None:
        lines.append(
            f"  EER of fake on {result['single_voice_clips']['n']} single-voice clips: "
            f"{result['eer_fake_single_voice']:.4f}"
        )
    if "calibration" in result:
        c = result["calibration"]
        lines.append(
            f"  calibration ({', '.join(f'{k} {m}' for k, m in c['methods'].items())}), "
            "before -> after on these clips:"
        )
        for k in LABEL_KEYS:
            lines.append(
                f"  {k:<5} ECE {c['ece']['before'][k]:.4f} -> {c['ece']['after'][k]:.4f}  "
                f"Brier {c['brier']['before'][k]:.4f} -> {c['brier']['after'][k]:.4f}"
            )
        lines.append(
            f"  mean  ECE {c['mean_ece']['before']:.4f} -> {c['mean_ece']['after']:.4f}  "
            f"Brier {c['mean_brier']['before']:.4f} -> {c['mean_brier']['after']:.4f}  "
            f"score {result['uncalibrated']['score']:.4f} -> {result['score']:.4f}"
        )
    lines.append(f"  {'condition':<12}{'n':>4}{'fake':>8}{'real':>8}{'acc@0.5':>9}")
    for cond, row in result["conditions"].items():
        lines.append(
            f"  {cond:<12}{row['n']:>4}{row['mean_fake']:>8.3f}{row['mean_real']:>8.3f}{row['accuracy']:>9.3f}"
        )
    lines.append(f"  {ACC_NOTE}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.evaluate",
        description="Challenge score, breakdowns and plots of an export or a submission on labelled test clips.",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="export directory (or run dir: newest export)"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="directory with test.csv (and meta.csv)"
    )
    parser.add_argument("--labels", type=Path, required=True, help="labels csv: id,fake,real")
    parser.add_argument(
        "--out", type=Path, required=True, help="output directory for metrics.json and plots"
    )
    parser.add_argument(
        "--submission", type=Path, default=None, help="evaluate this submission instead of scoring"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    cli.add_config_arguments(parser, sections=("export",), default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.submission is not None and cli.config_given(args):
        parser.error(
            "--config/--set change how --model scores clips; --submission is scored already"
        )
    cli.quiet_tensorflow()
    from deepwave_tf.config import ConfigError, load_config
    from deepwave_tf.serving import ExportError

    try:
        # Check --config/--set now (on the defaults): a typo should not wait for the model.
        load_config(args.config, args.overrides, sections=("export",), context=submit.CONTEXT)
        result = run(
            args.data,
            args.labels,
            args.out,
            model=args.model,
            submission=args.submission,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            plots=not args.no_plots,
            config=args.config,
            overrides=args.overrides,
        )
    except (EvaluateError, submit.SubmitError, ExportError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(result))
    plots = ", ".join(Path(v).name for v in result["plots"].values()) or "none"
    print(f"wrote {args.out / 'metrics.json'}, predictions.csv; plots: {plots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
