"""Score a trained text run on a labelled csv: `python -m deepwave_tf.text.evaluate`.

    python -m deepwave_tf.text.evaluate --run-dir runs/text --data test.csv [--out report.json]
    python -m deepwave_tf.text.evaluate --run-dir runs/text --split val

`--data` scores every row of a `text,label` csv (columns and label names from
the run's config); `--split val` rebuilds the run's validation split from the
csv named in `run.json` (same seed, same split as during fit). The model is the
run's `model.keras` (best weights). Metrics at threshold 0.5 on p(labels[1]):
accuracy, F1, precision, recall, the confusion counts, and the ROC AUC
(threshold-free). The report goes to `--out` (default
`RUN_DIR/evaluation-NAME.json`) and a summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf.config import ConfigError
from deepwave_tf.text.config import TextConfig, text_config_from_dict
from deepwave_tf.text.data import TextDataError, TextExamples

RUN_JSON = "run.json"
CONFIG_JSON = "config.json"


class RunError(ValueError):
    """A run directory that lacks what the command needs."""


def compute_metrics(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Binary metrics of `probabilities` `[N]` against 0/1 `targets` `[N]`.

    Returns:
        n, positives, accuracy, f1, precision, recall, auc (NaN when one class
        is absent), tn/fp/fn/tp at threshold 0.5.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(targets).astype(int).reshape(-1)
    p = np.asarray(probabilities, np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"targets {y.shape} and probabilities {p.shape} differ in shape")
    pred = (p >= 0.5).astype(int)
    tp = int(np.sum((pred == 1) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan
    return {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "accuracy": float((tp + tn) / len(y)) if len(y) else math.nan,
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "auc": auc,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
    }


def load_run_config(run_dir: str | Path) -> TextConfig:
    """The resolved config `text.fit` wrote into `run_dir`."""
    path = Path(run_dir) / CONFIG_JSON
    if not path.is_file():
        raise RunError(
            f"{run_dir} is not a text run directory: no {CONFIG_JSON} "
            "(train with python -m deepwave_tf.text.fit)"
        )
    return text_config_from_dict(json.loads(path.read_text()), source=str(path))


def read_run_json(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise RunError(f"no {RUN_JSON} in {run_dir}")
    return json.loads(path.read_text())


def validation_examples(run_dir: str | Path, cfg: TextConfig) -> TextExamples:
    """The run's validation split, rebuilt from the csv in `run.json` with the run's seed."""
    from deepwave_tf.text import data

    csv_path = read_run_json(run_dir).get("data")
    if not csv_path:
        raise RunError(f"{Path(run_dir) / RUN_JSON} names no training csv")
    return data.split(data.read_csv(csv_path, cfg.data), cfg.data)[1]


def format_summary(name: str, m: dict[str, Any], labels: Sequence[str]) -> str:
    return (
        f"{name}: n={m['n']} ({labels[1]}: {m['positives']})  accuracy {m['accuracy']:.4f}  "
        f"F1 {m['f1']:.4f}  AUC {m['auc']:.4f}  "
        f"[tn {m['tn']} fp {m['fp']} fn {m['fn']} tp {m['tp']}]"
    )


def run(
    run_dir: str | Path,
    *,
    data_csv: str | Path | None = None,
    split: str | None = None,
    out: str | Path | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Evaluate `run_dir/model.keras` on `data_csv`, or on the run's `split` ("val").

    Returns:
        The report: {"run_dir", "data", "labels", "metrics": compute_metrics(...)}.

    Raises:
        RunError: not a run directory, or neither/both of data_csv and split.
        TextDataError: an unusable csv (named with the line).
    """
    from deepwave_tf.text import data
    from deepwave_tf.text import model as model_lib

    run_dir = Path(run_dir)
    if (data_csv is None) == (split is None):
        raise RunError("give exactly one of --data CSV or --split val")
    cfg = load_run_config(run_dir)
    if split is not None:
        if split != "val":
            raise RunError(f"--split {split!r}: only 'val' is known")
        examples = validation_examples(run_dir, cfg)
        name = "val"
    else:
        examples = data.read_csv(data_csv, cfg.data)
        name = Path(data_csv).stem
    try:
        model = model_lib.load_model(run_dir)
    except FileNotFoundError as e:
        raise RunError(str(e)) from None
    logits = model_lib.predict_logits(model, examples.texts, cfg.data.batch_size)
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    metrics = compute_metrics(examples.targets, probs)
    report = {
        "run_dir": str(run_dir.resolve()),
        "data": str(Path(examples.source).resolve()),
        "split": split,
        "labels": list(cfg.data.labels),
        "metrics": metrics,
    }
    from deepwave_tf.records import write_json_atomic

    out = Path(out) if out is not None else run_dir / f"evaluation-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, _finite(report))
    if verbose:
        print(format_summary(name, metrics, cfg.data.labels))
        print(f"report: {out}")
    return report


def _finite(obj: Any) -> Any:
    """NaN -> None, so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.text.evaluate",
        description="Accuracy, F1 and AUC of a trained text run on a labelled csv.",
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="run dir of text.fit")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="labelled csv (text,label)")
    source.add_argument("--split", choices=("val",), help="the run's validation split")
    parser.add_argument(
        "--out", type=Path, default=None, help="report (default RUN_DIR/evaluation-NAME.json)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args.run_dir, data_csv=args.data, split=args.split, out=args.out)
    except (ConfigError, RunError, TextDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
