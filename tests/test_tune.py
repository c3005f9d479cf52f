"""tune: search space -> config, a 3-trial search that is killed and resumed, best.toml trains.

The search runs every trial in a child process (`tune.isolation = "process"`, the default); one
test runs a trial inline to check both modes report the same metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner as kt
import pandas as pd
import pytest

from deepwave_tf import fit, tune
from deepwave_tf.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
FAST = [
    "train.steps_per_epoch=2",
    "train.validation_steps=1",
    "tune.max_trials=3",
    "tune.max_epochs=1",
    "tune.algorithm='random'",
    "augment.noise_dir=''",  # synthetic bank only: each trial process builds it anew
]


def test_config_for_maps_every_hyperparameter(tiny_cfg):
    hp = kt.HyperParameters()
    hp.values.update(
        conv_filters=8,
        conv_blocks=3,
        lstm_units=16,
        lstm_layers=2,
        activation="relu",
        dropout=0.25,
        learning_rate=1e-3,
        batch_size=32,
        spec_masks=2,
        mix_prob=0.4,
    )
    cfg = tune.config_for(tiny_cfg, hp)
    assert cfg.model.conv_filters == (8, 16, 32)
    assert (cfg.model.lstm_units, cfg.model.lstm_layers) == (16, 2)
    assert cfg.model.activation == "relu" and cfg.model.dropout == 0.25
    assert cfg.train.learning_rate == 1e-3 and cfg.data.batch_size == 32
    assert (cfg.augment.time_masks, cfg.augment.freq_masks, cfg.augment.mix_prob) == (2, 2, 0.4)
    # everything else comes from the base config, untouched
    assert cfg.features == tiny_cfg.features and cfg.model.head == tiny_cfg.model.head


def test_range_needs_two_bounds(tiny_cfg):
    cfg = load_config(REPO / "configs" / "tiny.toml", ["tune.dropout=[0.1, 0.2, 0.3]"])
    with pytest.raises(ConfigError, match=r"tune.dropout must be \[min, max\]"):
        tune.config_for(cfg, kt.HyperParameters())


def test_hyperband_needs_two_epochs(tiny_cfg, tmp_path):
    cfg = load_config(
        REPO / "configs" / "tiny.toml", ["tune.algorithm='hyperband'", "tune.max_epochs=1"]
    )
    hypermodel = tune.DeepwaveHyperModel(cfg, tmp_path, {}, verbose=0)
    with pytest.raises(ConfigError, match="needs tune.max_epochs >= 2"):
        tune.make_tuner(cfg, hypermodel, tmp_path)


def test_isolation_is_process_by_default_and_checked(tiny_cfg):
    assert tiny_cfg.tune.isolation == "process"
    assert load_config(None, ["tune.isolation='inline'"]).tune.isolation == "inline"
    with pytest.raises(
        ConfigError, match=r"tune.isolation='thread' is not one of \('process', 'inline'\)"
    ):
        load_config(None, ["tune.isolation='thread'"])


def test_trial_process_exit_is_described():
    assert tune._describe_exit(-signal.SIGKILL) == "was killed by SIGKILL (out of memory?)"
    assert tune._describe_exit(-signal.SIGTERM) == "was killed by SIGTERM"
    assert tune._describe_exit(3) == "exited with code 3"


def _trial_processes(run_dir: Path) -> list[int]:
    """PIDs of live trial child processes of the search in `run_dir`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        if tune.TRIAL_SPEC_FLAG.encode() in args and str(run_dir).encode() in b" ".join(args):
            pids.append(int(cmdline.parent.name))
    return pids


def _trial_states(tuner_dir: Path) -> dict[str, str]:
    states = {}
    for path in tuner_dir.glob("trial_*/trial.json"):
        try:
            states[path.parent.name] = json.loads(path.read_text())["status"]
        except (json.JSONDecodeError, KeyError):
            pass  # being written
    return states


@pytest.fixture(scope="module")
def resumed_search(sample_records, tmp_path_factory):
    """Start a 3-trial search in a subprocess, kill it during the second trial, resume in-process.

    Process isolation: the kill lands while the second trial's child process trains; that child
    must die with the search (PDEATHSIG) instead of finishing the trial on its own.
    """
    run_dir = tmp_path_factory.mktemp("tune") / "search"
    cmd = [
        sys.executable,
        "-m",
        "deepwave_tf.tune",
        "--records",
        str(sample_records),
        "--run-dir",
        str(run_dir),
        "--config",
        str(REPO / "configs" / "tiny.toml"),
    ]
    for item in FAST:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    tuner_dir = run_dir / tune.TUNER_DIR
    try:
        while "COMPLETED" not in _trial_states(tuner_dir).values() or not _trial_processes(run_dir):
            assert proc.poll() is None, "the search ended before it could be interrupted"
            assert time.monotonic() < deadline, "no trial completed within 300 s"
            time.sleep(0.2)
        orphans = _trial_processes(run_dir)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(orphans) == 1  # the second trial's child, training
    deadline = time.monotonic() + 10
    while _trial_processes(run_dir):  # killed with its parent (zombies have no cmdline)
        assert time.monotonic() < deadline, f"trial process {orphans} outlived the search"
        time.sleep(0.1)
    done_before = {t for t, s in _trial_states(tuner_dir).items() if s == "COMPLETED"}
    snapshot = {t: (tuner_dir / t / "trial.json").read_text() for t in done_before}
    cfg = load_config(REPO / "configs" / "tiny.toml", FAST)
    result = tune.run(cfg, sample_records, run_dir, verbose=0)
    return run_dir, done_before, snapshot, result


