"""cli.py: shared --config/--set arguments, quiet TensorFlow, wording; CLIs start without TensorFlow."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from deepwave_tf import cli
from deepwave_tf.config import CONFIG_DIR, Config, ConfigError, load_config

REPO = CONFIG_DIR.parent
CLI_MODULES = ("prep", "fit", "tune", "export", "predict", "submit", "evaluate")


def parse(argv, **kwargs):
    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser, **kwargs)
    return parser.parse_args(argv)


def test_stage_config_arguments_default_to_default_toml():
    args = parse([])
    assert args.config is None and not cli.config_given(args)
    assert cli.load_args_config(args) == load_config(CONFIG_DIR / "default.toml")
    args = parse(["--config", str(CONFIG_DIR / "tiny.toml"), "--set", "train.epochs=1"])
    assert cli.config_given(args)
    cfg = cli.load_args_config(args, extra_overrides=["train.seed=7"])
    assert cfg == load_config(CONFIG_DIR / "tiny.toml", ["train.epochs=1", "train.seed=7"])
    with pytest.raises(ConfigError, match="'train.epochz' given with --set"):
        cli.load_args_config(parse(["--set", "train.epochz=1"]))


def test_model_commands_change_only_their_sections(tmp_path):
    base = (load_config(None, ["model.lstm_units=8"]).to_dict(), "export/deepwave.json")
    args = parse(["--set", "export.aggregate=mean"], sections=("export",), default=None)
    cfg = cli.load_args_config(args, base=base)
    assert cfg.model.lstm_units == 8 and cfg.export.aggregate == "mean"
    assert cli.load_args_config(parse([], sections=("export",), default=None)) == Config()
    args = parse(["--set", "model.lstm_units=3"], sections=("export",), default=None)
    with pytest.raises(ConfigError, match=r"only export\.\* can be changed for a trained model"):
        cli.load_args_config(args, base=base)


def test_quiet_tensorflow_keeps_the_users_level():
    env = {}
    cli.quiet_tensorflow(env)
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "2"}
    env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    cli.quiet_tensorflow(env)
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "0"}


def test_plural():
    assert cli.plural(1, "file") == "1 file"
    assert cli.plural(0, "file") == "0 files"
    assert cli.plural(3, "clip") == "3 clips"
    assert cli.plural(2, "child", "children") == "2 children"


def _python(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def test_cli_modules_import_without_tensorflow():
    """`python -m deepwave_tf.X --help` must not pay for a TensorFlow import (issue 12, item 6)."""
    modules = ", ".join(f"deepwave_tf.{m}" for m in CLI_MODULES)
    code = f"import sys, {modules}; print(sorted({{'tensorflow', 'keras'}} & set(sys.modules)))"
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_fit_help_and_usage_errors_answer_without_tensorflow():
    proc = _python("-m", "deepwave_tf.fit", "--help")
    assert proc.returncode == 0 and "--overwrite" in proc.stdout and "--config FILE" in proc.stdout
    assert proc.stderr == ""
    proc = _python("-m", "deepwave_tf.predict", "--help")
    assert proc.returncode == 0 and "--set export.KEY=VALUE" in proc.stdout
    proc = _python(
        "-m", "deepwave_tf.tune", "--records", "r", "--run-dir", "d", "--set", "tune.x=1"
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: unknown config key 'tune.x' given with --set")


def test_text_cli_config_through_the_helper():
    """The text model's CLIs can adopt the helper: `root=TextConfig`, its own default file."""
    from deepwave_tf.text.config import TextConfig

    text_toml = CONFIG_DIR / "text.toml"
    args = parse(["--set", "train.epochs=1"], default=text_toml)
    cfg = cli.load_args_config(args, root=TextConfig)
    assert isinstance(cfg, TextConfig) and cfg.train.epochs == 1
    with pytest.raises(ConfigError, match="'model.lstm_unit' given with --set"):
        cli.load_args_config(
            parse(["--set", "model.lstm_unit=4"], default=text_toml), root=TextConfig
        )
