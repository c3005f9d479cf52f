"""Shared fixtures: the embedded sample, the tiny config, and records prepped from the sample once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "data" / "sample"


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
