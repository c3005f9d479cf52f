"""deepwave_tf.text.fit: the run directory, the resolved config, coverage, CLI errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deepwave_tf.text import fit
from deepwave_tf.text.config import text_config_from_dict

TEXT_SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "text_sample"


def test_run_dir_contents(text_run, text_tiny_cfg):
    run_dir, _ = text_run
    for name in ("config.json", "config.toml", "run.json", "history.csv", "model.keras"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / fit.BEST_WEIGHTS).is_file()
    assert list((run_dir / "tb" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "tb" / "config").glob("events.out.tfevents.*"))
    # The resolved config: embedding_dim taken from the .vec file's header.
    cfg = text_config_from_dict(json.loads((run_dir / "config.json").read_text()))
    assert cfg.model.embedding_dim == 16
    assert cfg.replace(model=text_tiny_cfg.model) == text_tiny_cfg
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for key in ("loss", "auc", "accuracy", "f1", "val_loss", "val_auc", "val_accuracy", "val_f1"):
        assert key in rows[0], key


def test_run_json(text_run):
    run_dir, _ = text_run
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_run"] == 2
    assert info["labels"] == ["book", "prompt"]
    split = info["split"]
    assert split["train"] + split["val"] == 120
    assert sum(split["val_per_class"]) == split["val"] and min(split["val_per_class"]) >= 1
    cov = info["coverage"]
    assert cov["dim"] == 16 and cov["file_rows"] == 403
    assert cov["found"] + cov["random"] == cov["vocabulary_words"] == info["vocabulary_size"] - 2
    assert 0 < cov["coverage"] < 1 and 0 < cov["train_token_coverage"] <= 1
    m = info["val_metrics"]
    assert m["n"] == split["val"] and m["tn"] + m["fp"] + m["fn"] + m["tp"] == m["n"]
    assert info["best_epoch"] in (1, 2)


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,kind\na,book\n", "bad.csv:1: no 'label' column"),
        ("text,label\na,book\n,prompt\n", "bad.csv:3: empty text"),
        ("text,label\na,book\nb,spam\n", "bad.csv:3: label 'spam' is not one of"),
    ],
)
def test_cli_bad_csv(tmp_path, capsys, content, message):
    data = tmp_path / "bad.csv"
    data.write_text(content)
    argv = ["--data", str(data), "--vectors", str(TEXT_SAMPLE_DIR / "vectors.vec")]
    code = fit.main([*argv, "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written before the checks


def test_cli_bad_vectors_and_config(tmp_path, capsys):
    vec = tmp_path / "bad.vec"
    vec.write_text("3 16\nthe " + " ".join(["0.1"] * 16) + "\n")
    data = ["--data", str(TEXT_SAMPLE_DIR / "test.csv"), "--run-dir", str(tmp_path / "run")]
    assert fit.main([*data, "--vectors", str(vec)]) == 2
    assert (
        "bad.vec:2: the file ends after 1 rows but the header's COUNT = 3"
        in capsys.readouterr().err
    )
    vectors = ["--vectors", str(TEXT_SAMPLE_DIR / "vectors.vec")]
    assert fit.main([*data, *vectors, "--set", "model.embedding_dim=300"]) == 2
    assert "the vectors have 16 dimensions but model.embedding_dim = 300" in capsys.readouterr().err
    assert fit.main([*data, *vectors, "--set", "model.units=3"]) == 2
    assert "unknown config key 'model.units'" in capsys.readouterr().err


def test_best_epoch_ties_go_to_the_first():
    hist = {"val_auc": [0.9, 0.95, float("nan"), 0.95], "val_loss": [0.5, 0.3, 0.3, 0.4]}
    assert fit._best_epoch(hist, "val_auc") == (2, 0.95)
    assert fit._best_epoch(hist, "val_loss") == (2, 0.3)
    assert fit._best_epoch({"val_auc": [float("nan")]}, "val_auc") == (None, None)
