"""Score the challenge test set into `submission.csv`, and check any submission file.

    python -m deepwave_tf.submit --model EXPORT --data DIR --out submission.csv [--fill VALUE]
                                 [--config FILE] [--set export.KEY=VALUE]
    python -m deepwave_tf.submit --check submission.csv [--data DIR]

Scoring reads `DIR/test.csv` (`id,path`, paths relative to DIR), decodes and
scores every clip through the export (`serving.score_files`: a tf.data
pipeline of parallel decodes batched to `serving_default`) and writes
`id,fake,real` in `test.csv` order. A clip longer than the export's window
(`features.clip_seconds`; the challenge's clips are exactly 5 s) is scored in
windows and combined as `predict` does (`serving` module docstring), with
`export.window_hop_seconds` / `export.aggregate` from `--set`, the
`[export]` section of `--config FILE`, or the export's own config, in that
order.

Before anything is scored, every path of test.csv is checked (exists, is a
readable non-empty file). Any that fails is listed with its id, and without
`--fill` nothing is scored: the submission would have holes. With `--fill
VALUE` the other clips are scored and VALUE is written for those.

A clip that cannot be decoded is found while scoring; all of them are
reported together at the end, with id and reason. Without `--fill` the
submission is then NOT written, but the scores of every other clip are saved
next to it in `OUT.partial.json` (keyed by the export, the window settings
and each file's size and mtime): a rerun with `--fill VALUE`, or after fixing
the files, reuses them and decodes only new or changed clips. The partial
file is removed once the submission is written.

Exit codes: 0 written, 1 refused (unreadable clips without `--fill`) or
`--check` found problems, 2 bad input (a missing test.csv or column, an
unusable model or config).

`--check` validates a submission as the challenge does: columns exactly
`id,fake,real` in that order, no NaN or empty values, numbers in [0, 1], no
duplicate ids and, with `--data`, every id of test.csv exactly once and no
other ids. Every problem gets its own message.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepwave_tf import cli
from deepwave_tf.metrics import LABEL_KEYS

TEST_CSV = "test.csv"
COLUMNS = ("id", *LABEL_KEYS)
MAX_LISTED = 5  # ids quoted per problem message
PARTIAL_SUFFIX = ".partial.json"
PARTIAL_FORMAT = "deepwave_tf-partial-scores-1"
CONTEXT = "when scoring with a trained model"


class SubmitError(ValueError):
    """Input that makes scoring impossible (missing test.csv, a missing column, ...)."""


@dataclasses.dataclass
class SubmitResult:
    out: Path | None  # None when the submission was refused
    ids: list[str]
    probs: dict[str, list[float]]  # label -> per id, NaN where unreadable and not filled
    errors: list[tuple[str, str, str]]  # (id, path, reason)
    filled: int
    exit_code: int


# --------------------------------------------------------------------------- #
# test.csv
# --------------------------------------------------------------------------- #
def read_test_csv(data_dir: str | Path) -> list[tuple[str, Path]]:
    """`(id, absolute path)` rows of `data_dir/test.csv`, in file order.

    Raises:
        SubmitError: missing file, a missing `id`/`path` column (named), an
            empty table, empty or duplicate ids.
    """
    data_dir = Path(data_dir)
    path = data_dir / TEST_CSV
    if not path.is_file():
        raise SubmitError(
            f"{path} not found: --data must be the challenge directory holding {TEST_CSV}"
        )
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("id", "path") if c not in header]
        if missing:
            raise SubmitError(
                f"{path} has no {' and no '.join(repr(c) for c in missing)} column "
                f"(columns: {', '.join(header) or 'none'}; expected id,path)"
            )
        rows = list(reader)
    if not rows:
        raise SubmitError(f"{path} has no rows")
    seen: dict[str, int] = {}
    out = []
    for line, row in enumerate(rows, start=2):
        clip_id = (row["id"] or "").strip()
        if not clip_id:
            raise SubmitError(f"{path} line {line}: empty id")
        if clip_id in seen:
            raise SubmitError(f"{path} line {line}: id {clip_id} repeats line {seen[clip_id]}")
        seen[clip_id] = line
        out.append((clip_id, data_dir / (row["path"] or "").strip()))
    return out


# --------------------------------------------------------------------------- #
# Scoring
# --------------------------------------------------------------------------- #
def check_paths(rows: Sequence[tuple[str, Path]]) -> list[tuple[str, str, str]]:
    """`(id, path, reason)` of every row whose path cannot be an audio file (`audio.path_problem`)."""
    from deepwave_tf import audio

    out = []
    for clip_id, path in rows:
        reason = audio.path_problem(path)
        if reason:
            out.append((clip_id, str(path), reason))
    return out


def score_test_set(
    model_path: str | Path,
    data_dir: str | Path,
    *,
    batch_size: int = 32,
    progress: bool = True,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
):
    """Score every clip of `data_dir/test.csv` (all paths are checked first).

    Args:
        config, overrides: `--config FILE` ([export] section) and `--set
            export.KEY=VALUE` on top of the export's own config.

    Returns:
        `(ids, scores, model)`: ids in test.csv order, one `serving.FileScore`
        per id (with `.error` for clips that could not be decoded), and the
        loaded export.

    Raises:
        SubmitError: paths that are missing or unreadable (all of them named,
            before anything is scored).
    """
    from deepwave_tf import serving

    rows = read_test_csv(data_dir)
    missing = check_paths(rows)
    if missing:
        raise SubmitError(
            f"{len(missing)} of {len(rows)} test clips are missing or unreadable; "
            "nothing was scored:\n  " + "\n  ".join(f"{i} ({p}): {r}" for i, p, r in missing)
        )
    model = serving.load_export(model_path)
    export_cfg = resolve_export_config(model, config, overrides)
    scores = serving.score_files(
        model,
        [p for _, p in rows],
        batch_size=batch_size,
        hop_seconds=export_cfg.window_hop_seconds,
        how=export_cfg.aggregate,
        progress=progress,
        desc="test clips",
    )
    return [i for i, _ in rows], scores, model


def resolve_export_config(model, config: str | Path | None, overrides: Sequence[str]):
    """The `ExportConfig` to score with: the export's own, then `config`'s [export], then `overrides`."""
    from deepwave_tf.config import load_config

    base = (model.metadata["config"], str(model.path))
    cfg = load_config(config, overrides, base=base, sections=("export",), context=CONTEXT)
    return cfg.export


def partial_path(out: str | Path) -> Path:
    """Where scores of a refused submission wait for the rerun: `OUT.partial.json`."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _partial_key(model, export_cfg) -> dict[str, Any]:
    """What saved scores depend on besides the files: the export and the window settings."""
    meta = (Path(model.path) / "assets" / "deepwave.json").read_bytes()
    return {
        "format": PARTIAL_FORMAT,
        "model": str(Path(model.path).resolve()),
        "metadata_sha256": hashlib.sha256(meta).hexdigest()[:16],
        "window_hop_seconds": export_cfg.window_hop_seconds,
        "aggregate": export_cfg.aggregate,
    }