def test_search_resumes_without_repeating_finished_trials(resumed_search):
    run_dir, done_before, snapshot, result = resumed_search
    assert 1 <= len(done_before) < 3
    states = _trial_states(run_dir / tune.TUNER_DIR)
    assert sorted(states.values()) == ["COMPLETED"] * 3
    for trial, text in snapshot.items():  # finished before the kill: not run again
        assert (run_dir / tune.TUNER_DIR / trial / "trial.json").read_text() == text
    rows = pd.read_csv(run_dir / tune.TRIALS_CSV)
    assert len(rows) == 3 and set(rows.status) == {"COMPLETED"}
    assert rows.val_score.between(0, 1).all()
    assert result.rows[0]["trial"] == rows.trial.astype(str).str.zfill(1).iloc[0]
    # only the trials left after the kill ran (each in its own process) when resumed
    ran = sorted(f"trial_{t}" for t in result.tuner.trial_processes)
    assert ran == sorted(set(states) - done_before)


def test_search_writes_hparams_for_every_trial(resumed_search):
    run_dir, *_ = resumed_search
    trial_dirs = sorted(p.name for p in (run_dir / "tb").iterdir() if p.is_dir())
    assert len(trial_dirs) == 3
    for name in trial_dirs:
        events = list((run_dir / "tb" / name / "execution0").rglob("events.out.tfevents.*"))
        assert events, f"no TensorBoard events for trial {name}"


def test_best_toml_is_the_best_trial_and_trains_with_fit(resumed_search, sample_records, tmp_path):
    run_dir, _, _, result = resumed_search
    best_cfg = load_config(run_dir / tune.BEST_TOML)  # loads unchanged
    assert best_cfg == result.best_config
    best_score = min(r["val_score"] for r in result.rows)
    assert f"val_score = {best_score:.4f}" in (run_dir / tune.BEST_TOML).read_text()
    code = fit.main(
        [
            "--records",
            str(sample_records),
            "--run-dir",
            str(tmp_path / "best"),
            "--config",
            str(run_dir / tune.BEST_TOML),
            "--set",
            "train.epochs=1",
            "--set",
            "train.steps_per_epoch=2",
            "--set",
            "train.validation_steps=1",
        ]
    )
    assert code == 0
    assert (tmp_path / "best" / "model.keras").is_file()


def test_process_trials_report_what_inline_trials_report(resumed_search, sample_records, tmp_path):
    """Same metric names per trial in both modes; the score is the best epoch's val_score."""
    run_dir, _, _, result = resumed_search
    cfg = load_config(
        REPO / "configs" / "tiny.toml", [*FAST, "tune.max_trials=1", "tune.isolation='inline'"]
    )
    inline = tune.run(cfg, sample_records, tmp_path / "inline", verbose=0)
    assert inline.tuner.trial_processes == {}  # trained here, not in a child
    (inline_trial,) = inline.tuner.oracle.trials.values()
    inline_keys = set(inline_trial.metrics.metrics)
    assert {"val_score", "val_auc", "loss", "val_loss"} <= inline_keys
    trials = result.tuner.oracle.trials
    assert len(trials) == 3
    for trial in trials.values():
        assert set(trial.metrics.metrics) == inline_keys, trial.trial_id
        trial_dir = run_dir / tune.TUNER_DIR / f"trial_{trial.trial_id}"
        child = json.loads((trial_dir / "execution0_result.json").read_text())
        assert trial.score == pytest.approx(min(child["history"]["val_score"]))
        assert child["peak_rss_mb"] > 100 and child["epochs"] == [0]
        assert (trial_dir / "checkpoint.weights.h5").is_file()
        assert (trial_dir / "build_config.json").is_file()


def test_failing_trial_process_fails_its_trial_with_the_child_error(
    sample_records, tmp_path, monkeypatch, capfd
):
    """Records that vanish after the search started: the child fails, the parent reports it."""
    records = tmp_path / "records"
    shutil.copytree(sample_records, records)
    make_tuner = tune.make_tuner

    def make_tuner_then_remove_records(*args, **kwargs):
        tuner = make_tuner(*args, **kwargs)
        shutil.rmtree(records)
        return tuner

    monkeypatch.setattr(tune, "make_tuner", make_tuner_then_remove_records)
    cfg = load_config(REPO / "configs" / "tiny.toml", [*FAST, "tune.max_trials=1"])
    run_dir = tmp_path / "search"
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="no trial completed") as info:
        tune.run(cfg, records, run_dir, verbose=0)
    assert time.monotonic() - started < 120  # never hangs
    assert _trial_states(run_dir / tune.TUNER_DIR) == {"trial_0": "FAILED"}
    message = str(info.value)
    child_error = f"ManifestError: records directory {records.resolve()} does not exist"
    assert "TrialProcessError: trial 0: the trial process exited with code 1" in message
    assert f"error: trial 0: {child_error}" in message  # the child's last stderr line
    # the trial's own record holds the same message, and the child's stderr reached ours
    trial = json.loads((run_dir / tune.TUNER_DIR / "trial_0" / "trial.json").read_text())
    assert f"error: trial 0: {child_error}" in trial["message"]
    assert f"error: trial 0: {child_error}" in capfd.readouterr().err
