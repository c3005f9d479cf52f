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
all local GPUs, or the CPU), `multiworker` (`MultiWorkerMirroredStrategy`).
`data.batch_size` is the global batch, split over the replicas.

Multi-worker: start the same command, with the same `--run-dir`, on every
machine with `TF_CONFIG` set, e.g.
`TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
"task": {"type": "worker", "index": 0}}'` (`worker_role`). Every worker needs
the records at the same path. Worker i of N reads shard files i::N (at least N
train shards, else `ManifestError` before the cluster starts) and repeats
them; an epoch is `train.steps_per_epoch` global steps, or one pass over the
split in global batches when that is 0. Every worker validates on the whole
val split. The chief (`chief` task, else worker 0) writes `run_dir`; the others
write `run_dir/workertemp_<i>/` (their BackupAndRestore state for a resume;
removed when the run completes). Batch norm uses global-batch statistics, so
all workers end with bitwise-equal weights (`weights_sha256` in `run.json`).
A killed worker blocks the others: stop all and rerun the same commands; they
resume at the next epoch, and refuse to go on if their backups disagree.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
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
_KERAS_CLASSES = ("BinaryF1", "ValidationScore", "SpectrogramImages", "SameInitialEpoch")


class RunDirError(ValueError):
    """A run directory fit must not train into (it holds a finished run)."""