def _file_stamp(path: str | Path) -> list[int] | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def read_partial(path: Path, key: dict[str, Any], rows: Sequence[tuple[str, Path]]):
    """Saved results still valid for `rows`: `{id: (fake, real) or error text}`.

    A clip's result counts only when the key matches and its file has the
    same path, size and mtime as when it was scored.
    """
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if saved.get("key") != key:
        return {}
    clips = saved.get("clips", {})
    out: dict[str, tuple[float, float] | str] = {}
    for clip_id, clip_path in rows:
        entry = clips.get(clip_id)
        if entry is None or entry.get("path") != str(clip_path):
            continue
        if entry.get("stamp") != _file_stamp(clip_path):
            continue
        out[clip_id] = entry["error"] if entry.get("error") else (entry["fake"], entry["real"])
    return out


def write_partial(path: Path, key: dict[str, Any], results: dict[str, Any], rows) -> None:
    """Save `results` (`{id: (fake, real) or error text}`) for a rerun (see `read_partial`)."""
    from deepwave_tf.records import write_json_atomic

    paths = dict(rows)
    clips = {}
    for clip_id, result in results.items():
        entry: dict[str, Any] = {
            "path": str(paths[clip_id]),
            "stamp": _file_stamp(paths[clip_id]),
        }
        if isinstance(result, str):
            entry["error"] = result
        else:
            entry["fake"], entry["real"] = float(result[0]), float(result[1])
        clips[clip_id] = entry
    write_json_atomic(path, {"key": key, "clips": clips})


