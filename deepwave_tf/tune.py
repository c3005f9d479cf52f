"""KerasTuner search over the model and training settings: `python -m deepwave_tf.tune`.

    python -m deepwave_tf.tune --records tfrecords/NAME --config configs/default.toml \\
        --run-dir runs/NAME-tune [--algorithm hyperband|bayesian|random] \\
        [--max-trials 20] [--max-epochs 10]

The search space is the `[tune]` section of the config (lists of choices, or
`[min, max]` ranges for dropout, learning rate and mixing). `build(hp)` only
turns the hyperparameters into a new `Config` (`config_for`) and calls the same
`model.build_model` and `fit.compile_model` as `fit`; each trial trains on the
same tf.data pipeline (`data.make_dataset`) with early stopping on the
objective: `val_score` (the challenge score on the mixed validation split,
lower is better) or `val_auc`.

Run directory:
- `tuner/`: KerasTuner state; rerunning the same command resumes an
  interrupted search (finished trials are not repeated, the interrupted one is
  retried);
- `tb/<trial>/execution0/`: TensorBoard scalars and the HParams view of every
  trial (`tensorboard --logdir runs/NAME-tune/tb`, HPARAMS tab);
- `trials.csv`: one row per trial (values and objective), also printed;
- `best.toml`: the best trial as a complete config that `fit` accepts unchanged;
- `config.json`/`config.toml`: the resolved base config of the search.

Memory stays flat across trials: the Keras session is cleared after each trial.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from deepwave_tf import data, fit
from deepwave_tf import model as model_lib
from deepwave_tf.config import Config, ConfigError, TuneConfig, add_config_arguments, load_config
from deepwave_tf.records import ManifestError

ALGORITHMS = ("hyperband", "bayesian", "random")
OBJECTIVES = {"val_score": "min", "val_auc": "max"}
TUNER_DIR = "tuner"
BEST_TOML = "best.toml"
TRIALS_CSV = "trials.csv"


# --------------------------------------------------------------------------- #
# Search space -> Config
# --------------------------------------------------------------------------- #
def _choice(hp: kt.HyperParameters, name: str, values: Sequence[Any]):
    values = list(dict.fromkeys(values))  # unique, order kept
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, values)


def _range(hp: kt.HyperParameters, name: str, bounds: Sequence[float], log: bool = False):
    if len(bounds) != 2:
        raise ConfigError(f"tune.{name} must be [min, max], got {list(bounds)}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if lo > hi:
        raise ConfigError(f"tune.{name}: min {lo} > max {hi}")
    if lo == hi:
        return hp.Fixed(name, lo)
    return hp.Float(name, lo, hi, sampling="log" if log else "linear")


def config_for(base: Config, hp: kt.HyperParameters) -> Config:
    """A new Config with the trial's hyperparameters; everything else from `base`.

    Conv filters: `conv_filters` is the first block's width, doubling per block
    (`conv_blocks` blocks). SpecAugment strength `spec_masks` sets both the
    number of time and of frequency masks.
    """
    t: TuneConfig = base.tune
    first = _choice(hp, "conv_filters", t.conv_filters)
    blocks = _choice(hp, "conv_blocks", t.conv_blocks)
    model = dataclasses.replace(
        base.model,
        lstm_units=_choice(hp, "lstm_units", t.lstm_units),
        lstm_layers=_choice(hp, "lstm_layers", t.lstm_layers),
        conv_filters=tuple(int(first) * 2**i for i in range(int(blocks))),
        activation=_choice(hp, "activation", t.activation),
        dropout=_range(hp, "dropout", t.dropout),
    )
    train = dataclasses.replace(
        base.train, learning_rate=_range(hp, "learning_rate", t.learning_rate, log=True)
    )
    data_cfg = dataclasses.replace(base.data, batch_size=_choice(hp, "batch_size", t.batch_size))
    masks = _choice(hp, "spec_masks", t.time_masks)
    augment = dataclasses.replace(
        base.augment,
        mix_prob=_range(hp, "mix_prob", t.mix_prob),
        time_masks=masks,
        freq_masks=masks,
    )
    return base.replace(model=model, train=train, data=data_cfg, augment=augment)


class DeepwaveHyperModel(kt.HyperModel):
    """`build(hp)` -> the same model `fit` builds; `fit(hp, model)` -> the same pipeline."""

    def __init__(self, base: Config, records_dir: Path, stats: dict[str, Any], verbose: int = 1):
        super().__init__(name="deepwave")
        self.base, self.records_dir, self.stats, self.verbose = base, records_dir, stats, verbose

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        cfg = config_for(self.base, hp)
        return fit.compile_model(model_lib.build_model(cfg, self.stats), cfg)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, callbacks=(), **kwargs):
        cfg = config_for(self.base, hp)
        steps = cfg.train.steps_per_epoch or None  # as in fit.run
        train_ds = data.make_dataset(
            self.records_dir, "train", cfg, training=True, repeat=steps is not None
        )
        val_ds = data.make_dataset(self.records_dir, "val", cfg, training=False)
        if cfg.train.validation_steps:
            val_ds = val_ds.take(cfg.train.validation_steps)
        objective = self.base.tune.objective
        early = keras.callbacks.EarlyStopping(
            monitor=objective,
            mode=OBJECTIVES[objective],
            patience=cfg.train.early_stopping_patience,
        )
        # ValidationScore first: it adds val_score/val_auc to the logs the others read.
        cbs = [fit.ValidationScore(val_ds), early, *callbacks]
        kwargs.setdefault("epochs", self.base.tune.max_epochs)
        return model.fit(
            train_ds,
            validation_data=val_ds,
            steps_per_epoch=steps,
            callbacks=cbs,
            verbose=self.verbose,
            **kwargs,
        )


def _release_heap() -> None:
    """Hand freed heap pages back to the OS (glibc), so RSS shows what is really in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _tuner_class(algorithm: str) -> type:
    base = {
        "hyperband": kt.Hyperband,
        "bayesian": kt.BayesianOptimization,
        "random": kt.RandomSearch,
    }[algorithm]

    class Tuner(base):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            # Free the trial's graphs and weights: memory stays flat across trials.
            keras.backend.clear_session()
            gc.collect()
            _release_heap()

    Tuner.__name__ = f"Deepwave{base.__name__}"
    return Tuner


