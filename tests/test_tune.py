"""tune: search space -> config, a 3-trial search that is killed and resumed, best.toml trains."""

from __future__ import annotations

import json
import os
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
    """Start a 3-trial search in a subprocess, kill it after the first trial, resume in-process."""
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
        while "COMPLETED" not in _trial_states(tuner_dir).values():
            assert proc.poll() is None, "the search ended before it could be interrupted"
            assert time.monotonic() < deadline, "no trial completed within 300 s"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
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
