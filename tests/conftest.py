"""Shared fixtures: the embedded sample, the tiny config, and records prepped from the sample once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def bare_tensorflow():
    """`run(script, *args, cwd=DIR, blocked=(...))` -> the JSON of the script's last stdout line.

    Runs `python -c script args...` in a fresh process where keras, tensorflow_io and
    deepwave_tf cannot be imported (a stub package of each name raises ImportError):
    plain TensorFlow only, as a TF Serving user has. Fails the test with the process's
    stderr when it exits non-zero.
    """

    def run(script: str, *args: str, cwd: Path, blocked=("keras", "tensorflow_io", "deepwave_tf")):
        stubs = Path(cwd) / "blocked"
        for name in blocked:
            (stubs / name).mkdir(parents=True, exist_ok=True)
            (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
        env = {**os.environ, "PYTHONPATH": str(stubs), "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(
            [sys.executable, "-c", script, *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def tiny_cfg():
    from deepwave_tf.config import load_config

    return load_config(REPO / "configs" / "tiny.toml")


@pytest.fixture(scope="session")
def sample_records(tmp_path_factory, tiny_cfg) -> Path:
    """`prep.run` over the whole embedded sample (train/val/test), once per session. Read-only!"""
    from deepwave_tf import prep

    out = tmp_path_factory.mktemp("records") / "sample"
    result = prep.run(tiny_cfg, SAMPLE_DIR, out, progress=False)
    assert result.exit_code == 0, result
    return out


# --------------------------------------------------------------------------- #
# The waveform branch (deepwave_tf.sincnet)
# --------------------------------------------------------------------------- #
WAVE_TINY = [  # tiny.toml with a small waveform branch beside the stats branch
    "model.branches=['waveform', 'stats']",
    "augment.enabled=false",
    "augment.val_mixing=false",
    "model.waveform_filters=8",
    "model.waveform_kernel_samples=33",
    "model.waveform_channels=[4, 8]",
    "model.waveform_stride=4",
    "prep.store_waveform=true",
]


@pytest.fixture(scope="session")
def wave_overrides() -> list[str]:
    """The `--set` overrides that turn tiny.toml into `wave_cfg` (tests add their own after them)."""
    return list(WAVE_TINY)


@pytest.fixture(scope="session")
def wave_cfg():
    from deepwave_tf.config import load_config

    return load_config(REPO / "configs" / "tiny.toml", WAVE_TINY)


@pytest.fixture(scope="session")
def waveform_records(tmp_path_factory, wave_cfg) -> Path:
    """The embedded sample's train/val split prepped with the waveform stored, once. Read-only!"""
    from deepwave_tf import prep

    out = tmp_path_factory.mktemp("records") / "sample_waveform"
    result = prep.run(wave_cfg, SAMPLE_DIR, out, progress=False, splits=("train",))
    assert result.exit_code == 0, result
    return out


# --------------------------------------------------------------------------- #
# Text model (deepwave_tf.text)
# --------------------------------------------------------------------------- #
TEXT_SAMPLE_DIR = REPO / "data" / "text_sample"
TEXT_TINY = [
    "train.epochs=2",
    "model.lstm_units=4",
    "model.sequence_length_tokens=16",
    "data.batch_size=32",
]


@pytest.fixture(scope="session")
def text_tiny_cfg():
    """configs/text.toml shrunk for tests: a 4-unit LSTM, 16 tokens, 2 epochs."""
    from deepwave_tf.text.config import DEFAULT_CONFIG, load_text_config

    return load_text_config(DEFAULT_CONFIG, TEXT_TINY)


@pytest.fixture(scope="session")
def text_small_csv(tmp_path_factory) -> Path:
    """The first 120 rows of data/text_sample/train.csv (both classes)."""
    lines = (TEXT_SAMPLE_DIR / "train.csv").read_text(encoding="utf-8").splitlines()
    out = tmp_path_factory.mktemp("text_data") / "small.csv"
    out.write_text("\n".join(lines[:121]) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def text_run(tmp_path_factory, text_tiny_cfg, text_small_csv):
    """`text.fit.run` then `text.export.run` once per session: (run_dir, export_dir). Read-only!"""
    from deepwave_tf.text import export, fit

    run_dir = tmp_path_factory.mktemp("text_run") / "run"
    fit.run(text_tiny_cfg, text_small_csv, TEXT_SAMPLE_DIR / "vectors.vec", run_dir, verbose=0)
    export_dir = export.run(run_dir, verbose=False)
    return run_dir, export_dir
