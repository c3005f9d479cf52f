"""Train the text BiLSTM on a `text,label` csv: `python -m deepwave_tf.text.fit`.

    python -m deepwave_tf.text.fit --data train.csv --vectors wiki-news-300d-1M.vec \\
        --run-dir runs/text [--config configs/text.toml] [--set train.epochs=1]

Steps: read and check the csv (`data.read_csv`); stratified seeded split
(`data.split`, `data.val_fraction`); vocabulary from the *train* texts only
(`model.build_vocabulary`); stream the `.vec` file for that vocabulary's rows
(`vectors.load_vectors`) and print the coverage; build, train with binary
cross-entropy on the logit; keep the best epoch on `train.monitor`.

Run directory (`run_dir`, the audio `fit`'s layout):
- `config.json`, `config.toml`: the resolved config (`model.embedding_dim`
  filled in from the `.vec` file);
- `run.json`: the csv and `.vec` paths (absolute), split sizes per class,
  vocabulary size and vector coverage, best epoch and value, the validation
  metrics of the best weights (`evaluate.compute_metrics`), status;
- `checkpoints/best.weights.h5`: best on `train.monitor`;
- `history.csv`: per-epoch loss, auc, accuracy, f1 (and `val_` ones);
- `tb/`: TensorBoard scalars, plus the resolved config and the coverage as text
  (`tensorboard --logdir runs/text/tb`);
- `model.keras`: the model with the best weights, vectorizer and vocabulary
  included (uncompiled). A rerun into the same directory starts over.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from deepwave_tf.config import ConfigError, add_config_arguments
from deepwave_tf.fit import BinaryF1
from deepwave_tf.records import write_json_atomic
from deepwave_tf.text import data, evaluate, vectors
from deepwave_tf.text import model as model_lib
from deepwave_tf.text.config import DEFAULT_CONFIG, MONITORS, TextConfig, load_text_config
from deepwave_tf.text.data import TextDataError
from deepwave_tf.text.vectors import VectorsError

BEST_WEIGHTS = "best.weights.h5"
HISTORY = "history.csv"
RUN_JSON = evaluate.RUN_JSON


# --------------------------------------------------------------------------- #
# Metrics and compile
# --------------------------------------------------------------------------- #
@keras.saving.register_keras_serializable(package="deepwave_tf.text")
class LogitF1(BinaryF1):
    """F1 at p = 0.5 of a logit output `[batch, 1]` (the audio `BinaryF1` takes probabilities)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, tf.sigmoid(y_pred), sample_weight)


def compile_model(model: keras.Model, cfg: TextConfig) -> keras.Model:
    """Adam(`train.learning_rate`), BCE on the logit; metrics auc, accuracy, f1 (at p = 0.5)."""
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.AUC(name="auc", from_logits=True),
            keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),  # logit 0 = p 0.5
            LogitF1(name="f1"),
        ],
    )
    return model


def make_callbacks(cfg: TextConfig, run_dir: Path) -> list[keras.callbacks.Callback]:
    """Best checkpoint, early stopping, CSV log and TensorBoard, all on `train.monitor`."""
    monitor, mode = cfg.train.monitor, MONITORS[cfg.train.monitor]
    return [
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / BEST_WEIGHTS),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=cfg.train.early_stopping_patience
        ),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY)),
        keras.callbacks.TensorBoard(
            log_dir=str(run_dir / "tb"), write_graph=False, profile_batch=0
        ),
    ]


def _write_text_summaries(log_dir: Path, texts: dict[str, str]) -> None:
    writer = tf.summary.create_file_writer(str(log_dir / "config"))
    with writer.as_default():
        for name, value in texts.items():
            tf.summary.text(name, value, step=0)
    writer.close()


