"""Export a trained text run as a SavedModel on raw strings: `python -m deepwave_tf.text.export`.

    python -m deepwave_tf.text.export --run-dir runs/text [--out DIR]

writes `runs/text/export/TIMESTAMP/` (UTC) with `keras.export.ExportArchive`.
Signatures (core TensorFlow ops only: `tf.saved_model.load` in a process
without keras or deepwave_tf serves it):

- `serving_default(text: string [batch])` -> `{"probability": float32 [batch]}`,
  the probability of `labels[1]` (`sigmoid(logit)`). The vectorizer and its
  vocabulary are inside the graph: texts go in as they are, any length
  (tokens past `model.sequence_length_tokens` are cut).
- `metadata()` -> `{"json": string}`: labels, resolved config, vocabulary size,
  vector coverage, validation metrics, versions.

Before the export gets its final name it is reloaded with `tf.saved_model.load`
and compared with the in-memory model on validation texts of the run's csv and
on edge cases (empty, punctuation only, non-ASCII, unknown words, longer than
the sequence length); a difference above `export.parity_atol` raises
`ExportParityError` and leaves the export under `export/.TIMESTAMP.failed/`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf.config import ConfigError
from deepwave_tf.export import ExportParityError, _versions, export_dirs, publish_export, timestamp
from deepwave_tf.serving import ExportError
from deepwave_tf.text.data import TextDataError
from deepwave_tf.text.evaluate import RunError, load_run_config, read_run_json

FORMAT = "deepwave_tf-text-export-1"
TEXT = "text"
PROBABILITY = "probability"
PARITY_TEXTS = 16  # validation texts checked after reloading
EDGE_TEXTS = (
    ("empty string", ""),
    ("spaces only", "   "),
    ("punctuation only", "?!... --"),
    ("non-ASCII", "Ça coûte 5 € : naïve café, 電話 ☎"),
    ("unknown words", "zyxwv qqqq blorfed"),
    ("upper case", "PLEASE ENTER YOUR PASSWORD, THEN PRESS POUND."),
    ("longer than the sequence length", " ".join(["press one for sales"] * 60)),
)


def build_archive(model, metadata_json: str):
    """An `ExportArchive` with `serving_default` (strings -> probability) and `metadata`."""
    import keras
    import tensorflow as tf

    meta = tf.constant(metadata_json)

    def serve(text):
        logit = model(text, training=False)  # [batch, 1]
        return {PROBABILITY: tf.sigmoid(logit[:, 0])}

    def metadata():
        return {"json": meta}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, [tf.TensorSpec([None], tf.string, name=TEXT)])
    archive.add_endpoint("metadata", metadata, [])
    return archive


def parity_texts(run_dir: Path) -> list[tuple[str, str]]:
    """`(name, text)` pairs for the reload check: validation texts, then the edge cases."""
    from deepwave_tf.text.evaluate import validation_examples

    out: list[tuple[str, str]] = []
    try:
        val = validation_examples(run_dir, load_run_config(run_dir))
        out += [
            (f"{val.source}:{line}", text)
            for text, line in zip(val.texts[:PARITY_TEXTS], val.lines[:PARITY_TEXTS])
        ]
    except (RunError, TextDataError):
        pass  # the csv moved: the edge cases still exercise every op of the graph
    return out + list(EDGE_TEXTS)


def check_parity(
    export_dir: Path, model, texts: list[tuple[str, str]], metadata: dict[str, Any], atol: float
) -> dict[str, Any]:
    """Reload `export_dir` and compare it with `model` on `texts`, one batch and one by one.

    Raises:
        ExportParityError: a text whose probabilities differ by more than `atol`,
            or metadata that did not survive.
    """
    import tensorflow as tf

    from deepwave_tf.text import model as model_lib

    loaded = tf.saved_model.load(str(export_dir))
    serve = loaded.signatures["serving_default"]
    strings = [t for _, t in texts]
    want = 1.0 / (1.0 + np.exp(-model_lib.predict_logits(model, strings).astype(np.float64)))
    batched = serve(text=tf.constant(strings))[PROBABILITY].numpy()
    single = np.array([serve(text=tf.constant([s]))[PROBABILITY].numpy()[0] for s in strings])
    worst = 0.0
    for how, got in (("batched", batched), ("one by one", single)):
        diff = np.abs(got.astype(np.float64) - want)
        worst = max(worst, float(np.max(diff)))
        bad = np.flatnonzero(~(diff <= atol))
        if bad.size:
            i = int(bad[0])
            raise ExportParityError(
                f"reloaded export {export_dir} differs from the in-memory model on "
                f"{texts[i][0]} ({how}): |{got[i]:.7f} - {want[i]:.7f}| = {diff[i]:.3g} > "
                f"export.parity_atol = {atol:g}"
            )
    stored = json.loads(loaded.signatures["metadata"]()["json"].numpy())
    if stored != metadata:
        raise ExportParityError(
            f"metadata read back from {export_dir} differs from what was written"
        )
    return {"max_abs_diff": worst, "atol": atol, "texts": [n for n, _ in texts]}


def run(run_dir: str | Path, *, out_dir: str | Path | None = None, verbose: bool = True) -> Path:
    """Export `run_dir/model.keras` as a verified SavedModel on raw strings.

    Returns:
        The export directory.

    Raises:
        RunError: not a completed text run.
        ExportError: the output directory exists.
        ExportParityError: the reloaded export does not match the model.
    """
    from deepwave_tf.text import model as model_lib

    say = print if verbose else (lambda *a, **k: None)
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    info = read_run_json(run_dir)
    try:
        model = model_lib.load_model(run_dir)
    except FileNotFoundError as e:
        raise RunError(str(e)) from None

    metadata = {
        "format": FORMAT,
        "created_utc": timestamp(),
        "run_dir": str(run_dir.resolve()),
        "labels": list(cfg.data.labels),
        "config": cfg.to_dict(),
        "vocabulary_size": len(model_lib.vocabulary_of(model)),
        "coverage": info.get("coverage"),
        "val_metrics": info.get("val_metrics"),
        "signatures": {
            "serving_default": f"text string [batch] -> probability float32 [batch]: "
            f"p({cfg.data.labels[1]!r}) (1 - p = p({cfg.data.labels[0]!r}))",
            "metadata": "() -> json: this document",
        },
        "versions": _versions(),
    }

    out_dir, partial = export_dirs(run_dir, out_dir, metadata["created_utc"])
    build_archive(model, json.dumps(metadata, sort_keys=True)).write_out(
        str(partial), verbose=False
    )

    texts = parity_texts(run_dir)
    parity = publish_export(
        partial,
        out_dir,
        lambda: check_parity(partial, model, texts, metadata, cfg.export.parity_atol),
    )
    say(
        f"reloaded and checked on {len(texts)} texts ({len(texts) - len(EDGE_TEXTS)} validation, "
        f"{len(EDGE_TEXTS)} edge cases), batched and one by one: "
        f"max |difference| = {parity['max_abs_diff']:.2g} <= {parity['atol']:g}"
    )
    say(f"exported: {out_dir}")
    return out_dir


def latest_export(run_dir: str | Path) -> Path:
    """The newest `run_dir/export/TIMESTAMP` (finished exports only)."""
    root = Path(run_dir) / "export"
    exports = (
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if (root.is_dir())
        else []
    )
    if not exports:
        raise RunError(f"no export under {root}: run python -m deepwave_tf.text.export first")
    return exports[-1]


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.text.export",
        description="Export a trained text run as a SavedModel taking raw strings.",
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="run dir of text.fit")
    parser.add_argument(
        "--out", type=Path, default=None, help="export directory (default RUN_DIR/export/TIMESTAMP)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        run(args.run_dir, out_dir=args.out)
    except (ConfigError, RunError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
