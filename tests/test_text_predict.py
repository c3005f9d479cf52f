"""deepwave_tf.text.predict: texts from argv, files and csvs scored by the export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from deepwave_tf.text import predict

TEXT_SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "text_sample"


def test_cli_argv_file_csv(text_run, tmp_path, capsys):
    run_dir, export_dir = text_run
    lines = tmp_path / "texts.txt"
    lines.write_text("Thank you for calling.\nThe old man rowed out to sea.\n")
    out = tmp_path / "preds.csv"
    argv = ["--model", str(run_dir), "Press one for sales.", "--file", str(lines)]
    argv += ["--csv", str(TEXT_SAMPLE_DIR / "test.csv"), "--out", str(out)]
    assert predict.main(argv) == 0
    printed = capsys.readouterr().out
    assert "probability  label" in printed and "Press one for sales." in printed
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 + 2 + 138
    assert [r["source"] for r in rows[:4]] == [
        "argv:1",
        f"{lines}:1",
        f"{lines}:2",
        f"{TEXT_SAMPLE_DIR / 'test.csv'}:2",
    ]
    p = np.array([float(r["probability"]) for r in rows])
    assert np.all((p >= 0) & (p <= 1))
    assert all(r["label"] == ("prompt" if float(r["probability"]) >= 0.5 else "book") for r in rows)
    # The same numbers through run() on the export directory itself.
    again = predict.run(export_dir, [("x", rows[0]["text"])])
    assert abs(again[0].probability - p[0]) < 1e-6


def test_cli_errors(text_run, tmp_path, capsys):
    run_dir, _ = text_run
    blank = tmp_path / "blank.txt"
    blank.write_text("one text\n\nanother\n")
    assert predict.main(["--model", str(run_dir), "--file", str(blank)]) == 2
    assert "blank.txt:2: empty line" in capsys.readouterr().err
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("sentence\nhello\n")
    assert predict.main(["--model", str(run_dir), "--csv", str(nocol)]) == 2
    assert "nocol.csv:1: no 'text' column" in capsys.readouterr().err
    assert predict.main(["--model", str(tmp_path), "hello"]) == 2
    assert "neither a text export" in capsys.readouterr().err
    assert predict.main(["--model", str(run_dir)]) == 2
    assert "give texts, --file or --csv" in capsys.readouterr().err
