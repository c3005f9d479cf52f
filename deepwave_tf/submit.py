"""Score the challenge test set into `submission.csv`, and check any submission file.

    python -m deepwave_tf.submit --model EXPORT --data DIR --out submission.csv [--fill VALUE]
    python -m deepwave_tf.submit --check submission.csv [--data DIR]

Scoring reads `DIR/test.csv` (`id,path`, paths relative to DIR), decodes and
scores every clip through the export (`serving.score_files`: a tf.data
pipeline of parallel decodes batched to `serving_default`) and writes
`id,fake,real` in `test.csv` order. A clip longer than the export's window
(`features.clip_seconds`; the challenge's clips are exactly 5 s) is scored in
windows and combined as `predict` does (`serving` module docstring).

A clip that cannot be read is reported with its id and the reason. The
submission is then NOT written (it would have holes) unless `--fill VALUE`
says which probability to put in those rows. Exit codes: 0 written, 1 refused
(unreadable clips without `--fill`) or `--check` found problems, 2 bad input
(missing files or columns, an unusable model).

`--check` validates a submission as the challenge does: columns exactly
`id,fake,real` in that order, no NaN or empty values, numbers in [0, 1], no
duplicate ids and, with `--data`, every id of test.csv exactly once and no
other ids. Every problem gets its own message.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deepwave_tf.metrics import LABEL_KEYS

TEST_CSV = "test.csv"
COLUMNS = ("id", *LABEL_KEYS)
MAX_LISTED = 5  # ids quoted per problem message


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
def score_test_set(
    model_path: str | Path,
    data_dir: str | Path,
    *,
    batch_size: int = 32,
    progress: bool = True,
):
    """Score every clip of `data_dir/test.csv`.

    Returns:
        `(ids, scores, model)`: ids in test.csv order, one `serving.FileScore`
        per id (with `.error` for unreadable clips), and the loaded export.
    """
    from deepwave_tf import serving

    rows = read_test_csv(data_dir)
    model = serving.load_export(model_path)
    scores = serving.score_files(
        model, [p for _, p in rows], batch_size=batch_size, progress=progress, desc="test clips"
    )
    return [i for i, _ in rows], scores, model


def run(
    model_path: str | Path,
    data_dir: str | Path,
    out: str | Path,
    *,
    fill: float | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> SubmitResult:
    """Write the submission for `data_dir/test.csv` (see the module docstring).

    Args:
        model_path: export directory (or a run / export dir: newest export).
        data_dir: challenge directory with `test.csv`.
        out: submission csv to write.
        fill: probability written for unreadable clips; None = refuse to write
            a submission with holes.
        batch_size: clips per SavedModel call.

    Returns:
        `SubmitResult` (`exit_code` 0 written, 1 refused).
    """
    if fill is not None and not 0.0 <= fill <= 1.0:
        raise SubmitError(f"--fill must be a probability in [0, 1], got {fill}")
    ids, scores, _ = score_test_set(model_path, data_dir, batch_size=batch_size, progress=progress)
    errors = [(i, s.path, s.error) for i, s in zip(ids, scores) if not s.ok]
    probs = {k: [getattr(s, k) for s in scores] for k in LABEL_KEYS}
    for clip_id, path, reason in errors:
        print(f"unreadable: {clip_id} ({path}): {reason}", file=sys.stderr)
    if errors and fill is None:
        print(
            f"error: {len(errors)} of {len(ids)} test clips could not be read; "
            f"not writing {out} with holes. Fix the files, or pass --fill VALUE to "
            "write VALUE for them.",
            file=sys.stderr,
        )
        return SubmitResult(None, ids, probs, errors, 0, 1)
    if errors:
        bad = {e[0] for e in errors}
        for k in LABEL_KEYS:
            probs[k] = [fill if i in bad else p for i, p in zip(ids, probs[k])]
        print(f"warning: filled {len(errors)} unreadable clips with {fill}", file=sys.stderr)
    out = Path(out)
    write_submission(out, ids, probs)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check is not None:
        problems = check_submission(args.check, args.data)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if problems:
            print(f"{args.check}: INVALID ({len(problems)} problems)", file=sys.stderr)
            return 1
        scope = f"against {args.data / TEST_CSV}" if args.data else "(ids not checked: no --data)"
        print(f"{args.check}: valid {scope}")
        return 0
    if args.model is None or args.data is None:
        parser.error("--model and --data are required (or use --check FILE)")
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ INFO lines bury the output
    from deepwave_tf.config import ConfigError
    from deepwave_tf.serving import ExportError

    try:
        result = run(
            args.model,
            args.data,
            args.out,
            fill=args.fill,
            batch_size=args.batch_size,
            progress=not args.no_progress,
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