def _best_epoch(history: dict[str, list[float]], monitor: str) -> tuple[int | None, float | None]:
    """(1-based epoch, value) of the best `monitor` in a Keras history, or (None, None)."""
    values = history.get(monitor) or []
    finite = [(v, i) for i, v in enumerate(values) if np.isfinite(v)]
    if not finite:
        return None, None
    # Ties go to the earliest epoch: ModelCheckpoint(save_best_only) keeps the first.
    sign = -1.0 if MONITORS[monitor] == "max" else 1.0
    v, i = min(finite, key=lambda t: (sign * t[0], t[1]))
    return i + 1, float(v)


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #
def run(
    cfg: TextConfig,
    data_csv: str | Path,
    vectors_path: str | Path,
    run_dir: str | Path,
    *,
    verbose: int | str = "auto",
) -> keras.Model:
    """Train on `data_csv` with embeddings from `vectors_path`; write `run_dir` (module docstring).

    Args:
        cfg: config; `model.embedding_dim` 0 = the `.vec` file's dimension.
        data_csv: `text,label` csv (columns and label names from `cfg.data`).
        vectors_path: fastText `.vec` (or `.vec.gz`) file.
        run_dir: output directory (replaced files, no resume).
        verbose: Keras `fit` verbosity.

    Returns:
        The compiled model holding the best weights (also saved as `model.keras`).

    Raises:
        TextDataError: an unusable csv, or a class too small to split.
        VectorsError: an unusable `.vec` file, or its dimension != `model.embedding_dim`.
    """
    say = print if verbose else (lambda *a, **k: None)
    data_csv, vectors_path, run_dir = Path(data_csv), Path(vectors_path), Path(run_dir)

    # Data: read, check and split before anything slow.
    examples = data.read_csv(data_csv, cfg.data)
    train, val = data.split(examples, cfg.data)
    vectors.read_header(vectors_path)  # a bad .vec fails now, not after the vocabulary

    # Vocabulary (train texts only) and its rows of the .vec file.
    vocabulary = model_lib.build_vocabulary(train.texts, cfg.model)
    table = vectors.load_vectors(
        vectors_path, vocabulary, cfg.vectors, expected_dim=cfg.model.embedding_dim
    )
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, embedding_dim=table.dim))
    token_coverage = _token_coverage(train.texts, vocabulary, table.found, cfg)
    coverage = {**table.summary(), "train_token_coverage": token_coverage}
    say(
        f"vectors: {table.found.sum()} of {table.searchable} vocabulary words found in "
        f"{vectors_path.name} ({100 * table.coverage():.1f} %; "
        f"{table.case_fallback.sum()} by lower-casing; {100 * token_coverage:.1f} % of train "
        f"tokens); {table.searchable - table.found.sum()} get random vectors"
    )

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir)
    info: dict[str, Any] = {
        "data": str(data_csv.resolve()),
        "vectors": str(vectors_path.resolve()),
        "labels": list(cfg.data.labels),
        "split": {
            "train": len(train),
            "val": len(val),
            "train_per_class": train.class_counts(),
            "val_per_class": val.class_counts(),
        },
        "vocabulary_size": len(vocabulary),
        "coverage": coverage,
        "monitor": cfg.train.monitor,
        "status": "running",
    }
    write_json_atomic(run_dir / RUN_JSON, info)
    _write_text_summaries(
        run_dir / "tb",
        {
            "config": "```\n" + cfg.to_toml() + "\n```",
            "coverage": "\n".join(f"- {k}: {v}" for k, v in coverage.items()),
        },
    )

    keras.utils.set_random_seed(cfg.train.seed)
    model = compile_model(model_lib.build_model(cfg.model, vocabulary, table.matrix), cfg)
    history = model.fit(
        data.make_dataset(train, cfg.data, training=True),
        validation_data=data.make_dataset(val, cfg.data, training=False),
        epochs=cfg.train.epochs,
        callbacks=make_callbacks(cfg, run_dir),
        shuffle=False,  # the dataset shuffles
        verbose=verbose,
    )

    best_path = run_dir / "checkpoints" / BEST_WEIGHTS
    if best_path.is_file():
        model.load_weights(str(best_path))
    model.save(str(run_dir / model_lib.MODEL_FILE))
    # Validation metrics of the best weights, exact (sklearn), for run.json.
    logits = model_lib.predict_logits(model, val.texts, cfg.data.batch_size)
    val_metrics = evaluate.compute_metrics(val.targets, 1.0 / (1.0 + np.exp(-logits)))
    best_epoch, best_value = _best_epoch(history.history, cfg.train.monitor)
    info.update(
        status="completed",
        best_epoch=best_epoch,
        best={cfg.train.monitor: best_value},
        epochs_run=len(history.epoch),
        val_metrics=val_metrics,
        model_params=int(model.count_params()),
    )
    write_json_atomic(run_dir / RUN_JSON, evaluate._finite(info))
    say(evaluate.format_summary("val (best weights)", val_metrics, cfg.data.labels))
    return model


def _token_coverage(
    texts: Sequence[str], vocabulary: Sequence[str], found: np.ndarray, cfg: TextConfig
) -> float:
    """Share of the train texts' tokens (padding excluded) whose word has a vector."""
    vectorizer = model_lib.make_vectorizer(cfg.model, vocabulary)
    ids = np.asarray(vectorizer(tf.constant(list(texts), tf.string)))
    ids = ids[ids > 0]
    return float(found[ids].mean()) if ids.size else 0.0


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.text.fit",
        description="Train the text BiLSTM (pretrained word vectors) on a text,label csv.",
    )
    parser.add_argument("--data", type=Path, required=True, help="training csv (text,label)")
    parser.add_argument(
        "--vectors", type=Path, required=True, help="fastText .vec word vectors (or .vec.gz)"
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="output run dir (runs/NAME)")
    add_config_arguments(parser, default=DEFAULT_CONFIG)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_text_config(args.config, args.overrides)
        run(cfg, args.data, args.vectors, args.run_dir, verbose=2)
    except (ConfigError, TextDataError, VectorsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"run dir: {args.run_dir}\n"
        f"TensorBoard: tensorboard --logdir {args.run_dir / 'tb'}  (then open http://localhost:6006)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
