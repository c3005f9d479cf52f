"""deepwave_tf.text.evaluate: exact metrics and the CLI on a trained run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf.text import evaluate

TEXT_SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "text_sample"


def test_compute_metrics_exact():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    m = evaluate.compute_metrics(y, p)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 1, 1, 2)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(5 / 6)  # 5 of the 6 (pos, neg) pairs ordered right
    assert math.isnan(evaluate.compute_metrics(np.ones(3), np.ones(3))["auc"])


def test_cli_on_csv_and_val_split(text_run, tmp_path, capsys):
    run_dir, _ = text_run
    out = tmp_path / "report.json"
    data = TEXT_SAMPLE_DIR / "test.csv"
    assert evaluate.main(["--run-dir", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    assert "test: n=138 (prompt: 69)" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["metrics"]["n"] == 138 and report["labels"] == ["book", "prompt"]
    assert evaluate.main(["--run-dir", str(run_dir), "--split", "val"]) == 0
    val = json.loads((run_dir / "evaluation-val.json").read_text())["metrics"]
    run_val = json.loads((run_dir / "run.json").read_text())["val_metrics"]
    assert val == pytest.approx(run_val)  # the same split and weights as fit's own numbers


def test_cli_errors(tmp_path, capsys):
    assert evaluate.main(["--run-dir", str(tmp_path), "--split", "val"]) == 2
    assert "not a text run directory" in capsys.readouterr().err
