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

Trial isolation (`tune.isolation`):
- "process" (default): each trial trains in a child process,
  `python -m deepwave_tf.tune --trial-spec tuner/trial_N/execution0_spec.json`.
  This process keeps the KerasTuner oracle and state; the child builds the same
  model (`DeepwaveHyperModel.build`) and fits it on the same pipeline with the
  same callbacks (validation score, early stopping, TensorBoard + HParams in
  `tb/<trial>/execution0/`, KerasTuner's best-epoch checkpoint
  `tuner/trial_N/checkpoint.weights.h5`; Hyperband's continued trials load
  their parent trial's checkpoint), writes its per-epoch history, peak RSS and
  seconds to `execution0_result.json` beside the spec, and exits, so all of a
  trial's memory goes back to the OS. The search process's RSS stays flat:
  TensorFlow/Keras keep about 30 MB per trial in the process that trains it,
  whatever `clear_session` does (README, bench_tune). The child's output streams
  to this process's stdout/stderr; a child that fails (exit code, signal such
  as an OOM kill, bad config) fails its trial with the child's stderr tail in
  the trial's message; the child dies with this process (Linux PDEATHSIG).
  Each child pays the TensorFlow import and a cold start: tiny trials took 27 s
  instead of 15 s inline in bench_tune on 2 cores; small next to real trials.
- "inline": every trial in this process (for debugging); the Keras session is
  cleared after each trial, but memory still grows by about 30 MB per trial.

