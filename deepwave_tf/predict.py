"""Score audio files of any length and format with an export.

    python -m deepwave_tf.predict --model EXPORT INPUT... [--out preds.csv]

INPUT may be audio files, directories (searched recursively for the suffixes
in `audio.SUPPORTED_SUFFIXES`) or csv files with a `path` column (paths
relative to the csv's directory, as in the challenge's test.csv).

Long clips: a clip longer than the export's window (`features.clip_seconds`)
is scored in windows of that length, starting every `--hop` seconds (default
`export.window_hop_seconds` of the export) plus one window ending at the
clip's end, and the window probabilities are combined per output with
`--aggregate` (default `export.aggregate` = `max`: "is a fake (or real) voice
present anywhere in the file?"; `mean` gives an average over the file
instead). Shorter clips are zero-padded to one window, as in training.

The windowing and the aggregation run inside the export (its `windows`
signature), so `serving_default` called directly, TF Serving and `serve`
give the same numbers; `--windows FILE` writes every window's scores
(`path,start_s,end_s,fake,real`), to see *where* a long file scores as fake.

Prints a table (path, seconds, windows, fake, real) and writes it to `--out`
with an `error` column. Unreadable files are listed with the reason; the exit
code is then 1 (2 for unusable arguments or model).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deepwave_tf.audio import SUPPORTED_SUFFIXES

OUT_COLUMNS = ("path", "seconds", "windows", "fake", "real", "error")
WINDOW_COLUMNS = ("path", "start_s", "end_s", "fake", "real")


class PredictError(ValueError):
    """Inputs that cannot be expanded into files (a csv without a path column, ...)."""


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Audio files named by `inputs`, in the given order (directories sorted, recursive).

    A path that does not exist is kept: scoring reports it as "file not found".

    Raises:
        PredictError: a csv without a `path` column, or a directory with no audio.
    """
    files: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            )
            if not found:
                raise PredictError(
                    f"directory {item} holds no audio files ({', '.join(SUPPORTED_SUFFIXES)})"
                )
            files.extend(found)
        elif item.suffix.lower() == ".csv" and item.is_file():
            with open(item, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if "path" not in (reader.fieldnames or []):
                    raise PredictError(
                        f"{item} has no 'path' column (columns: {', '.join(reader.fieldnames or [])})"
                    )
                files.extend(item.parent / row["path"].strip() for row in reader)
        else:
            files.append(item)
    return files


def run(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    windows_out: str | Path | None = None,
    hop_seconds: float | None = None,
    how: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
):
    """Score `inputs` (see the module docstring).

    Returns:
        List of `serving.FileScore`, one per file, in input order.
    """
    from deepwave_tf import serving

    paths = expand_inputs(inputs)
    if not paths:
        raise PredictError("no input files")
    model = serving.load_export(model_path)
    scores = serving.score_files(
        model, paths, batch_size=batch_size, hop_seconds=hop_seconds, how=how, progress=progress
    )
    if out is not None:
        write_csv(Path(out), scores)
    if windows_out is not None:
        write_windows_csv(Path(windows_out), scores)
    return scores


def write_csv(out: Path, scores) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(OUT_COLUMNS)
        for s in scores:
            if s.ok:
                w.writerow([s.path, f"{s.seconds:.3f}", s.windows, repr(s.fake), repr(s.real), ""])
            else:
                w.writerow([s.path, "", 0, "", "", s.error])


def write_windows_csv(out: Path, scores) -> None:
    """One row per window of every readable file: `path,start_s,end_s,fake,real`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(WINDOW_COLUMNS)
        for s in scores:
            for start_s, end_s, fake, real in s.timeline:
                w.writerow([s.path, f"{start_s:.3f}", f"{end_s:.3f}", repr(fake), repr(real)])


def format_table(scores, width: int = 60) -> str:
    """Readable table of the scored files; paths longer than `width` keep their end."""

    def short(p: str) -> str:
        return p if len(p) <= width else "..." + p[-(width - 3) :]

    w = min(width, max([len(short(s.path)) for s in scores] + [4]))
    lines = [f"{'path':<{w}}  {'seconds':>8}  {'windows':>7}  {'fake':>6}  {'real':>6}"]
    for s in scores:
        if s.ok:
            lines.append(
                f"{short(s.path):<{w}}  {s.seconds:>8.2f}  {s.windows:>7d}  {s.fake:>6.3f}  {s.real:>6.3f}"
            )
        else:
            lines.append(f"{short(s.path):<{w}}  unreadable: {s.error}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.predict",
        description="Score audio files (any length, any supported format) with an export.",
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="export directory (or run dir: newest export)"
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, directories or csv files with a path column",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the scores to this csv")
    parser.add_argument(
        "--windows",
        type=Path,
        default=None,
        metavar="FILE",
        help="write every window's scores to this csv (path,start_s,end_s,fake,real)",
    )
    parser.add_argument(
        "--hop",
        type=float,
        default=None,
        help="seconds between windows of long clips (default: the export's export.window_hop_seconds)",
    )
    parser.add_argument(
        "--aggregate",
        choices=("max", "mean"),
        default=None,
        help="how window scores combine (default: the export's export.aggregate)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="windows per SavedModel call")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hop is not None and args.hop <= 0:
        parser.error("--hop must be > 0")
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ INFO lines bury the output
    from deepwave_tf.config import ConfigError
    from deepwave_tf.serving import ExportError

    try:
        scores = run(
            args.model,
            args.inputs,
            out=args.out,
            windows_out=args.windows,
            hop_seconds=args.hop,
            how=args.aggregate,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    except (PredictError, ExportError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(scores))
    failed = [s for s in scores if not s.ok]
    summary = f"{len(scores) - len(failed)} of {len(scores)} files scored"
    if args.out is not None:
        summary += f"; wrote {args.out}"
    print(summary)
    if failed:
        print(f"{len(failed)} files could not be read:", file=sys.stderr)
        for s in failed:
            print(f"  {s.path}: {s.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