def make_tuner(cfg: Config, hypermodel: DeepwaveHyperModel, run_dir: Path) -> kt.Tuner:
    t = cfg.tune
    if t.algorithm not in ALGORITHMS:
        raise ConfigError(f"tune.algorithm={t.algorithm!r} is not one of {ALGORITHMS}")
    if t.objective not in OBJECTIVES:
        raise ConfigError(f"tune.objective={t.objective!r} is not one of {tuple(OBJECTIVES)}")
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(t.objective, direction=OBJECTIVES[t.objective]),
        seed=cfg.train.seed,
        directory=str(run_dir),
        project_name=TUNER_DIR,
        overwrite=False,  # resume an interrupted search
    )
    cls = _tuner_class(t.algorithm)
    if t.algorithm == "hyperband":
        if t.max_epochs < 2:  # successive halving needs at least two rungs
            raise ConfigError("tune.algorithm='hyperband' needs tune.max_epochs >= 2")
        tuner = cls(max_epochs=t.max_epochs, factor=3, **common)
        tuner.oracle.max_trials = t.max_trials  # Hyperband has no max_trials argument
    else:
        tuner = cls(max_trials=t.max_trials, **common)
    return tuner


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #
def trial_rows(tuner: kt.Tuner, objective: str) -> list[dict[str, Any]]:
    rows = []
    for trial in sorted(tuner.oracle.trials.values(), key=lambda tr: tr.trial_id):
        value = trial.score
        rows.append(
            {
                "trial": trial.trial_id,
                "status": trial.status,
                objective: None if value is None else float(value),
                **{k: v for k, v in trial.hyperparameters.values.items()},
            }
        )
    return rows