def run(
    model_path: str | Path,
    data_dir: str | Path,
    out: str | Path,
    *,
    fill: float | None = None,
    batch_size: int = 32,
    progress: bool = True,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> SubmitResult:
    """Write the submission for `data_dir/test.csv` (see the module docstring).

    Args:
        model_path: export directory (or a run / export dir: newest export).
        data_dir: challenge directory with `test.csv`.
        out: submission csv to write.
        fill: probability written for unreadable clips; None = refuse to write
            a submission with holes.
        batch_size: clips per SavedModel call.
        config, overrides: `--config FILE` ([export] section) and `--set
            export.KEY=VALUE` on top of the export's own config.

    Returns:
        `SubmitResult` (`exit_code` 0 written, 1 refused).
    """
    from deepwave_tf import serving

    if fill is not None and not 0.0 <= fill <= 1.0:
        raise SubmitError(f"--fill must be a probability in [0, 1], got {fill}")
    out = Path(out)
    rows = read_test_csv(data_dir)
    ids = [i for i, _ in rows]
    missing = check_paths(rows)
    for clip_id, path, reason in missing:
        print(f"unreadable: {clip_id} ({path}): {reason}", file=sys.stderr)
    if missing and fill is None:
        print(
            f"error: {len(missing)} of {cli.plural(len(ids), 'test clip')} are missing or "
            f"unreadable (listed above); nothing was scored and {out} was not written. "
            "Fix the paths, or pass --fill VALUE to score the others and write VALUE for these.",
            file=sys.stderr,
        )
        nan = {k: [math.nan] * len(ids) for k in LABEL_KEYS}
        return SubmitResult(None, ids, nan, missing, 0, 1)

    model = serving.load_export(model_path)
    export_cfg = resolve_export_config(model, config, overrides)
    key = _partial_key(model, export_cfg)
    saved_at = partial_path(out)
    results: dict[str, Any] = read_partial(saved_at, key, rows)
    if results:
        print(
            f"reusing saved results of {cli.plural(len(results), 'clip')} from {saved_at}",
            file=sys.stderr,
        )
    skip = {m[0] for m in missing}
    todo = [(i, p) for i, p in rows if i not in skip and i not in results]
    scores = []
    if todo:
        scores = serving.score_files(
            model,
            [p for _, p in todo],
            batch_size=batch_size,
            hop_seconds=export_cfg.window_hop_seconds,
            how=export_cfg.aggregate,
            progress=progress,
            desc="test clips",
        )
    for (clip_id, _), s in zip(todo, scores):
        results[clip_id] = (s.fake, s.real) if s.ok else s.error
        if s.warning:
            print(f"warning: {clip_id}: {s.warning}", file=sys.stderr)

    paths = dict(rows)
    decode_errors = [(i, str(paths[i]), results[i]) for i in ids if isinstance(results.get(i), str)]
    for clip_id, path, reason in decode_errors:
        print(f"unreadable: {clip_id} ({path}): {reason}", file=sys.stderr)
    order = {i: n for n, i in enumerate(ids)}
    errors = sorted(missing + decode_errors, key=lambda e: order[e[0]])
    probs = {
        k: [results[i][j] if isinstance(results.get(i), tuple) else math.nan for i in ids]
        for j, k in enumerate(LABEL_KEYS)
    }
    if errors and fill is None:
        write_partial(saved_at, key, results, rows)
        good = sum(isinstance(r, tuple) for r in results.values())
        print(
            f"error: {len(errors)} of {cli.plural(len(ids), 'test clip')} could not be read; "
            f"not writing {out} with holes. Fix the files, or pass --fill VALUE to "
            f"write VALUE for them. The scores of the other {good} are saved in {saved_at}: "
            "the rerun decodes only new or changed clips.",
            file=sys.stderr,
        )
        return SubmitResult(None, ids, probs, errors, 0, 1)
    if errors:
        bad = {e[0] for e in errors}
        for k in LABEL_KEYS:
            probs[k] = [fill if i in bad else p for i, p in zip(ids, probs[k])]
        print(
            f"warning: filled {cli.plural(len(errors), 'unreadable clip')} with {fill}",
            file=sys.stderr,
        )
    write_submission(out, ids, probs)
    saved_at.unlink(missing_ok=True)
    return SubmitResult(out, ids, probs, errors, len(errors), 0)


def write_submission(out: Path, ids: Sequence[str], probs: dict[str, Sequence[float]]) -> None:
    """`id,fake,real` rows, written atomically (temp file + rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for j, clip_id in enumerate(ids):
            w.writerow([clip_id, *(repr(float(probs[k][j])) for k in LABEL_KEYS)])
    tmp.replace(out)


# --------------------------------------------------------------------------- #
# --check
# --------------------------------------------------------------------------- #
def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


def check_submission(path: str | Path, data_dir: str | Path | None = None) -> list[str]:
    """Every problem of a submission file, one message each (empty list = valid).

    Args:
        path: submission csv.
        data_dir: challenge directory; with it, the ids are checked against
            its test.csv (each exactly once, nothing else).
    """
    path = Path(path)
    if not path.is_file():
        return [f"{path}: file not found"]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        return [f"{path}: not a readable CSV file ({e})"]
    if not table:
        return [f"{path}: empty file (expected the header id,fake,real)"]
    header, rows = [c.strip() for c in table[0]], table[1:]
    problems: list[str] = []
    expected = list(COLUMNS)
    if header != expected:
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        if missing:
            problems.append(
                f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header)})"
            )
        if extra:
            problems.append(
                f"{path}: unexpected column(s) {', '.join(extra)} (expected exactly id,fake,real)"
            )
        if not missing and not extra:
            problems.append(
                f"{path}: columns are in the order {','.join(header)}; expected id,fake,real in that order"
            )
        if missing:
            return problems  # rows cannot be read without the columns
    col = {c: header.index(c) for c in expected}
    if not rows:
        problems.append(f"{path}: no rows (header only)")

    ids: list[str] = []
    counts: dict[str, int] = {}
    empty: dict[str, list[str]] = {k: [] for k in LABEL_KEYS}
    nan: dict[str, list[str]] = {k: [] for k in LABEL_KEYS}
    text: dict[str, list[str]] = {k: [] for k in LABEL_KEYS}
    out_of_range: dict[str, list[str]] = {k: [] for k in LABEL_KEYS}
    short: list[str] = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            short.append(f"line {line} ({len(row)} fields)")
            continue
        clip_id = row[col["id"]].strip()
        where = f"line {line} ({clip_id or 'no id'})"
        if clip_id:
            ids.append(clip_id)
            counts[clip_id] = counts.get(clip_id, 0) + 1
        else:
            problems.append(f"{path}: {where}: empty id")
        for k in LABEL_KEYS:
            cell = row[col[k]].strip()
            if not cell:
                empty[k].append(where)
                continue
            try:
                value = float(cell)
            except ValueError:
                text[k].append(f"{where}: {cell!r}")
                continue
            if math.isnan(value):
                nan[k].append(where)
            elif not 0.0 <= value <= 1.0:
                out_of_range[k].append(f"{where}: {cell}")
    if short:
        problems.append(
            f"{path}: {len(short)} rows do not have {len(header)} fields: {_some(short)}"
        )
    for k in LABEL_KEYS:
        if empty[k]:
            problems.append(
                f"{path}: column {k} has {len(empty[k])} empty values: {_some(empty[k])}"
            )
        if nan[k]:
            problems.append(f"{path}: column {k} has {len(nan[k])} NaN values: {_some(nan[k])}")
        if text[k]:
            problems.append(
                f"{path}: column {k} has {len(text[k])} non-numeric values: {_some(text[k])}"
            )
        if out_of_range[k]:
            problems.append(
                f"{path}: column {k} has {len(out_of_range[k])} values outside [0, 1]: "
                f"{_some(out_of_range[k])}"
            )
    dupes = [f"{i} ({n} times)" for i, n in counts.items() if n > 1]
    if dupes:
        problems.append(f"{path}: {len(dupes)} ids appear more than once: {_some(dupes)}")
    if data_dir is not None:
        try:
            expected_ids = [i for i, _ in read_test_csv(data_dir)]
        except SubmitError as e:
            return problems + [str(e)]
        wanted = set(expected_ids)
        missing_ids = [i for i in expected_ids if i not in counts]
        extra_ids = [i for i in counts if i not in wanted]
        if missing_ids:
            problems.append(
                f"{path}: {len(missing_ids)} ids of {Path(data_dir) / TEST_CSV} are missing: "
                f"{_some(missing_ids)}"
            )
        if extra_ids:
            problems.append(
                f"{path}: {len(extra_ids)} ids are not in {Path(data_dir) / TEST_CSV}: {_some(extra_ids)}"
            )
    return problems


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.submit",
        description="Write the challenge submission (id,fake,real) or --check one.",
    )
    parser.add_argument("--model", type=Path, help="export directory (or run dir: newest export)")
    parser.add_argument("--data", type=Path, help="challenge directory holding test.csv")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    parser.add_argument(
        "--fill",
        type=float,
        default=None,
        metavar="VALUE",
        help="probability to write for clips that cannot be read (default: refuse to write)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="clips per SavedModel call")
    parser.add_argument(
        "--check", type=Path, metavar="FILE", help="validate FILE instead of scoring"
    )
    parser.add_argument("--no-progress", action="store_true")
    cli.add_config_arguments(parser, sections=("export",), default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check is not None:
        problems = check_submission(args.check, args.data)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if problems:
            print(
                f"{args.check}: INVALID ({cli.plural(len(problems), 'problem')})", file=sys.stderr
            )
            return 1
        scope = f"against {args.data / TEST_CSV}" if args.data else "(ids not checked: no --data)"
        print(f"{args.check}: valid {scope}")
        return 0
    if args.model is None or args.data is None:
        parser.error("--model and --data are required (or use --check FILE)")
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")

    cli.quiet_tensorflow()
    from deepwave_tf.config import ConfigError, load_config
    from deepwave_tf.serving import ExportError

    try:
        # Check --config/--set now (on the defaults): a typo should not wait for the model.
        load_config(args.config, args.overrides, sections=("export",), context=CONTEXT)
        result = run(
            args.model,
            args.data,
            args.out,
            fill=args.fill,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            config=args.config,
            overrides=args.overrides,
        )
    except (SubmitError, ExportError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.out is not None:
        print(
            f"wrote {result.out}: {len(result.ids)} rows (id,fake,real)"
            + (f", {result.filled} filled with {args.fill}" if result.filled else "")
        )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
