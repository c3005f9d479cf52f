"""Score audio files of any length and format with an export.

    python -m deepwave_tf.predict --model EXPORT INPUT... [--out preds.csv]
                                  [--config FILE] [--set export.KEY=VALUE] [--hop S] [--aggregate max|mean]

INPUT may be audio files, directories (searched recursively for the suffixes
in `audio.SUPPORTED_SUFFIXES`; other files there are skipped, counted, and
listed with `--list-skipped`) or csv files with a `path` column (paths
relative to the csv's directory, as in the challenge's test.csv; the csv's
other columns, such as `id`, are kept in `--out`).

Long clips: a clip longer than the export's window (`features.clip_seconds`)
is scored in windows of that length, starting every
`export.window_hop_seconds` plus one window ending at the clip's end, and the
window probabilities are combined per output with `export.aggregate` (`max`:
"is a fake (or real) voice present anywhere in the file?"; `mean` gives an
average over the file instead). Shorter clips are zero-padded to one window,
as in training. Those two settings come from, most specific first: `--hop` /
`--aggregate`, `--set export.KEY=VALUE`, the `[export]` section of
`--config FILE`, and the export's own config (what `export` resolved when it
was made). The other sections describe the trained model and cannot change.

`fake` and `real` are two independent probabilities, "a fake voice is
present" and "a real voice is present": both can be high (a clip with two
voices) or both low (noise, silence). A file recorded below 16 kHz gets a
warning (`audio.low_rate_warning`): it is upsampled and scored, but lacks
the bandwidth of the training data.

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
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from deepwave_tf import cli
from deepwave_tf.audio import SUPPORTED_SUFFIXES

OUT_COLUMNS = ("path", "seconds", "windows", "fake", "real", "error")
WINDOW_COLUMNS = ("path", "start_s", "end_s", "fake", "real")
PROBABILITIES_NOTE = (
    "fake, real: independent probabilities that a fake voice / a real voice is present "
    "(both can be high: two voices; both low: no voice)"
)
CONTEXT = "when scoring with a trained model"


class PredictError(ValueError):
    """Inputs that cannot be expanded into files (a csv without a path column, ...)."""


@dataclasses.dataclass
class Inputs:
    """What the INPUT arguments name.

    Attributes:
        paths: the files to score, in order (see `collect_inputs`).
        extras: per path, the other columns of its csv row (`{}` for files
            named directly or found in a directory).
        columns: those columns' names, in order of first appearance.
        skipped: files found in directories that are not audio (by suffix).
    """

    paths: list[Path] = dataclasses.field(default_factory=list)
    extras: list[dict[str, str]] = dataclasses.field(default_factory=list)
    columns: list[str] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)


def collect_inputs(inputs: Sequence[str | Path]) -> Inputs:
    """Audio files named by `inputs`, in the given order (directories sorted, recursive).

    A path that does not exist is kept: scoring reports it as "file not found".

    Raises:
        PredictError: a csv without a `path` column, or a directory with no audio.
    """
    out = Inputs()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file())
            found = [p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES]
            if not found:
                raise PredictError(
                    f"directory {item} holds no audio files ({', '.join(SUPPORTED_SUFFIXES)})"
                )
            out.paths.extend(found)
            out.extras.extend({} for _ in found)
            out.skipped.extend(p for p in files if p.suffix.lower() not in SUPPORTED_SUFFIXES)
        elif item.suffix.lower() == ".csv" and item.is_file():
            with open(item, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if "path" not in (reader.fieldnames or []):
                    raise PredictError(
                        f"{item} has no 'path' column (columns: {', '.join(reader.fieldnames or [])})"
                    )
                kept = [c for c in reader.fieldnames if c != "path"]
                out.columns.extend(c for c in kept if c not in out.columns)
                for row in reader:
                    out.paths.append(item.parent / (row["path"] or "").strip())
                    out.extras.append({c: row[c] or "" for c in kept})
        else:
            out.paths.append(item)
            out.extras.append({})
    return out


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The files of `collect_inputs(inputs)`, in order."""
    return collect_inputs(inputs).paths


