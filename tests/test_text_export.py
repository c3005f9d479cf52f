"""deepwave_tf.text.export: SavedModel on raw strings, parity after reloading, bare TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepwave_tf.export import ExportParityError
from deepwave_tf.text import export
from deepwave_tf.text import model as model_lib

FRESH_PROCESS = """
import json, sys
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
meta = json.loads(m.signatures["metadata"]()["json"].numpy())
mods = sorted(k for k in sys.modules if k.split(".")[0] in ("keras", "deepwave_tf"))
print(json.dumps({"p": out["probability"].numpy().tolist(), "labels": meta["labels"], "modules": mods}))
"""
TEXTS = ["Please enter your password followed by the pound key.", "He was a tall old man.", ""]


def test_export_files_and_parity(text_run):
    run_dir, export_dir = text_run
    assert export_dir.parent == run_dir / "export"
    assert (export_dir / "saved_model.pb").is_file()
    parity = json.loads((export_dir / "parity.json").read_text())
    assert parity["max_abs_diff"] <= parity["atol"] == 1e-5
    assert len(parity["texts"]) == export.PARITY_TEXTS + len(export.EDGE_TEXTS)
    assert export.latest_export(run_dir) == export_dir


def test_signature_and_metadata(text_run):
    import tensorflow as tf

    run_dir, export_dir = text_run
    loaded = tf.saved_model.load(str(export_dir))
    serve = loaded.signatures["serving_default"]
    (_, spec) = serve.structured_input_signature
    assert spec["text"].shape.as_list() == [None] and spec["text"].dtype == tf.string
    out = serve(text=tf.constant(TEXTS))
    assert list(out) == ["probability"] and out["probability"].shape == (3,)
    model = model_lib.load_model(run_dir)
    want = 1 / (1 + np.exp(-model_lib.predict_logits(model, TEXTS)))
    np.testing.assert_allclose(out["probability"].numpy(), want, atol=1e-5)
    meta = json.loads(loaded.signatures["metadata"]()["json"].numpy())
    assert meta["format"] == export.FORMAT and meta["labels"] == ["book", "prompt"]
    assert meta["vocabulary_size"] == len(model_lib.vocabulary_of(model))
    assert meta["config"]["model"]["embedding_dim"] == 16


def test_loads_in_bare_tensorflow(text_run, tmp_path, bare_tensorflow):
    """A fresh process where keras and deepwave_tf cannot be imported serves the export."""
    import tensorflow as tf

    _, export_dir = text_run
    got = bare_tensorflow(
        FRESH_PROCESS, export_dir, json.dumps(TEXTS), cwd=tmp_path, blocked=("keras", "deepwave_tf")
    )
    assert got["modules"] == [] and got["labels"] == ["book", "prompt"]
    here = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    np.testing.assert_allclose(got["p"], here(text=tf.constant(TEXTS))["probability"], atol=1e-6)


def test_parity_failure_is_reported(text_run):
    run_dir, export_dir = text_run
    model = model_lib.load_model(run_dir)
    with pytest.raises(ExportParityError, match=r"differs from the in-memory model on upper case"):
        export.check_parity(export_dir, model, [("upper case", "PRESS ONE")], {}, atol=-1.0)
    with pytest.raises(ExportParityError, match="metadata read back"):
        export.check_parity(export_dir, model, [("x", "press one")], {"labels": []}, atol=1.0)


def test_cli_errors(tmp_path, capsys):
    assert export.main(["--run-dir", str(tmp_path)]) == 2
    assert "not a text run directory: no config.json" in capsys.readouterr().err
