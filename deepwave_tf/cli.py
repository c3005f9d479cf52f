"""What every `python -m deepwave_tf.X` command shares: config arguments, quiet TensorFlow, wording.

A command module stays thin and fast to start: it imports only this module,
`argparse` and `config` at the top, parses its arguments, calls
`quiet_tensorflow()` and only then imports what needs TensorFlow (inside
`main` or `run`), so `--help` and usage errors answer in about a second
instead of the 10-30 s of a TensorFlow import.

    parser = argparse.ArgumentParser(prog="python -m deepwave_tf.X")
    cli.add_config_arguments(parser)                       # a stage that owns its config
    cli.add_config_arguments(parser, sections=("export",)) # a command that uses a trained model
    args = parser.parse_args(argv)
    cli.quiet_tensorflow()
    cfg = cli.load_args_config(args)                       # errors name "in FILE" / "given with --set"

Commands that use a trained model (export, predict, submit, evaluate) start
from the model's own config and may only change the sections given here
(`export.*`: windows, aggregation, calibration settings); the other sections
describe how the model was trained.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from deepwave_tf.config import CONFIG_DIR, Config, load_config

DEFAULT_CONFIG = CONFIG_DIR / "default.toml"
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"


def quiet_tensorflow(environ: MutableMapping[str, str] = os.environ) -> None:
    """Hide TensorFlow's C++ INFO and WARNING lines unless the user chose a level.

    Without it a plain `python -m deepwave_tf.fit` prints the oneDNN and
    cpu_feature_guard notices at start and, at the end of `fit`, "Local
    rendezvous is aborting with status: OUT_OF_RANGE: End of sequence" (an
    INFO line about the normal end of a tf.data pass). TensorFlow reads the
    variable when it is first imported, so call this before that; errors
    still show. Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything.
    """
    # absl's "All log messages before absl::InitializeLog() is called are
    # written to STDERR" preamble only comes with a C++ line that passes this
    # level, so it goes with them.
    environ.setdefault(TF_LOG_ENV, "2")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    *,
    sections: Sequence[str] | None = None,
    default: Path | None = DEFAULT_CONFIG,
    note: str = "",
) -> None:
    """Add `--config FILE` and `--set SECTION.KEY=VALUE` (repeatable) to `parser`.

    Args:
        parser: the command's parser.
        sections: None for a stage that owns its whole config (prep, fit,
            tune); else the only sections the command may change, e.g.
            `("export",)` for commands that use a trained model: `--config`
            then reads only those sections of FILE, and `--set` refuses others.
        default: config file used when `--config` is not given (None: the
            defaults, or the model's own config). `args.config` stays None
            then, so a command can tell "not given" from "given".
        note: appended to the `--config` help (e.g. what `--resume` does).
    """
    if sections is None:
        shown = f"default: {_short(default)}" if default else "default: the built-in defaults"
        config_help = f"TOML config ({shown})"
        set_help = "override one config value, e.g. --set train.epochs=1 (repeatable)"
        metavar = "SECTION.KEY=VALUE"
    else:
        names = ", ".join(f"[{s}]" for s in sections)
        config_help = (
            f"TOML config: its {names} section is applied on top of the model's own config "
            "(the other sections describe training and are only checked for typos)"
        )
        keys = "|".join(sections)
        set_help = f"override one {keys} value on top of --config (repeatable)"
        metavar = f"{sections[0]}.KEY=VALUE"
    if note:
        config_help = f"{config_help}; {note}"
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help=config_help)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar=metavar, help=set_help
    )
    parser.set_defaults(config_default=default, config_sections=sections)


def config_given(args: argparse.Namespace) -> bool:
    """True when the user passed `--config` or `--set`."""
    return args.config is not None or bool(args.overrides)


def load_args_config(
    args: argparse.Namespace,
    *,
    base: tuple[dict[str, Any], str] | None = None,
    extra_overrides: Sequence[str] = (),
    context: str = "for a trained model",
    root: type = Config,
) -> Config:
    """The config of parsed `--config`/`--set` (see `config.load_config` for precedence).

    Args:
        args: parsed by a parser that `add_config_arguments` set up.
        base: `(raw mapping, source)` to start from (a model's own config);
            None = `--config` or the parser's default file.
        extra_overrides: `section.key=value` from the command's own flags,
            applied after `--set` (they are the most specific).
        context: when the section restriction applies, for its message.
        root: the top-level config class (`text.config.TextConfig` for the text CLIs).
    """
    path = args.config
    if path is None and base is None:
        path = args.config_default
    return load_config(
        path,
        [*args.overrides, *extra_overrides],
        base=base,
        sections=args.config_sections,
        context=context,
        root=root,
    )


def plural(n: int, word: str, words: str | None = None) -> str:
    """`plural(1, "file")` -> "1 file"; `plural(3, "file")` -> "3 files"."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _short(path: Path) -> str:
    """`configs/default.toml` rather than the absolute path of the checkout."""
    try:
        return str(path.relative_to(CONFIG_DIR.parent))
    except ValueError:
        return str(path)