def run(
    model_path: str | Path,
    inputs: Sequence[str | Path] | Inputs,
    *,
    out: str | Path | None = None,
    windows_out: str | Path | None = None,
    hop_seconds: float | None = None,
    how: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
):
    """Score `inputs` (see the module docstring).

    Args:
        model_path: export directory (or a run / export dir: newest export).
        inputs: INPUT arguments, or what `collect_inputs` made of them.
        out: csv to write (input csv columns first, then `OUT_COLUMNS`).
        hop_seconds, how: window hop and aggregation; None = the resolved
            `export.window_hop_seconds` / `export.aggregate`.
        batch_size: windows per SavedModel call.
        progress: show a progress bar.
        config, overrides: `--config FILE` ([export] section) and `--set
            export.KEY=VALUE`, applied on top of the export's own config.

    Returns:
        List of `serving.FileScore`, one per file, in input order.
    """
    from deepwave_tf import serving
    from deepwave_tf.config import load_config

    if not isinstance(inputs, Inputs):
        inputs = collect_inputs(inputs)
    if not inputs.paths:
        raise PredictError("no input files")
    model = serving.load_export(model_path)
    cfg = load_config(
        config,
        overrides,
        base=(model.metadata["config"], str(model.path)),
        sections=("export",),
        context=CONTEXT,
    )
    scores = serving.score_files(
        model,
        inputs.paths,
        batch_size=batch_size,
        hop_seconds=cfg.export.window_hop_seconds if hop_seconds is None else hop_seconds,
        how=cfg.export.aggregate if how is None else how,
        progress=progress,
    )
    if out is not None:
        write_csv(Path(out), scores, inputs)
    if windows_out is not None:
        write_windows_csv(Path(windows_out), scores)
    return scores


def out_columns(inputs: Inputs | None) -> list[str]:
    """Header of `--out`: the input csv columns (renamed `input_X` if they clash), then ours."""
    extra = [f"input_{c}" if c in OUT_COLUMNS else c for c in (inputs.columns if inputs else [])]
    return [*extra, *OUT_COLUMNS]


def write_csv(out: Path, scores, inputs: Inputs | None = None) -> None:
    """The scores as csv, one row per file; an input csv's own columns come first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = inputs.columns if inputs else []
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(out_columns(inputs))
        for i, s in enumerate(scores):
            extra = [inputs.extras[i].get(c, "") for c in columns] if inputs else []
            if s.ok:
                ours = [s.path, f"{s.seconds:.3f}", s.windows, repr(s.fake), repr(s.real), ""]
            else:
                ours = [s.path, "", 0, "", "", s.error]
            w.writerow([*extra, *ours])


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
    """Readable table of the scored files; paths longer than `width` keep their end.

    The last line says what `fake` and `real` mean (`PROBABILITIES_NOTE`).
    """

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
    lines.append(PROBABILITIES_NOTE)
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
        help="seconds between windows of long clips (default: export.window_hop_seconds, "
        "from --set, --config or the export)",
    )
    parser.add_argument(
        "--aggregate",
        choices=("max", "mean"),
        default=None,
        help="how window scores combine (default: export.aggregate, from --set, --config "
        "or the export)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="windows per SavedModel call")
    parser.add_argument(
        "--list-skipped",
        action="store_true",
        help="list the files of INPUT directories that were skipped as not audio",
    )
    parser.add_argument("--no-progress", action="store_true")
    cli.add_config_arguments(parser, sections=("export",), default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hop is not None and args.hop <= 0:
        parser.error("--hop must be > 0")
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    cli.quiet_tensorflow()
    from deepwave_tf.config import ConfigError, load_config
    from deepwave_tf.serving import ExportError

    try:
        # Check --config/--set now (on the defaults): a typo should not wait for the model.
        load_config(args.config, args.overrides, sections=("export",), context=CONTEXT)
        inputs = collect_inputs(args.inputs)
        scores = run(
            args.model,
            inputs,
            out=args.out,
            windows_out=args.windows,
            hop_seconds=args.hop,
            how=args.aggregate,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            config=args.config,
            overrides=args.overrides,
        )
    except (PredictError, ExportError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(scores))
    failed = [s for s in scores if not s.ok]
    summary = f"{len(scores) - len(failed)} of {cli.plural(len(scores), 'file')} scored"
    if args.out is not None:
        summary += f"; wrote {args.out}"
    print(summary)
    if inputs.skipped:
        n = len(inputs.skipped)
        suffixes = ", ".join(sorted({p.suffix.lower() or "no suffix" for p in inputs.skipped}))
        print(
            f"skipped {cli.plural(n, 'non-audio file')} found in the directories ({suffixes})"
            + ("" if args.list_skipped else "; --list-skipped lists them")
        )
        if args.list_skipped:
            for p in inputs.skipped:
                print(f"  skipped: {p}")
    for s in scores:
        if s.warning:
            print(f"warning: {s.warning}", file=sys.stderr)
    if failed:
        print(f"{cli.plural(len(failed), 'file')} could not be read:", file=sys.stderr)
        for s in failed:
            print(f"  {s.path}: {s.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
