"""Distributed training and tuning on loopback: `fit --strategy multiworker` and KerasTuner chief/workers.

The two end-to-end tests start real processes on 127.0.0.1 (free ports) as the README
tells users to on N machines: two `fit` workers with TF_CONFIG (equal final weights,
disjoint shard files, only the chief writes, kill + restart resumes from
BackupAndRestore), and one `tune` chief with two tuner workers (every trial runs
exactly once, `best.toml` trains).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepwave_tf import fit
from deepwave_tf.config import ConfigError

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.toml"
FIT_FAST = ["train.steps_per_epoch=1", "train.validation_steps=1", "train.tensorboard_images=1"]


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def start_fit_worker(
    index: int, ports: list[int], records: Path, run_dir: Path, log: Path, overrides: list[str]
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "deepwave_tf.fit", "--records", str(records)]
    cmd += ["--config", str(TINY), "--run-dir", str(run_dir), "--strategy", "multiworker"]
    for o in overrides:
        cmd += ["--set", o]
    return subprocess.Popen(
        cmd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=child_env(TF_CONFIG=tf_config(ports, index)),
        cwd=REPO,
    )


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc, log in zip(procs, logs):
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"timed out after {timeout:.0f} s; {log}:\n{log.read_text()[-3000:]}")
        assert code == 0, f"{log} (exit {code}):\n{log.read_text()[-3000:]}"


def backup_epoch(backup_dir: Path) -> int:
    """The epoch count in a BackupAndRestore dir (0 if none yet)."""
    meta = backup_dir / "training_metadata.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


WORKER_LINE = re.compile(
    r"worker (\d+) of (\d+) .*: (\d+) epoch\(s\), weights sha256 (\w+), train shards (.+)"
)


def worker_summary(log: Path) -> dict:
    """The last 'worker I of N ...' line fit prints at the end of a multi-worker run."""
    matches = WORKER_LINE.findall(log.read_text())
    assert matches, f"no worker summary in {log}:\n{log.read_text()[-3000:]}"
    index, count, epochs, digest, shards = matches[-1]
    return {
        "index": int(index),
        "count": int(count),
        "epochs": int(epochs),
        "digest": digest,
        "shards": shards.strip().split(", "),
    }


def event_pids(tb_dir: Path) -> set[int]:
    """Writer pids of the TensorBoard event files under `tb_dir` (events.out.tfevents.T.HOST.PID.N.v2)."""
    pids = set()
    for path in tb_dir.rglob("events.out.tfevents.*"):
        pids.add(int(path.name.split(".")[-3]))
    return pids


# --------------------------------------------------------------------------- #
# TF_CONFIG and shard assignment (no cluster)
# --------------------------------------------------------------------------- #
def test_worker_role_from_tf_config():
    env = {"TF_CONFIG": tf_config([1, 2, 3], 2)}
    role = fit.worker_role(env)
    assert (role.task_type, role.task_index, role.index, role.count) == ("worker", 2, 2, 3)
    assert not role.is_chief and role.write_dir(Path("r")) == Path("r/workertemp_2")
    assert fit.worker_role({"TF_CONFIG": tf_config([1, 2], 0)}).is_chief
    assert fit.worker_role({"TF_CONFIG": tf_config([1, 2], 0)}).write_dir(Path("r")) == Path("r")
    # A named chief is input worker 0 and the workers follow it.
    cluster = {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}
    chief = fit.worker_role(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})}
    )
    w1 = fit.worker_role(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    )
    assert (chief.index, chief.count, chief.is_chief) == (0, 3, True)
    assert (w1.index, w1.count, w1.is_chief) == (2, 3, False)


@pytest.mark.parametrize(
    "environ, message",
    [
        ({}, "--strategy multiworker needs TF_CONFIG on every worker"),
        ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid"),
        ({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}}'}, "TF_CONFIG is not valid .*'task'"),
        ({"TF_CONFIG": tf_config([1, 2], 2)}, r"task worker:2 is not in its cluster \(2 worker"),
        (
            {
                "TF_CONFIG": json.dumps(
                    {
                        "cluster": {"worker": ["a:1"], "ps": ["b:1"]},
                        "task": {"type": "ps", "index": 0},
                    }
                )
            },
            "fit runs only 'chief' and 'worker' tasks",
        ),
    ],
)
def test_worker_role_errors(environ, message):
    with pytest.raises(ConfigError, match=message):
        fit.worker_role(environ)


def test_fit_cli_refuses_multiworker_without_tf_config(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = fit.main(
        [
            "--records",
            str(tmp_path),
            "--run-dir",
            str(tmp_path / "run"),
            "--strategy",
            "multiworker",
        ]
    )
    assert code == 2
    assert "--strategy multiworker needs TF_CONFIG" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_worker_shards_are_disjoint_and_cover_all():
    from deepwave_tf import data

    paths = [f"s-{i}" for i in range(5)]
    parts = [data.worker_shards(paths, i, 2) for i in range(2)]
    assert parts == [["s-0", "s-2", "s-4"], ["s-1", "s-3"]]
    assert sorted(parts[0] + parts[1]) == paths


def test_fewer_shards_than_workers_is_a_clear_error(
    sample_records, tiny_cfg, tmp_path, monkeypatch
):
    from deepwave_tf.records import ManifestError

    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2, 3], 1))  # 3 workers, 2 train shards
    with pytest.raises(
        ManifestError,
        match=r"split 'train' of .* has 2 shard file\(s\) for 3 workers: .*"
        r"re-run prep with --set prep.num_shards=3",
    ):
        fit.run(tiny_cfg, sample_records, tmp_path / "run", strategy="multiworker")
    assert not (tmp_path / "run").exists()  # refused before the cluster or the run dir


def test_local_validation_score_predicts_like_model_predict(sample_records, tiny_cfg):
    """ValidationScore(local=True), used under multiworker, = model.predict, in val_ds order."""
    import numpy as np

    from deepwave_tf import data
    from deepwave_tf import model as model_lib
    from deepwave_tf.callbacks import ValidationScore
    from deepwave_tf.features import LABEL_KEYS

    model = model_lib.build_model(tiny_cfg, data.load_stats(sample_records))
    val_ds = data.make_dataset(sample_records, "val", tiny_cfg, training=False)
    scores = {}
    for local in (False, True):
        cb = ValidationScore(val_ds, local=local)
        cb.set_model(model)
        scores[local] = cb._predict()
    n = len(cb.targets())
    for key in LABEL_KEYS:
        assert scores[True][key].reshape(-1).shape == (n,)
        np.testing.assert_allclose(
            scores[True][key].reshape(-1), np.asarray(scores[False][key]).reshape(-1), atol=1e-6
        )


class _TwoWorkersAt:
    """A stand-in strategy: its SUM reduce adds this worker's value to another's."""

    def __init__(self, other_epoch: int):
        self.other = other_epoch

    def run(self, fn):
        return fn()

    def reduce(self, op, value, axis=None):
        import tensorflow as tf

        other = tf.constant([1.0, self.other, self.other**2], tf.float64)
        return value + other


@pytest.mark.parametrize("mine, other", [(1, 1), (0, 0), (1, 2), (2, 0)])
def test_same_initial_epoch_check(mine, other):
    from types import SimpleNamespace

    from deepwave_tf.callbacks import SameInitialEpoch

    check = SameInitialEpoch()
    check.set_model(SimpleNamespace(distribute_strategy=_TwoWorkersAt(other), _initial_epoch=mine))
    if mine == other:
        check.on_train_begin()
    else:
        with pytest.raises(
            RuntimeError, match=rf"resumed at different epochs \(this one at epoch {mine + 1}"
        ):
            check.on_train_begin()


# --------------------------------------------------------------------------- #
# Two fit workers on loopback: train, kill one, restart both, resume
# --------------------------------------------------------------------------- #
@pytest.mark.slow  # minutes on 2 shared cores: `make test-distributed`, bench_distributed
def test_two_workers_train_equal_weights_chief_writes_and_resume(sample_records, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [*FIT_FAST, "train.epochs=2"]
    manifest = json.loads((sample_records / "manifest.json").read_text())
    all_train = manifest["shards"]["train"]
    assert len(all_train) == 2

    # First attempt: wait until both workers have backed up epoch 1, then kill worker 1
    # mid-epoch 2; the chief is then stuck in a collective and is killed too.
    ports = free_ports(2)
    logs = [tmp_path / f"first{i}.log" for i in range(2)]
    procs = [
        start_fit_worker(i, ports, sample_records, run_dir, logs[i], overrides) for i in range(2)
    ]
    backups = [
        run_dir / "checkpoints" / "backup",
        run_dir / "workertemp_1" / "checkpoints" / "backup",
    ]
    deadline = time.monotonic() + 900  # a hang guard, not a timing check
    try:
        while min(backup_epoch(b) for b in backups) < 1:
            for proc, log in zip(procs, logs):
                assert proc.poll() is None, f"{log} ended early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no epoch backed up within 900 s"
            time.sleep(0.5)
        first_chief_pid = procs[0].pid
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [backup_epoch(b) for b in backups] == [1, 1]
    with (run_dir / fit.HISTORY).open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0"]
    # The non-chief wrote only into its scratch dir, the chief into run_dir.
    assert (run_dir / "workertemp_1" / fit.RUN_JSON).is_file()
    chief_json = json.loads((run_dir / fit.RUN_JSON).read_text())
    worker_json = json.loads((run_dir / "workertemp_1" / fit.RUN_JSON).read_text())
    assert chief_json["status"] == worker_json["status"] == "running"
    assert chief_json["worker"]["chief"] and not worker_json["worker"]["chief"]

    # Restart both with the same command: both resume at epoch 2.
    ports = free_ports(2)
    logs = [tmp_path / f"second{i}.log" for i in range(2)]
    procs = [
        start_fit_worker(i, ports, sample_records, run_dir, logs[i], overrides) for i in range(2)
    ]
    wait_all(procs, logs, timeout=900)
    chief, worker = worker_summary(logs[0]), worker_summary(logs[1])

    # Same model on both workers (bitwise: all-reduced gradients, synchronised batch norm).
    assert chief["digest"] == worker["digest"]
    # Disjoint shard files, together the whole split.
    assert (chief["index"], worker["index"], chief["count"]) == (0, 1, 2)
    assert not set(chief["shards"]) & set(worker["shards"])
    assert sorted(chief["shards"] + worker["shards"]) == sorted(all_train)
    # Resumed: the epoch counter continues (epoch 2 only, history appended, not restarted).
    assert chief["epochs"] == worker["epochs"] == 1
    for log in logs:
        assert "Epoch 2/2" in log.read_text() and "Epoch 1/2" not in log.read_text()
    with (run_dir / fit.HISTORY).open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]
    info = json.loads((run_dir / fit.RUN_JSON).read_text())
    assert info["status"] == "completed" and info["resumed"] is True
    assert info["last_epoch"] == 2 and info["weights_sha256"] == chief["digest"]
    assert info["train_shards"] == chief["shards"]

    # Only the chief's outputs remain: the worker's scratch dir is gone, and every
    # TensorBoard event file was written by a chief process (worker 0 of either attempt).
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [
            "checkpoints",
            "config.json",
            "config.toml",
            fit.HISTORY,
            fit.MODEL_FILE,
            fit.RUN_JSON,
            "tb",
        ]
    )
    assert (run_dir / "checkpoints" / fit.BEST_WEIGHTS).is_file()
    chief_pids = {first_chief_pid, procs[0].pid}
    writers = event_pids(run_dir / "tb")
    assert writers and writers <= chief_pids, (writers, chief_pids)


# --------------------------------------------------------------------------- #
# Distributed tuning: one KerasTuner chief and two workers on loopback
# --------------------------------------------------------------------------- #
TUNE_FAST = [
    "train.steps_per_epoch=1",
    "train.validation_steps=1",
    "tune.max_trials=3",
    "tune.max_epochs=1",
    "tune.algorithm='random'",
    "augment.noise_dir=''",  # synthetic bank only: each trial process builds it anew
]


def test_tuner_role_from_environment():
    from deepwave_tf import tune

    assert tune.tuner_role({}) is None
    env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}
    chief = tune.tuner_role({**env, "KERASTUNER_TUNER_ID": "chief"})
    worker = tune.tuner_role({**env, "KERASTUNER_TUNER_ID": "tuner1"})
    assert chief.is_chief and chief.oracle == "127.0.0.1:8000"
    assert not worker.is_chief and worker.tuner_id == "tuner1"
    with pytest.raises(ConfigError, match="KERASTUNER_TUNER_ID missing"):
        tune.tuner_role(env)
    with pytest.raises(ConfigError, match="KERASTUNER_ORACLE_PORT='http' is not a TCP port"):
        tune.tuner_role({**env, "KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_PORT": "http"})


@pytest.mark.slow  # minutes on 2 shared cores: `make test-distributed`, bench_distributed
def test_tune_chief_and_two_workers_run_every_trial_once(sample_records, tmp_path):
    from deepwave_tf import tune
    from deepwave_tf.config import load_config

    run_dir = tmp_path / "search"
    (port,) = free_ports(1)
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    cmd = [sys.executable, "-m", "deepwave_tf.tune", "--records", str(sample_records)]
    cmd += ["--config", str(TINY), "--run-dir", str(run_dir)]
    for o in TUNE_FAST:
        cmd += ["--set", o]
    ids = ["chief", "tuner0", "tuner1"]
    logs = [tmp_path / f"{i}.log" for i in ids]
    procs = [
        subprocess.Popen(
            cmd,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(KERASTUNER_TUNER_ID=tuner_id, **oracle),
            cwd=REPO,
        )
        for tuner_id, log in zip(ids, logs)
    ]
    wait_all(procs, logs, timeout=1200)

    # Each worker says which trials it ran; together: every trial exactly once.
    ran = {}
    for tuner_id, log in zip(ids[1:], logs[1:]):
        m = re.search(rf"{tuner_id}: ran trial\(s\) (.*); the chief", log.read_text())
        assert m, f"{log}:\n{log.read_text()[-3000:]}"
        ran[tuner_id] = [] if m.group(1) == "none" else m.group(1).split(", ")
    every = sorted(t for trials in ran.values() for t in trials)
    assert every == ["0", "1", "2"], ran
    assert all(ran.values()), f"a worker ran no trial: {ran}"  # the search was shared
    # ... and the trial's own process agrees on who ran it; the chief trained nothing.
    for tuner_id, trials in ran.items():
        for t in trials:
            result = json.loads(
                (run_dir / "tuner" / f"trial_{t}" / "execution0_result.json").read_text()
            )
            assert result["tuner_id"] == tuner_id
    assert "ran trial" not in logs[0].read_text()
    assert "serving the oracle at 127.0.0.1" in logs[0].read_text()

    # The chief wrote the results: three completed trials and a best.toml that trains.
    with (run_dir / tune.TRIALS_CSV).open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["trial"] for r in rows) == ["0", "1", "2"]
    assert {r["status"] for r in rows} == {"COMPLETED"}
    best = load_config(run_dir / tune.BEST_TOML, ["train.epochs=1", *FIT_FAST[:2]])
    fit.run(best, sample_records, tmp_path / "best_run", verbose=0)
    info = json.loads((tmp_path / "best_run" / fit.RUN_JSON).read_text())
    assert info["status"] == "completed" and info["epochs_run"] == 1