def _format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no trials)"
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(keys), line(["-" * w for w in widths]), *map(line, cells)])


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


@dataclasses.dataclass
class TuneResult:
    best_config: Config
    best_toml: Path
    rows: list[dict[str, Any]]
    tuner: kt.Tuner


def run(cfg: Config, records_dir: Path, run_dir: Path, *, verbose: int = 1) -> TuneResult:
    """Run (or resume) the search and write `best.toml`, `trials.csv` and `tb/`.

    Raises:
        ManifestError: records missing or made with other features, no val split.
        ConfigError: bad search space, algorithm or objective.
        RuntimeError: no trial completed.
    """
    records_dir, run_dir = Path(records_dir).resolve(), Path(run_dir)
    manifest = data.load_manifest(records_dir, cfg)
    if not manifest.get("shards", {}).get("val"):
        raise ManifestError(f"{records_dir} has no 'val' split; tuning needs one")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir)
    hypermodel = DeepwaveHyperModel(cfg, records_dir, data.load_stats(records_dir), verbose)
    tuner = make_tuner(cfg, hypermodel, run_dir)
    tensorboard = keras.callbacks.TensorBoard(
        log_dir=str(run_dir / "tb"), write_graph=False, profile_batch=0
    )
    tuner.search(callbacks=[tensorboard])

    objective = cfg.tune.objective
    rows = trial_rows(tuner, objective)
    _write_csv(run_dir / TRIALS_CSV, rows)
    best_trials = tuner.oracle.get_best_trials(1)
    if not best_trials:
        raise RuntimeError(f"no trial completed; see {run_dir / TUNER_DIR}")
    best = best_trials[0]
    best_cfg = config_for(cfg, best.hyperparameters)
    if "tuner/epochs" in best.hyperparameters.values:  # hyperband: the epochs it reached
        epochs = int(best.hyperparameters.values["tuner/epochs"])
        best_cfg = best_cfg.replace(train=dataclasses.replace(best_cfg.train, epochs=epochs))
    best_toml = run_dir / BEST_TOML
    header = (
        f"# Best of {len(rows)} trial(s) ({cfg.tune.algorithm}), trial {best.trial_id}: "
        f"{objective} = {best.score:.4f}\n"
        f"# Train it: python -m deepwave_tf.fit --records {records_dir} --config {best_toml} "
        "--run-dir runs/NAME\n\n"
    )
    best_toml.write_text(header + best_cfg.to_toml())
    print(f"\n{len(rows)} trial(s), objective {objective} ({OBJECTIVES[objective]}imise):")
    print(_format_table(rows))
    print(f"\nbest trial {best.trial_id}: {objective} = {best.score:.4f} -> {best_toml}")
    print(f"HParams view: tensorboard --logdir {run_dir / 'tb'}")
    return TuneResult(best_cfg, best_toml, rows, tuner)


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.tune",
        description="KerasTuner search over the CNN + BiLSTM (space in the [tune] config section).",
    )
    parser.add_argument("--records", type=Path, required=True, help="prep output dir")
    parser.add_argument("--run-dir", type=Path, required=True, help="search output dir")
    parser.add_argument("--algorithm", choices=ALGORITHMS, help="overrides tune.algorithm")
    parser.add_argument("--max-trials", type=int, help="overrides tune.max_trials")
    parser.add_argument("--max-epochs", type=int, help="overrides tune.max_epochs")
    parser.add_argument("--objective", choices=tuple(OBJECTIVES), help="overrides tune.objective")
    add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    for key in ("algorithm", "max_trials", "max_epochs", "objective"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(
                f"tune.{key}={value!r}" if isinstance(value, str) else f"tune.{key}={value}"
            )
    try:
        cfg = load_config(args.config, overrides)
        run(cfg, args.records, args.run_dir)
    except (ConfigError, ManifestError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