Distributed search (KerasTuner's own mode, `tuner_role`): set
`KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` (the chief's address) on every
machine and `KERASTUNER_TUNER_ID=chief` on one, `tuner0`, `tuner1`, ... on the
others, and run the same command with the same `--run-dir` (shared
filesystem). The chief serves the oracle over gRPC and trains nothing; each
worker takes trials from it until it says stop (each trial in its child
process as above) and prints which trials it ran; the chief waits for every
trial and worker to end (KerasTuner checks every 20 s), then writes
`trials.csv` and `best.toml`.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import dataclasses
import functools
import gc
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepwave_tf import cli
from deepwave_tf.config import Config, ConfigError, TuneConfig, config_from_dict

if TYPE_CHECKING:  # TensorFlow, Keras and KerasTuner load when a search starts: `--help` is fast
    import keras
    import keras_tuner as kt

ALGORITHMS = ("hyperband", "bayesian", "random")
OBJECTIVES = {"val_score": "min", "val_auc": "max"}
TUNER_DIR = "tuner"
BEST_TOML = "best.toml"
TRIALS_CSV = "trials.csv"
TRIAL_SPEC_FLAG = "--trial-spec"  # hidden: `-m deepwave_tf.tune --trial-spec SPEC` runs one trial
STDERR_TAIL_LINES = 25  # of a failed child, in the trial's error message
# KerasTuner's distributed mode (keras_tuner/src/distribute): the chief serves the oracle over
# gRPC, every other process with the same variables is a worker that asks it for trials.
TUNER_ID_ENV, ORACLE_IP_ENV, ORACLE_PORT_ENV = (
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
)


@dataclasses.dataclass(frozen=True)
class TunerRole:
    """This process in a distributed search: the oracle chief or a worker (`tuner_id`)."""

    tuner_id: str
    oracle: str  # "ip:port"

    @property
    def is_chief(self) -> bool:
        return "chief" in self.tuner_id  # KerasTuner's own test (distribute/utils.py)


def tuner_role(environ: dict[str, str] | None = None) -> TunerRole | None:
    """The distributed-search role from KerasTuner's environment variables; None = one process.

    Raises:
        ConfigError: some but not all of the three variables set, or a bad port.
    """
    environ = os.environ if environ is None else environ
    names = (TUNER_ID_ENV, ORACLE_IP_ENV, ORACLE_PORT_ENV)
    present = [n for n in names if environ.get(n)]
    if not present:
        return None
    if len(present) < len(names):
        missing = [n for n in names if n not in present]
        raise ConfigError(
            f"distributed tuning needs {', '.join(names)} on the chief and every worker; "
            f"{', '.join(present)} set but {', '.join(missing)} missing "
            f"(chief: {TUNER_ID_ENV}=chief, workers: {TUNER_ID_ENV}=tuner0, tuner1, ...)"
        )
    port = environ[ORACLE_PORT_ENV]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{ORACLE_PORT_ENV}={port!r} is not a TCP port")
    return TunerRole(environ[TUNER_ID_ENV], f"{environ[ORACLE_IP_ENV]}:{port}")


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


def __getattr__(name: str):
    """`tune.DeepwaveHyperModel`: the class is made on first use (it needs KerasTuner)."""
    if name == "DeepwaveHyperModel":
        return _hypermodel_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _hypermodel_class() -> type:
    """`DeepwaveHyperModel`, defined once KerasTuner is imported."""
    import keras
    import keras_tuner as kt

    from deepwave_tf import data, fit
    from deepwave_tf import model as model_lib

    class DeepwaveHyperModel(kt.HyperModel):
        """`build(hp)` -> the same model `fit` builds; `fit(hp, model)` -> the same pipeline."""

        def __init__(
            self, base: Config, records_dir: Path, stats: dict[str, Any], verbose: int = 1
        ):
            super().__init__(name="deepwave")
            self.base, self.records_dir = base, records_dir
            self.stats, self.verbose = stats, verbose

        def build(self, hp: kt.HyperParameters) -> keras.Model:
            cfg = config_for(self.base, hp)
            counts = data.load_manifest(self.records_dir, cfg)["counts"]["train"]
            return fit.compile_model(
                model_lib.build_model(cfg, self.stats), cfg, train_counts=counts
            )

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

    DeepwaveHyperModel.__module__ = __name__
    DeepwaveHyperModel.__qualname__ = "DeepwaveHyperModel"
    return DeepwaveHyperModel


def _release_heap() -> None:
    """Hand freed heap pages back to the OS (glibc), so RSS shows what is really in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _tuner_class(algorithm: str) -> type:
    import keras
    import keras_tuner as kt

    base = {
        "hyperband": kt.Hyperband,
        "bayesian": kt.BayesianOptimization,
        "random": kt.RandomSearch,
    }[algorithm]

    class Tuner(base):
        isolation = "process"  # set by make_tuner from tune.isolation

        def run_trial(self, trial, *args, **kwargs):
            if self.isolation == "inline":
                return super().run_trial(trial, *args, **kwargs)
            return _run_trial_in_processes(self, trial, *args, **kwargs)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.trials_ended.append(trial.trial_id)  # by this process (a worker's share)
            if self.isolation == "inline":
                # Free the trial's graphs and weights (TF still keeps ~30 MB per trial).
                keras.backend.clear_session()
                gc.collect()
                _release_heap()

    Tuner.__name__ = f"Deepwave{base.__name__}"
    return Tuner


def make_tuner(cfg: Config, hypermodel: kt.HyperModel, run_dir: Path) -> kt.Tuner:
    import keras
    import keras_tuner as kt

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
    tuner.isolation = t.isolation
    tuner.trial_processes = {}  # process mode: trial id -> the child's result (peak RSS, seconds)
    tuner.trials_ended = []  # trial ids this process ran, in order
    # KerasTuner built the model once to learn the space; trials build their own.
    keras.backend.clear_session()
    gc.collect()
    return tuner


# --------------------------------------------------------------------------- #
# Process isolation: one child process per trial
# --------------------------------------------------------------------------- #
class TrialProcessError(RuntimeError):
    """A trial's child process failed; the message holds its stderr tail."""


_TENSORBOARD_ARGS = (
    "histogram_freq",
    "write_graph",
    "write_images",
    "write_steps_per_second",
    "update_freq",
    "embeddings_freq",
    "embeddings_metadata",
)


def _tensorboard_kwargs(callback: keras.callbacks.TensorBoard, log_dir: str) -> dict[str, Any]:
    """Constructor arguments that rebuild `callback` in the child, writing to `log_dir`."""
    kwargs = {name: getattr(callback, name) for name in _TENSORBOARD_ARGS}
    start, stop = callback._start_batch, callback._stop_batch
    kwargs["profile_batch"] = start if start == stop else [start, stop]
    kwargs["log_dir"] = log_dir
    return kwargs


def _run_trial_in_processes(tuner: kt.Tuner, trial, *args, **kwargs) -> list:
    """`Tuner.run_trial`, with every execution trained by `_run_child`.

    Mirrors KerasTuner: Hyperband's `tuner/epochs` and `tuner/initial_epoch`
    become fit's `epochs`/`initial_epoch` and `tuner/trial_id` names the trial
    whose best checkpoint the model starts from; TensorBoard callbacks log to
    `<log_dir>/<trial>/execution<n>` with the trial's HParams; one best-epoch
    checkpoint per trial across executions. Returns one History per execution.
    """
    import keras
    import keras_tuner as kt
    from keras_tuner.src.engine import tuner_utils

    callbacks = list(kwargs.pop("callbacks", []) or [])
    hp = trial.hyperparameters
    if "tuner/epochs" in hp.values:
        kwargs["epochs"] = hp.values["tuner/epochs"]
        kwargs["initial_epoch"] = hp.values["tuner/initial_epoch"]
    unknown = sorted(set(kwargs) - {"epochs", "initial_epoch"})
    others = [cb for cb in callbacks if cb.__class__.__name__ != "TensorBoard"]
    if args or unknown or others:
        raise kt.errors.FatalValueError(
            "tune.isolation='process' passes only TensorBoard callbacks and epochs to the "
            f"trial process; got positional args {len(args)}, keyword args {unknown}, "
            f"callbacks {[type(cb).__name__ for cb in others]}; use tune.isolation='inline'"
        )
    hypermodel = tuner.hypermodel  # a DeepwaveHyperModel
    objective = tuner.oracle.objective
    resume_from = None
    if "tuner/trial_id" in hp.values:  # Hyperband: continue the parent trial's best epoch
        parent_id = hp.values["tuner/trial_id"]
        resume_from = {
            "checkpoint": tuner._get_checkpoint_fname(parent_id),
            "build_config": tuner._get_build_config_fname(parent_id),
        }
    trial_dir = Path(tuner.get_trial_dir(trial.trial_id))
    best_value = None  # SaveBestEpoch's best so far, carried across executions
    histories = []
    for execution in range(tuner.executions_per_trial):
        spec = {
            "trial_id": trial.trial_id,
            "execution": execution,
            "records_dir": str(hypermodel.records_dir),
            "run_dir": str(Path(tuner.directory).resolve()),
            "config": hypermodel.base.to_dict(),
            "hyperparameters": hp.get_config(),
            "epochs": int(kwargs.get("epochs", hypermodel.base.tune.max_epochs)),
            "initial_epoch": int(kwargs.get("initial_epoch", 0)),
            "verbose": hypermodel.verbose,
            "objective": {"name": objective.name, "direction": objective.direction},
            "checkpoint": tuner._get_checkpoint_fname(trial.trial_id),
            "best_value": best_value,
            "build_config": tuner._get_build_config_fname(trial.trial_id),
            "resume_from": resume_from,
            "tensorboard": [
                _tensorboard_kwargs(
                    cb, tuner._get_tensorboard_dir(cb.log_dir, trial.trial_id, execution)
                )
                for cb in callbacks
            ],
            "parent_pid": os.getpid(),
        }
        spec_path = trial_dir / f"execution{execution}_spec.json"
        result = _run_child(spec, spec_path, trial_dir / f"execution{execution}_result.json")
        tuner.trial_processes[trial.trial_id] = result
        best_value = result["best_value"]
        history = keras.callbacks.History()
        history.epoch = list(result["epochs"])
        history.history = {k: list(v) for k, v in result["history"].items()}
        tuner_utils.validate_trial_results(history, objective, "the trial process")
        histories.append(history)
    return histories


def _pdeathsig_preexec():
    """A `preexec_fn` that makes the child die with SIGKILL when this process dies (Linux).

    None elsewhere (or without a usable libc): then a killed search leaves its
    running trial to finish on its own.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after fork
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, parent = 1, os.getpid()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: do not outlive it
            os._exit(1)

    return preexec


def _relay_stderr(stream, tail: collections.deque) -> None:
    """Copy the child's stderr to ours as it comes, keeping the last lines in `tail`."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    fd = stream.fileno()
    while True:
        chunk = os.read(fd, 65536)
        text = decoder.decode(chunk, final=not chunk)
        if text:
            try:
                sys.stderr.write(text)
                sys.stderr.flush()
            except (OSError, ValueError):  # our stderr closed: keep the tail anyway
                pass
            lines = (pending + text).replace("\r", "\n").split("\n")
            pending = lines.pop()
            tail.extend(line for line in lines if line.strip())
        if not chunk:
            if pending.strip():
                tail.append(pending)
            return


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


def _run_child(spec: dict[str, Any], spec_path: Path, result_path: Path) -> dict[str, Any]:
    """Run one trial execution in `python -m deepwave_tf.tune --trial-spec SPEC`; its result.

    Raises:
        TrialProcessError: the child failed or wrote no result; the message names
            the trial and holds the child's stderr tail.
    """
    spec = {**spec, "result": str(result_path)}
    spec_path.write_text(json.dumps(spec, indent=2, default=_json_default) + "\n")
    result_path.unlink(missing_ok=True)  # a retried trial must not read its last attempt
    env = dict(os.environ)  # TF_CPP_MIN_LOG_LEVEL etc. only if we have them
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "deepwave_tf.tune", TRIAL_SPEC_FLAG, str(spec_path)]
    tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # relayed to ours line by line; stdout is inherited
        env=env,
        preexec_fn=_pdeathsig_preexec(),
    )
    relay = threading.Thread(target=_relay_stderr, args=(proc.stderr, tail), daemon=True)
    relay.start()
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C): do not leave the child training
            proc.kill()
            proc.wait()
        relay.join(timeout=10)  # EOF once the child is gone (unless it left a grandchild)
        proc.stderr.close()
    trial = f"trial {spec['trial_id']}"
    if code == 0 and result_path.is_file():
        result = json.loads(result_path.read_text())
        result["wall_seconds"] = time.perf_counter() - start  # with the child's imports
        return result
    what = _describe_exit(code) if code != 0 else f"wrote no result ({result_path})"
    stderr = "\n".join(tail) or "(no stderr output)"
    raise TrialProcessError(
        f"{trial}: the trial process {what}; spec {spec_path}\n"
        f"--- last {len(tail)} line(s) of its stderr ---\n{stderr}"
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _train_trial(spec: dict[str, Any], spec_path: Path) -> dict[str, Any]:
    """The child side: build, (load the Hyperband parent,) fit, checkpoint; the result dict."""
    import keras
    import keras_tuner as kt
    from keras_tuner.src.engine import tuner_utils
    from tensorboard.plugins.hparams import api as hparams_api

    from deepwave_tf import data

    start = time.perf_counter()
    base = config_from_dict(spec["config"], source=str(spec_path))
    records_dir = Path(spec["records_dir"])
    data.load_manifest(records_dir, base)  # a clear error if the records are gone or differ
    stats = data.load_stats(records_dir)
    hypermodel = _hypermodel_class()(base, records_dir, stats, spec["verbose"])
    hp = kt.HyperParameters.from_config(spec["hyperparameters"])
    model = hypermodel.build(hp)
    if spec["resume_from"]:  # as Hyperband._build_hypermodel
        model.build_from_config(json.loads(Path(spec["resume_from"]["build_config"]).read_text()))
        model.load_weights(spec["resume_from"]["checkpoint"])
    objective = kt.Objective(spec["objective"]["name"], spec["objective"]["direction"])
    save_best = tuner_utils.SaveBestEpoch(objective=objective, filepath=spec["checkpoint"])
    if spec["best_value"] is not None:
        save_best.best_value = spec["best_value"]
    callbacks: list[keras.callbacks.Callback] = []
    for tb in spec["tensorboard"]:  # as Tuner._configure_tensorboard_dir
        callbacks.append(keras.callbacks.TensorBoard(**tb))
        hparams = tuner_utils.convert_hyperparams_to_hparams(hp, hparams_api)
        callbacks.append(
            hparams_api.KerasCallback(
                writer=tb["log_dir"], hparams=hparams, trial_id=spec["trial_id"]
            )
        )
    callbacks.append(save_best)
    history = hypermodel.fit(
        hp,
        model,
        callbacks=callbacks,
        epochs=spec["epochs"],
        initial_epoch=spec["initial_epoch"],
    )
    # As Tuner._build_and_fit_model: the build config that load_model/Hyperband need.
    Path(spec["build_config"]).write_text(json.dumps(model.get_build_config()))
    return {
        "trial_id": spec["trial_id"],
        "epochs": [int(e) for e in history.epoch],
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "best_value": float(save_best.best_value),
        "tuner_id": os.environ.get(TUNER_ID_ENV, "tuner0"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": time.perf_counter() - start,  # after the imports
    }


def _trial_main(spec_path: Path) -> int:
    """`python -m deepwave_tf.tune --trial-spec SPEC`: train one trial, write its result JSON."""
    from deepwave_tf import records

    trial = "?"
    try:
        spec = json.loads(spec_path.read_text())
        trial = spec["trial_id"]
        if os.getppid() != spec.get("parent_pid", os.getppid()):
            print(f"error: trial {trial}: the search process is gone", file=sys.stderr)
            return 1
        result = _train_trial(spec, spec_path)
        records.write_json_atomic(Path(spec["result"]), result)
    except Exception as e:  # reported to the parent through stderr
        traceback.print_exc()
        print(f"error: trial {trial}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


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
    """The search's outcome. A distributed worker has none of its own (`best_config`,
    `best_toml` None, `rows` empty): the chief writes them."""

    best_config: Config | None
    best_toml: Path | None
    rows: list[dict[str, Any]]
    tuner: kt.Tuner


def run(cfg: Config, records_dir: Path, run_dir: Path, *, verbose: int = 1) -> TuneResult:
    """Run (or resume) the search and write `best.toml`, `trials.csv` and `tb/`.

    Distributed (KerasTuner's `KERASTUNER_*` variables set, see `tuner_role`):
    the chief serves the oracle and trains nothing; it returns once every
    trial has ended and every worker has left, then writes `best.toml` and
    `trials.csv`. A worker asks the chief for trials until it says stop,
    training each in a child process as usual (trial dirs and TensorBoard logs
    under `run_dir`: give all of them the same `--run-dir` on a shared
    filesystem), and writes no results of its own.

    Raises:
        ManifestError: records missing or made with other features, no val split.
        ConfigError: bad search space, algorithm or objective.
        RuntimeError: no trial completed.
    """
    import keras

    from deepwave_tf import data
    from deepwave_tf.records import ManifestError

    records_dir, run_dir = Path(records_dir).resolve(), Path(run_dir)
    role = tuner_role()
    manifest = data.load_manifest(records_dir, cfg)
    if not manifest.get("shards", {}).get("val"):
        raise ManifestError(f"{records_dir} has no 'val' split; tuning needs one")
    run_dir.mkdir(parents=True, exist_ok=True)
    if role is None or role.is_chief:
        cfg.save(run_dir)
    hypermodel = _hypermodel_class()(cfg, records_dir, data.load_stats(records_dir), verbose)
    tuner = make_tuner(cfg, hypermodel, run_dir)
    tensorboard = keras.callbacks.TensorBoard(
        log_dir=str(run_dir / "tb"), write_graph=False, profile_batch=0
    )
    if role is not None:
        what = "serving the oracle" if role.is_chief else "asking the oracle for trials"
        print(f"distributed search: {role.tuner_id} {what} at {role.oracle}", flush=True)
    tuner.search(callbacks=[tensorboard])
    if role is not None and not role.is_chief:
        ran = ", ".join(tuner.trials_ended) or "none"
        print(f"{role.tuner_id}: ran trial(s) {ran}; the chief writes the results", flush=True)
        return TuneResult(None, None, [], tuner)

    objective = cfg.tune.objective
    rows = trial_rows(tuner, objective)
    _write_csv(run_dir / TRIALS_CSV, rows)
    # KerasTuner pads the best list with unfinished trials when too few completed.
    best_trials = [t for t in tuner.oracle.get_best_trials(1) if t.status == "COMPLETED"]
    if not best_trials:
        failed = [tr for tr in tuner.oracle.trials.values() if tr.message]
        last = f"; the last failure:\n{failed[-1].message}" if failed else ""
        raise RuntimeError(f"no trial completed; see {run_dir / TUNER_DIR}{last}")
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
    cli.add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli.quiet_tensorflow()  # trial processes inherit the level
    if len(argv) == 2 and argv[0] == TRIAL_SPEC_FLAG:  # a trial's child process
        return _trial_main(Path(argv[1]))
    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    for key in ("algorithm", "max_trials", "max_epochs", "objective"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(
                f"tune.{key}={value!r}" if isinstance(value, str) else f"tune.{key}={value}"
            )
    try:
        cfg = cli.load_args_config(args, extra_overrides=overrides[len(args.overrides) :])
        tuner_role()  # a half-set KERASTUNER_* environment
    except ConfigError as e:  # before TensorFlow loads
        print(f"error: {e}", file=sys.stderr)
        return 2
    from deepwave_tf.records import ManifestError

    try:
        run(cfg, args.records, args.run_dir)
    except (ConfigError, ManifestError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
