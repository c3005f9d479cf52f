"""Train the two-input model on prepped records: `python -m deepwave_tf.fit`.

    python -m deepwave_tf.fit --records tfrecords/NAME --config configs/default.toml \\
        --run-dir runs/NAME [--set train.epochs=1] [--strategy default|mirrored|multiworker] \\
        [--overwrite]

A run dir that holds a finished run is refused (`RunDirError`, before
TensorFlow loads): training again would replace its model and history and
add a second set of TensorBoard events. `--overwrite` removes what fit wrote
there (`RUN_OUTPUTS`; exports are kept) and starts over. An interrupted run
is not finished: the same command resumes it (below).

Run directory (`run_dir`):
- `config.json`, `config.toml`: the resolved config;
- `run.json`: records dir (absolute), feature hash, normalisation stats, best
  epoch and value, epochs run, strategy, status;
- `checkpoints/best.weights.h5` (best on `train.monitor`) and
  `checkpoints/backup/` (BackupAndRestore: rerunning the same command after a
  crash or kill resumes at the epoch after the last completed one, with the
  weights and optimizer state of that epoch; the best-checkpoint threshold is
  restored from `history.csv`, the early-stopping patience counter restarts);
- `history.csv` (CSVLogger, appended on resume);
- `tb/`: TensorBoard scalars (train/validation), a few validation and train
  mel-spectrograms as images, and the config as hparams with the final metrics
  (`tensorboard --logdir runs/NAME/tb`);
- `model.keras`: the model with the best weights (uncompiled: it loads without
  this module's metrics).

Losses: binary cross-entropy per output. With the softmax head only `fake` has a
loss, since real = 1 - fake (BCE on p(fake) is the 2-class cross-entropy).
Metrics per output: AUC, binary accuracy, F1, Brier (mean squared error of the
probabilities). At each epoch end `ValidationScore` predicts the validation split
and logs the challenge score `val_score` = 0.5 (1 - mean AUC) + 0.25 mean Brier +
0.25 mean ECE, with `val_auc`, `val_brier`, `val_ece` (exact, `metrics.py`).

Strategies: `default` (one device), `mirrored` (`tf.distribute.MirroredStrategy`,
all local GPUs, or the CPU), `multiworker` (`MultiWorkerMirroredStrategy`: start
the same command on every machine with `TF_CONFIG` set, e.g.
`TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
"task": {"type": "worker", "index": 0}}'`; every worker needs the records at
the same path; every worker writes a run dir, so give worker 0 the one to keep
and the others a scratch `--run-dir`). `data.batch_size` is the global batch,
split over the replicas.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepwave_tf import cli
from deepwave_tf.config import Config, ConfigError

if TYPE_CHECKING:  # TensorFlow is imported when a run starts: `--help` stays fast
    import keras
    import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")
BEST_WEIGHTS = "best.weights.h5"
MODEL_FILE = "model.keras"
HISTORY = "history.csv"
RUN_JSON = "run.json"
# Monitored value -> Keras mode.
MONITOR_MODE = {"val_auc": "max", "val_score": "min", "val_loss": "min"}
# What fit writes into a run dir; `--overwrite` removes these (exports are kept).
RUN_OUTPUTS = ("config.json", "config.toml", RUN_JSON, HISTORY, MODEL_FILE, "checkpoints", "tb")
_KERAS_CLASSES = ("BinaryF1", "ValidationScore", "SpectrogramImages")  # in callbacks.py


class RunDirError(ValueError):
    """A run directory fit must not train into (it holds a finished run)."""


def __getattr__(name: str):
    """`fit.BinaryF1` etc.: the Keras classes, imported from `callbacks` on first use."""
    if name in _KERAS_CLASSES:
        from deepwave_tf import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- #
# Metrics and compile
# --------------------------------------------------------------------------- #
def output_metrics() -> list[keras.metrics.Metric]:
    """Fresh metric objects for one output: auc, accuracy, f1, brier."""
    import keras

    from deepwave_tf.callbacks import BinaryF1

    return [
        keras.metrics.AUC(name="auc"),
        keras.metrics.BinaryAccuracy(name="accuracy"),
        BinaryF1(name="f1"),
        keras.metrics.MeanSquaredError(name="brier"),
    ]


def compile_model(model: keras.Model, cfg: Config) -> keras.Model:
    """Compile with Adam(`train.learning_rate`), BCE per output and the metrics above.

    Logged names: `loss`, `{fake,real}_{auc,accuracy,f1,brier}` (and `val_` ones).
    """
    import keras

    from deepwave_tf.features import LABEL_KEYS

    bce = keras.losses.BinaryCrossentropy
    if cfg.model.head == "softmax":
        losses = {LABEL_KEYS[0]: bce(name="fake_bce"), LABEL_KEYS[1]: None}
    else:
        losses = {key: bce(name=f"{key}_bce") for key in LABEL_KEYS}
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
        loss=losses,
        metrics={key: output_metrics() for key in LABEL_KEYS},
        jit_compile=cfg.train.jit_compile,
    )
    _build_training_state(model, cfg)
    return model


def _build_training_state(model: keras.Model, cfg: Config) -> None:
    """Create optimizer slots, loss trackers and metric variables before `fit`.

    Without a distribution strategy Keras creates them inside the first traced
    train step, and a variable created while tracing makes `tf.function` trace
    the whole step twice (about 5 s per fit on this CPU). `_symbolic_build` is
    what Keras itself calls under a strategy; if a Keras version lacks it, only
    the optimizer is pre-built.
    """
    import tensorflow as tf

    from deepwave_tf.features import LABEL_KEYS, WAVEFORM
    from deepwave_tf.model import input_shapes

    inputs = {
        key: tf.TensorSpec([None, *shape]) for key, shape in input_shapes(cfg.features).items()
    }
    if cfg.model.uses_waveform:
        inputs[WAVEFORM] = tf.TensorSpec([None, cfg.features.num_samples])
    spec = (inputs, {key: tf.TensorSpec([None]) for key in LABEL_KEYS})
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=spec)
    else:
        model.optimizer.build(model.trainable_variables)


# --------------------------------------------------------------------------- #
# Callbacks
# --------------------------------------------------------------------------- #
def _best_so_far(history: Path, monitor: str) -> tuple[float | None, int | None]:
    """(best value, its 0-based epoch) of `monitor` in a CSVLogger file, or (None, None)."""
    if not history.is_file():
        return None, None
    with history.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(monitor) not in (None, "", "nan")]
    if not rows:
        return None, None
    pick = max if MONITOR_MODE[monitor] == "max" else min
    row = pick(rows, key=lambda r: float(r[monitor]))
    return float(row[monitor]), int(row["epoch"])


def make_callbacks(
    cfg: Config,
    run_dir: Path,
    val_ds: tf.data.Dataset,
    *,
    train_ds: tf.data.Dataset | None = None,
    resuming: bool = False,
) -> list[keras.callbacks.Callback]:
    """The training callbacks, in the order they must run.

    `ValidationScore` first (adds val_score/val_auc to the logs), then best
    checkpoint, early stopping, backup, CSV log, TensorBoard and images. On resume
    the checkpoint starts from the best value already in `history.csv`, so a
    worse epoch after the restart cannot overwrite the best weights.
    """
    import keras

    from deepwave_tf.callbacks import SpectrogramImages, ValidationScore

    run_dir = Path(run_dir)
    monitor, mode = cfg.train.monitor, MONITOR_MODE[cfg.train.monitor]
    best_value = _best_so_far(run_dir / HISTORY, monitor)[0] if resuming else None
    images = {"val": val_ds}
    if train_ds is not None:
        images["train"] = train_ds
    return [
        ValidationScore(val_ds),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / BEST_WEIGHTS),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_value,
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=cfg.train.early_stopping_patience
        ),
        keras.callbacks.BackupAndRestore(str(run_dir / "checkpoints" / "backup")),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=resuming),
        keras.callbacks.TensorBoard(
            log_dir=str(run_dir / "tb"), write_graph=False, profile_batch=0
        ),
        SpectrogramImages(run_dir / "tb", images, cfg.train.tensorboard_images, cfg.features.image),
    ]


def write_hparams(cfg: Config, log_dir: Path, final: dict[str, float]) -> None:
    """Model/train/augment config as TensorBoard hparams, with the final metrics."""
    import numpy as np
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    values: dict[str, Any] = {}
    for section in ("model", "train", "augment", "data"):
        for key, value in cfg.to_dict()[section].items():
            values[f"{section}.{key}"] = str(value) if isinstance(value, list) else value
    writer = tf.summary.create_file_writer(str(Path(log_dir) / "hparams"))
    with writer.as_default():
        hp.hparams(values, trial_id=Path(log_dir).parent.name)
        for name, value in final.items():
            if value is not None and np.isfinite(value):
                tf.summary.scalar(name, value, step=0)
    writer.close()


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #
def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (current device), `mirrored` or `multiworker` (reads TF_CONFIG)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"--strategy {name!r} is not one of {STRATEGIES}")


def finished_run(run_dir: Path) -> dict[str, Any] | None:
    """`run.json` of the finished run in `run_dir`, or None if there is none.

    Finished: `run.json` says "completed", or (older run dirs) `model.keras`
    exists without a `run.json`. An interrupted run (status "running") is not
    finished: rerunning the same command resumes it.
    """
    run_json = Path(run_dir) / RUN_JSON
    if run_json.is_file():
        try:
            info = json.loads(run_json.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return info if info.get("status") == "completed" else None
    return {} if (Path(run_dir) / MODEL_FILE).is_file() else None


def prepare_run_dir(run_dir: Path, *, overwrite: bool = False) -> list[str]:
    """Refuse to train over a finished run, or clear fit's outputs when `overwrite`.

    Retraining into a finished run would overwrite `model.keras` and
    `history.csv` and add a second set of TensorBoard events to `tb/`.

    Returns:
        With `overwrite`: the names of `RUN_OUTPUTS` that were removed (exports
        under `export/` are kept: they are complete models of their own).

    Raises:
        RunDirError: a finished run and not `overwrite`; the message says what
            is there and what to do.
    """
    run_dir = Path(run_dir)
    if overwrite:
        removed = []
        for name in RUN_OUTPUTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            else:
                continue
            removed.append(name)
        return removed
    info = finished_run(run_dir)
    if info is None:
        return []
    summary = []
    if info.get("epochs_run") is not None:
        summary.append(cli.plural(info["epochs_run"], "epoch"))
    best, epoch = info.get("best") or {}, info.get("best_epoch")
    for monitor, value in best.items():
        if value is not None:
            summary.append(f"best {monitor} {value:.4f} at epoch {epoch}")
    what = f" ({', '.join(summary)})" if summary else ""
    raise RunDirError(
        f"{run_dir} already holds a finished run{what} with {run_dir / MODEL_FILE}. "
        "Training again would start from scratch over it. Pass --overwrite to start over "
        "(removes its model, history, checkpoints and TensorBoard logs; exports are kept), "
        "or give another --run-dir."
    )


def run(
    cfg: Config,
    records_dir: Path,
    run_dir: Path,
    *,
    strategy: str = "default",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    overwrite: bool = False,
) -> keras.Model:
    """Train on `records_dir` (a prep output) and write `run_dir` (see the module docstring).

    Args:
        cfg: resolved config; `cfg.features` must match the records' manifest.
        records_dir: prep output with train and val splits.
        run_dir: output directory; rerunning into it after an interruption resumes.
        strategy: "default", "mirrored" or "multiworker".
        callbacks: extra Keras callbacks, run after the standard ones.
        verbose: Keras `fit` verbosity (1 = progress bar).
        overwrite: start over in a run dir that holds a finished or
            interrupted run (see `prepare_run_dir`).

    Returns:
        The compiled model holding the best weights (also saved as `model.keras`).

    Raises:
        RunDirError: `run_dir` holds a finished run and `overwrite` is False.
        ManifestError: missing records dir/manifest, other features, no val split,
            records without the waveform for a model with the waveform branch.
        ConfigError: unknown strategy.
    """
    records_dir, run_dir = Path(records_dir).resolve(), Path(run_dir)
    if not overwrite:
        prepare_run_dir(run_dir)  # refuse a finished run before any work

    import keras

    from deepwave_tf import data, records
    from deepwave_tf import model as model_lib
    from deepwave_tf.records import ManifestError

    manifest = data.load_manifest(records_dir, cfg)
    for split in ("train", "val"):
        if not manifest.get("shards", {}).get(split):
            raise ManifestError(
                f"{records_dir} has no '{split}' split; fit needs train and val "
                "(re-run prep with prep.val_fraction > 0)"
            )
    stats = data.load_stats(records_dir)
    dist = make_strategy(strategy)

    if overwrite:
        removed = prepare_run_dir(run_dir, overwrite=True)
        if removed:
            print(f"--overwrite: removed {', '.join(removed)} from {run_dir}", file=sys.stderr)
    run_dir.mkdir(parents=True, exist_ok=True)
    backup = run_dir / "checkpoints" / "backup"
    resuming = backup.is_dir() and any(backup.iterdir())
    cfg.save(run_dir)
    info: dict[str, Any] = {
        "records": str(records_dir),
        "feature_hash": cfg.features.hash(),
        "stats": stats,
        "strategy": strategy,
        "replicas": dist.num_replicas_in_sync,
        "monitor": cfg.train.monitor,
        "status": "running",
        "resumed": resuming,
    }
    records.write_json_atomic(run_dir / RUN_JSON, info)

    steps = cfg.train.steps_per_epoch or None
    train_ds = data.make_dataset(records_dir, "train", cfg, training=True, repeat=steps is not None)
    val_ds = data.make_dataset(records_dir, "val", cfg, training=False)
    if cfg.train.validation_steps:
        val_ds = val_ds.take(cfg.train.validation_steps)

    keras.utils.set_random_seed(cfg.train.seed)
    with dist.scope():
        model = compile_model(model_lib.build_model(cfg, stats), cfg)
    cbs = make_callbacks(cfg, run_dir, val_ds, train_ds=train_ds, resuming=resuming)
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.train.epochs,
        steps_per_epoch=steps,
        callbacks=[*cbs, *callbacks],
        shuffle=False,  # the dataset shuffles
        verbose=verbose,
    )

    # model.keras = the best weights (the last ones if no epoch ever improved).
    best_path = run_dir / "checkpoints" / BEST_WEIGHTS
    if best_path.is_file():
        model.load_weights(str(best_path))
    clean = model_lib.build_model(cfg, stats)
    clean.set_weights(model.get_weights())
    clean.save(str(run_dir / MODEL_FILE))

    best_value, best_epoch = _best_so_far(run_dir / HISTORY, cfg.train.monitor)
    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    info.update(
        status="completed",
        best_epoch=None if best_epoch is None else best_epoch + 1,  # 1-based
        best={cfg.train.monitor: best_value},
        epochs_run=len(history.epoch),
        last_epoch=(history.epoch[-1] + 1) if history.epoch else None,
        final_metrics=last,
        model_params=int(model.count_params()),
    )
    records.write_json_atomic(run_dir / RUN_JSON, info)
    write_hparams(
        cfg,
        run_dir / "tb",
        {
            f"best_{cfg.train.monitor}": best_value,
            **{f"final_{k}": v for k, v in last.items() if k.startswith("val_")},
        },
    )
    return model


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.fit", description="Train the CNN + BiLSTM on prepped TFRecords."
    )
    parser.add_argument(
        "--records", type=Path, required=True, help="prep output dir (tfrecords/NAME)"
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="output run dir (runs/NAME)")
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default="default", help="tf.distribute strategy"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a run dir that holds a finished (or interrupted) run; "
        "without it a finished run is refused and an interrupted one resumes",
    )
    cli.add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.quiet_tensorflow()
    try:  # config typos and a finished run are refused before TensorFlow loads
        cfg = cli.load_args_config(args)
        if not args.overwrite:
            prepare_run_dir(args.run_dir)
    except (ConfigError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from deepwave_tf.records import ManifestError

    try:
        run(
            cfg,
            args.records,
            args.run_dir,
            strategy=args.strategy,
            verbose=1,
            overwrite=args.overwrite,
        )
    except (ConfigError, ManifestError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"run dir: {args.run_dir}\n"
        f"TensorBoard: tensorboard --logdir {args.run_dir / 'tb'}  (then open http://localhost:6006)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
