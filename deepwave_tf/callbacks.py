"""Keras classes that `fit` (and `tune`) train with: the per-output F1 metric and two callbacks.

They live apart from `fit.py` because a class needs its Keras base class when
it is defined: keeping them here lets `fit.py` import TensorFlow only once a
run starts, so `python -m deepwave_tf.fit --help` answers without it.
`fit.BinaryF1`, `fit.ValidationScore` and `fit.SpectrogramImages` still name
them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from deepwave_tf.features import LABEL_KEYS, MEL


@keras.saving.register_keras_serializable(package="deepwave_tf")
class BinaryF1(keras.metrics.F1Score):
    """F1 of one binary output `[batch]` (keras' F1Score wants `[batch, classes]`)."""

    def __init__(self, threshold: float = 0.5, name: str = "f1", **kwargs):
        kwargs.pop("average", None)
        super().__init__(average="micro", threshold=threshold, name=name, **kwargs)
        # Create the variables now: keras builds F1Score lazily on the first
        # update, inside the traced train step, which makes tf.function trace
        # the whole step twice (seconds per fit on a CPU).
        self._build((None, 1), (None, 1))

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(
            tf.reshape(y_true, [-1, 1]), tf.reshape(y_pred, [-1, 1]), sample_weight
        )


class ValidationScore(keras.callbacks.Callback):
    """Adds `val_score`, `val_auc`, `val_brier`, `val_ece` (challenge metrics) to the epoch logs.

    Must come before the callbacks that read them (checkpoint, early stopping,
    CSV, TensorBoard): Keras passes one logs dict along the callback list.
    """

    def __init__(self, val_ds: tf.data.Dataset, *, local: bool = False):
        """`local=True` (multi-worker training): predict with this worker's copy of
        the weights, batch by batch, instead of `model.predict`. Under
        `MultiWorkerMirroredStrategy` `predict` splits the batches over the
        workers and gathers them in replica order, which is not the order of
        `val_ds` read here for the targets; every worker then scores the whole
        split itself and all reach the same `val_score` (the weights are equal)."""
        super().__init__()
        self.val_ds = val_ds
        self.local = local
        self._targets: np.ndarray | None = None
        self._predict_fn = None
        self.last: dict[str, Any] = {}

    def targets(self) -> np.ndarray:
        if self._targets is None:  # the val batches are the same every epoch
            ys = [np.stack([y[k].numpy() for k in LABEL_KEYS], axis=1) for _, y in self.val_ds]
            self._targets = np.concatenate(ys).astype(np.float32)
        return self._targets

    def _predict(self) -> dict[str, np.ndarray]:
        if not self.local:
            return self.model.predict(self.val_ds, verbose=0)
        if self._predict_fn is None:
            model = self.model
            self._predict_fn = tf.function(lambda x: model(x, training=False))
        batches = [self._predict_fn(x) for x, _ in self.val_ds]
        return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in LABEL_KEYS}

    def on_epoch_end(self, epoch, logs=None):
        from deepwave_tf import metrics

        if logs is None:
            return
        pred = self._predict()
        prob = np.stack([np.asarray(pred[k]).reshape(-1) for k in LABEL_KEYS], axis=1)
        try:
            res = metrics.challenge_score(self.targets(), np.clip(prob, 0.0, 1.0))
        except metrics.MetricError as e:  # e.g. a tiny val split with one class only
            print(f"warning: validation score undefined at epoch {epoch + 1}: {e}", file=sys.stderr)
            res = {
                "score": math.nan,
                "mean_auc": math.nan,
                "mean_brier": math.nan,
                "mean_ece": math.nan,
            }
        self.last = res
        logs["val_score"] = res["score"]
        logs["val_auc"] = res["mean_auc"]
        logs["val_brier"] = res["mean_brier"]
        logs["val_ece"] = res["mean_ece"]


class SpectrogramImages(keras.callbacks.Callback):
    """Writes a few validation (and augmented train) log-mel spectrograms to TensorBoard once."""

    def __init__(
        self, log_dir: Path, datasets: dict[str, tf.data.Dataset], count: int, key: str = MEL
    ):
        """`key`: the front-end drawn (`features.image`); time-major ones are drawn transposed."""
        super().__init__()
        self.key = key
        self.log_dir = Path(log_dir)
        self.datasets = datasets
        self.count = count

    def on_train_begin(self, logs=None):
        if self.count <= 0:
            return
        writer = tf.summary.create_file_writer(str(self.log_dir / "images"))
        with writer.as_default():
            for name, ds in self.datasets.items():
                x, y = next(iter(ds.take(1)))
                mel = x[self.key][: self.count]  # [n, n_mels, frames, 1] dB (by default)
                if len(mel.shape) == 3:  # time-major [n, frames, coefficients]
                    mel = tf.transpose(mel, [0, 2, 1])[..., None]
                lo = tf.reduce_min(mel, axis=[1, 2, 3], keepdims=True)
                hi = tf.reduce_max(mel, axis=[1, 2, 3], keepdims=True)
                # Scaled to [0, 1] per image; low bands at the bottom.
                img = tf.reverse((mel - lo) / tf.maximum(hi - lo, 1e-6), axis=[1])
                tags = ", ".join(
                    f"#{i}: fake={y[LABEL_KEYS[0]][i]:.0f} real={y[LABEL_KEYS[1]][i]:.0f}"
                    for i in range(int(mel.shape[0]))
                )
                tf.summary.image(
                    f"{name}_log_mel" if self.key == MEL else f"{name}_{self.key}",
                    img,
                    step=0,
                    max_outputs=self.count,
                    description=tags,
                )
        writer.close()


class SameInitialEpoch(keras.callbacks.Callback):
    """Multi-worker resume guard: every worker must restart at the same epoch.

    Runs right after `BackupAndRestore` (which sets the epoch fit starts at from
    this worker's backup). Workers that disagree (one worker's backup lost, or a
    kill that fell between two workers' writes of the same epoch) would run
    different numbers of steps and wait for each other forever; this turns that
    into an error on every worker. The check all-reduces the epoch and its
    square over the replicas: they are all equal exactly when the variance is 0.
    """

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        epoch = int(getattr(self.model, "_initial_epoch", None) or 0)
        local = tf.constant([1.0, float(epoch), float(epoch) ** 2], tf.float64)
        n, total, squares = (
            strategy.reduce(
                tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None
            )
            .numpy()
            .tolist()
        )
        if squares * n != total**2:
            raise RuntimeError(
                f"the workers resumed at different epochs (this one at epoch {epoch + 1}, "
                f"mean over {int(n)} replicas {total / n + 1:.2f}): their BackupAndRestore "
                "backups (checkpoints/backup of the chief, workertemp_N/checkpoints/backup of "
                "the others) are out of step; remove them all and restart, or restart with "
                "--overwrite"
            )