# --------------------------------------------------------------------------- #
# Multi-worker: who am I (TF_CONFIG), where do I write
# --------------------------------------------------------------------------- #
WORKER_TEMP = "workertemp_{index}"  # a non-chief worker's scratch dir inside --run-dir


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in a `TF_CONFIG` cluster.

    `index`/`count` number the input workers (the chief, if the cluster names
    one, is 0): worker `index` reads shard files `index::count`. The chief is
    the `chief` task, or `worker` 0 when there is none (as in tf.distribute).
    """

    task_type: str
    task_index: int
    index: int
    count: int

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.index == 0)

    def write_dir(self, run_dir: Path) -> Path:
        """Where this worker writes: the chief `run_dir`, the others a scratch dir
        inside it (removed when the run completes), as the TF multi-worker guide does."""
        if self.is_chief:
            return Path(run_dir)
        return Path(run_dir) / WORKER_TEMP.format(index=self.index)


def worker_role(environ: dict[str, str] | None = None) -> WorkerRole:
    """Parse `TF_CONFIG` (no TensorFlow needed): this worker's role.

    Raises:
        ConfigError: TF_CONFIG missing, not JSON, or without a valid
            `cluster` / `task`; the message shows the expected shape.
    """
    environ = os.environ if environ is None else environ
    example = (
        'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    raw = environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(f"--strategy multiworker needs TF_CONFIG on every worker, e.g. {example}")
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, task_index = str(task["type"]), int(task["index"])
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(
            f"TF_CONFIG is not valid ({type(e).__name__}: {e}); expected {example}"
        ) from None
    if len(chiefs) > 1:
        raise ConfigError(f"TF_CONFIG: at most one chief, got {len(chiefs)}")
    tasks = {"chief": chiefs, "worker": workers}
    if task_type not in tasks:
        raise ConfigError(
            f"TF_CONFIG task type {task_type!r}: fit runs only 'chief' and 'worker' tasks"
        )
    if not 0 <= task_index < len(tasks[task_type]):
        raise ConfigError(
            f"TF_CONFIG task {task_type}:{task_index} is not in its cluster "
            f"({len(tasks[task_type])} {task_type} address(es))"
        )
    index = task_index + (len(chiefs) if task_type == "worker" else 0)
    return WorkerRole(task_type, task_index, index, len(chiefs) + len(workers))


def weights_digest(weights: Sequence[Any]) -> str:
    """sha256 of the weight arrays (dtype, shape and bytes): equal on workers that agree."""
    h = hashlib.sha256()
    for w in weights:
        h.update(f"{w.dtype}{w.shape}".encode())
        h.update(w.tobytes())
    return h.hexdigest()[:16]


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


def class_weights(train_counts: dict[str, int]) -> dict[str, tuple[float, float]]:
    """`{output: (weight of a positive target, weight of a negative)}` that balance the classes.

    From the train split's clip counts (`manifest["counts"]["train"]`): an output whose
    positive share is p weighs positives 0.5 / p and negatives 0.5 / (1 - p), so both
    classes carry half the loss and the mean weight over the split is 1.

    Raises:
        ValueError: a class with no clip (nothing to balance against).
    """
    from deepwave_tf.features import LABEL_KEYS

    total = sum(train_counts.get(key, 0) for key in LABEL_KEYS)
    out = {}
    for key in LABEL_KEYS:
        positives = train_counts.get(key, 0)
        if not 0 < positives < total:
            raise ValueError(
                f"train.class_balance: the train split has {positives} '{key}' clip(s) of "
                f"{total}; balancing needs both classes"
            )
        share = positives / total
        out[key] = (0.5 / share, 0.5 / (1.0 - share))
    return out


def weighted_bce(positive_weight: float, negative_weight: float):
    """Binary cross-entropy per example, times `positive_weight` where the target is 1 and
    `negative_weight` where it is 0 (soft targets interpolate); outputs are `[batch]`."""
    import keras
    from keras import ops

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, keras.backend.epsilon(), 1.0 - keras.backend.epsilon())
        bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return bce * (y_true * positive_weight + (1.0 - y_true) * negative_weight)

    return loss


def compile_model(
    model: keras.Model,
    cfg: Config,
    steps_per_epoch: int | None = None,
    train_counts: dict[str, int] | None = None,
) -> keras.Model:
    """Compile with Adam(`train.learning_rate`), BCE per output and the metrics above.

    Logged names: `loss`, `{fake,real}_{auc,accuracy,f1,brier}` (and `val_` ones).
    `steps_per_epoch` (default `train.steps_per_epoch`) sizes the steps per execution
    (`TrainConfig.execution_steps`). With `train.class_balance` the BCE is weighted by
    `class_weights(train_counts)` (the train split's clip counts per label).

    Raises:
        ValueError: `train.class_balance` without `train_counts`, or with a class missing.
    """
    import keras

    from deepwave_tf.features import LABEL_KEYS

    if cfg.train.class_balance:
        if train_counts is None:
            raise ValueError("train.class_balance needs the train split's label counts")
        weights = class_weights(train_counts)
        bce = lambda key: weighted_bce(*weights[key])  # noqa: E731
    else:
        bce = lambda key: keras.losses.BinaryCrossentropy(name=f"{key}_bce")  # noqa: E731
    if cfg.model.head == "softmax":
        losses = {LABEL_KEYS[0]: bce(LABEL_KEYS[0]), LABEL_KEYS[1]: None}
    else:
        losses = {key: bce(key) for key in LABEL_KEYS}
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
        loss=losses,
        metrics={key: output_metrics() for key in LABEL_KEYS},
        jit_compile=cfg.train.jit_compile,
        steps_per_execution=cfg.train.execution_steps(steps_per_epoch),
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


def _synchronize_batch_norm(model: keras.Model) -> int:
    """Batch norm on the global batch: `synchronized=True` on every BatchNormalization.

    Found by the multi-worker test: with per-worker batch statistics the
    trainable weights stay equal (gradients are all-reduced) but each worker's
    moving mean/variance follow its own data, so the workers' models predict
    differently and each computes another `val_score`, and early stopping or the
    best checkpoint could then pick other epochs on other workers. Synchronised
    statistics are those of single-process training on the global batch. Only
    the training model is changed: the saved model is rebuilt from the config.
    Returns the number of layers changed.
    """
    import keras

    changed = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True  # read when the train step is traced
            changed += 1
    return changed


def _barrier(dist: tf.distribute.Strategy) -> None:
    """Wait until every replica of every worker gets here (an all-reduce of ones)."""
    import tensorflow as tf

    one = tf.constant(1.0)
    dist.reduce(tf.distribute.ReduceOp.SUM, dist.run(lambda: tf.identity(one)), axis=None)


def _skip_batch_symbolic_build(model: keras.Model) -> None:
    """Work around keras-team/keras#20329 under `MultiWorkerMirroredStrategy`.

    At the start of `fit`/`evaluate` Keras 3 (TF backend, up to 3.15 at least)
    takes one batch and `strategy.reduce("MEAN", batch)`s it to build the model;
    with a dict batch (ours: mfcc, mel) the multi-worker reduce fails ("Attempt
    to convert a value ({'mfcc': PerReplica...}) ... to a Tensor"). The model,
    its optimizer and metrics are already built by `_build_training_state` from
    the feature specs, so that step has nothing left to do.
    """
    if getattr(model, "_symbolic_build", None) is not None and model.built:
        model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _fix_multi_worker_scalar_reduce() -> None:
    """Work around tensorflow/tensorflow#72388 (Keras 3 + `MultiWorkerMirroredStrategy`).

    Keras 3's train and test steps reduce their logs (scalar loss and metric
    values) over the replicas with `strategy.reduce("MEAN", v, axis=0)`, which
    fails on a scalar under the multi-worker strategy ("Invalid reduction
    dimension 0 for input with 0 dimensions"). Scalars are reduced with
    `axis=None` instead (the mean over all replicas of all workers: every worker
    logs the same values); anything else goes through Keras unchanged. Patches
    the Keras TF trainer module once per process, and only when it has the
    function this was written against.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = getattr(tf_trainer, "reduce_per_replica", None)
    is_multi_worker = getattr(tf_trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or is_multi_worker is None or getattr(original, "_deepwave", False):
        return

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
            return original(values, strategy, reduction=reduction)

        def reduce_one(v):
            local = (
                strategy.experimental_local_results(v)[0]
                if tf_trainer._is_per_replica_instance(v)
                else v
            )
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original(v, strategy, reduction=reduction)

        return tf.nest.map_structure(reduce_one, values)

    reduce_per_replica._deepwave = True
    tf_trainer.reduce_per_replica = reduce_per_replica


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
    multi_worker: bool = False,
) -> list[keras.callbacks.Callback]:
    """The training callbacks, in the order they must run.

    `ValidationScore` first (adds val_score/val_auc to the logs), then best
    checkpoint, early stopping, backup, CSV log, TensorBoard and images. On resume
    the checkpoint starts from the best value already in `history.csv`, so a
    worse epoch after the restart cannot overwrite the best weights.
    `multi_worker`: the validation score is computed on each worker from its own
    weights (`ValidationScore(local=True)`), and the workers check that they
    resumed at the same epoch (`SameInitialEpoch`).
    """
    import keras

    from deepwave_tf.callbacks import SameInitialEpoch, SpectrogramImages, ValidationScore

    run_dir = Path(run_dir)
    monitor, mode = cfg.train.monitor, MONITOR_MODE[cfg.train.monitor]
    best_value = _best_so_far(run_dir / HISTORY, monitor)[0] if resuming else None
    images = {"val": val_ds}
    if train_ds is not None:
        images["train"] = train_ds
    backup = [keras.callbacks.BackupAndRestore(str(run_dir / "checkpoints" / "backup"))]
    if multi_worker:
        backup.append(SameInitialEpoch())
    return [
        ValidationScore(val_ds, local=multi_worker),
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
        *backup,
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
    # Multi-worker: the chief writes run_dir, the other workers a scratch dir in it.
    role = worker_role() if strategy == "multiworker" else None
    out_dir = run_dir if role is None else role.write_dir(run_dir)
    if not overwrite:
        prepare_run_dir(run_dir)  # refuse a finished run before any work

    import keras
    import tensorflow as tf

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
    shard, train_shards = None, None
    if role is not None:  # fewer shard files than workers: refused before the cluster starts
        shard = (role.index, role.count)
        train_shards = data.worker_shards(
            list(manifest["shards"]["train"]), *shard, where=f"split 'train' of {records_dir}"
        )
    dist = make_strategy(strategy)

    if overwrite:
        removed = prepare_run_dir(out_dir, overwrite=True)
        if removed:
            print(f"--overwrite: removed {', '.join(removed)} from {out_dir}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    backup = out_dir / "checkpoints" / "backup"
    resuming = backup.is_dir() and any(backup.iterdir())
    cfg.save(out_dir)
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
    if role is not None:
        info["worker"] = {**dataclasses.asdict(role), "chief": role.is_chief}
        info["train_shards"] = train_shards
    records.write_json_atomic(out_dir / RUN_JSON, info)

    steps = cfg.train.steps_per_epoch or None
    if role is not None and steps is None:
        # Workers read different files, so their datasets end at different steps and
        # a worker at its end would wait for the others forever: repeat, and call an
        # epoch one pass over the whole split in global batches.
        steps = max(1, manifest["counts"]["train"]["total"] // cfg.data.batch_size)
    train_ds = data.make_dataset(
        records_dir, "train", cfg, training=True, repeat=steps is not None, shard=shard
    )
    val_ds = data.make_dataset(records_dir, "val", cfg, training=False)
    if cfg.train.validation_steps:
        val_ds = val_ds.take(cfg.train.validation_steps)
    if role is not None:  # every worker validates on the whole split (the same score)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        val_ds = val_ds.with_options(options)

    keras.utils.set_random_seed(cfg.train.seed)
    with dist.scope():
        model = compile_model(
            model_lib.build_model(cfg, stats),
            cfg,
            steps_per_epoch=steps or 0,
            train_counts=manifest["counts"]["train"],
        )
    if role is not None:
        _skip_batch_symbolic_build(model)
        _fix_multi_worker_scalar_reduce()
        _synchronize_batch_norm(model)
    cbs = make_callbacks(
        cfg, out_dir, val_ds, train_ds=train_ds, resuming=resuming, multi_worker=role is not None
    )
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
    best_path = out_dir / "checkpoints" / BEST_WEIGHTS
    if best_path.is_file():
        model.load_weights(str(best_path))
    clean = model_lib.build_model(cfg, stats)
    clean.set_weights(model.get_weights())
    clean.save(str(out_dir / MODEL_FILE))

    best_value, best_epoch = _best_so_far(out_dir / HISTORY, cfg.train.monitor)
    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    info.update(
        status="completed",
        best_epoch=None if best_epoch is None else best_epoch + 1,  # 1-based
        best={cfg.train.monitor: best_value},
        epochs_run=len(history.epoch),
        last_epoch=(history.epoch[-1] + 1) if history.epoch else None,
        final_metrics=last,
        model_params=int(model.count_params()),
        steps_per_execution=int(model.steps_per_execution),
        weights_sha256=weights_digest(clean.get_weights()),
    )
    records.write_json_atomic(out_dir / RUN_JSON, info)
    write_hparams(
        cfg,
        out_dir / "tb",
        {
            f"best_{cfg.train.monitor}": best_value,
            **{f"final_{k}": v for k, v in last.items() if k.startswith("val_")},
        },
    )
    if role is not None:
        # Nobody leaves before all are done: the chief hosts the cluster's coordination
        # service, and a worker still saving after it exits logs heartbeat errors.
        _barrier(dist)
        print(
            f"worker {role.index} of {role.count} ({role.task_type}:{role.task_index}"
            f"{', chief' if role.is_chief else ''}): {info['epochs_run']} epoch(s), "
            f"weights sha256 {info['weights_sha256']}, train shards {', '.join(train_shards)}",
            flush=True,
        )
        if not role.is_chief:  # its copies of the outputs were only scratch
            shutil.rmtree(out_dir, ignore_errors=True)
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
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
        role = worker_role() if args.strategy == "multiworker" else None
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
    if role is not None and not role.is_chief:
        return 0  # the chief reports the run dir
    print(
        f"run dir: {args.run_dir}\n"
        f"TensorBoard: tensorboard --logdir {args.run_dir / 'tb'}  (then open http://localhost:6006)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
