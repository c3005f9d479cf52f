"""Score texts with a text export: `python -m deepwave_tf.text.predict`.

    python -m deepwave_tf.text.predict --model runs/text "Press one for sales." "It was dark."
    python -m deepwave_tf.text.predict --model EXPORT_DIR --file texts.txt --out preds.csv
    python -m deepwave_tf.text.predict --model EXPORT_DIR --csv test.csv

`--model` is an export directory (`text.export`) or a run directory (its
newest export). Texts come from the command line, from `--file` (one text per
line; an empty line is an error naming it) and/or from `--csv` (the column
`data.text_column` of the export's config, or `--text-column`; other columns
are ignored). The SavedModel is loaded with plain `tf.saved_model.load`.

Prints one row per text (probability of `labels[1]`, the label at 0.5, the
text) and writes `--out` as a csv `source,text,probability,label`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf.text.data import TextDataError
from deepwave_tf.text.evaluate import RunError

OUT_COLUMNS = ("source", "text", "probability", "label")


@dataclasses.dataclass(frozen=True)
class Prediction:
    source: str  # "argv:1", "texts.txt:3", "test.csv:12"
    text: str
    probability: float
    label: str


def resolve_export(model: str | Path) -> Path:
    """`model` if it holds a SavedModel, else the newest export of the run directory `model`."""
    from deepwave_tf.text.export import latest_export

    model = Path(model)
    if (model / "saved_model.pb").is_file():
        return model
    if (model / "export").is_dir() or (model / "config.json").is_file():
        return latest_export(model)
    raise RunError(f"{model} is neither a text export (saved_model.pb) nor a text run directory")


def read_lines(path: str | Path) -> list[tuple[str, str]]:
    """`(source, text)` per line of a text file.

    Raises:
        TextDataError: a missing file or an empty line (named).
    """
    path = Path(path)
    if not path.is_file():
        raise TextDataError(f"text file not found: {path}")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            raise TextDataError(f"{path}:{lineno}: empty line (one text per line)")
        out.append((f"{path}:{lineno}", line))
    return out


def gather_texts(
    texts: Sequence[str],
    files: Sequence[str | Path],
    csvs: Sequence[str | Path],
    text_column: str,
) -> list[tuple[str, str]]:
    """`(source, text)` pairs from the command line, text files and csv files, in that order."""
    from deepwave_tf.text.config import TextDataConfig
    from deepwave_tf.text.data import read_csv

    out = []
    for i, t in enumerate(texts, 1):
        if not t.strip():
            raise TextDataError(f"text argument {i} is empty")
        out.append((f"argv:{i}", t))
    for f in files:
        out += read_lines(f)
    for c in csvs:
        ex = read_csv(c, TextDataConfig(text_column=text_column), labelled=False)
        out += [(f"{ex.source}:{line}", t) for t, line in zip(ex.texts, ex.lines)]
    return out


def run(
    model: str | Path,
    texts: Sequence[tuple[str, str]],
    *,
    batch_size: int = 64,
    loaded: Any = None,
) -> list[Prediction]:
    """Probabilities of `texts` (`(source, text)` pairs) from the export at `model`."""
    import tensorflow as tf

    export_dir = resolve_export(model)
    loaded = loaded or tf.saved_model.load(str(export_dir))
    labels = json.loads(loaded.signatures["metadata"]()["json"].numpy())["labels"]
    serve = loaded.signatures["serving_default"]
    probs: list[np.ndarray] = []
    strings = [t for _, t in texts]
    for i in range(0, len(strings), batch_size):
        probs.append(serve(text=tf.constant(strings[i : i + batch_size]))["probability"].numpy())
    p = np.concatenate(probs) if probs else np.zeros(0)
    return [
        Prediction(src, text, float(pi), labels[int(pi >= 0.5)])
        for (src, text), pi in zip(texts, p)
    ]


def write_csv(out: Path, predictions: Sequence[Prediction]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(OUT_COLUMNS)
        for p in predictions:
            w.writerow([p.source, p.text, f"{p.probability:.6f}", p.label])


def format_table(predictions: Sequence[Prediction], width: int = 70) -> str:
    rows = [f"{'probability':>11}  {'label':<10}  text"]
    for p in predictions:
        text = p.text if len(p.text) <= width else p.text[: width - 3] + "..."
        rows.append(f"{p.probability:11.4f}  {p.label:<10}  {text}")
    return "\n".join(rows)


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.text.predict",
        description="Score texts with a text export (SavedModel on raw strings).",
    )
    parser.add_argument("--model", type=Path, required=True, help="export dir or text run dir")
    parser.add_argument("texts", nargs="*", help="texts to score")
    parser.add_argument(
        "--file", type=Path, action="append", default=[], help="one text per line (repeatable)"
    )
    parser.add_argument(
        "--csv", type=Path, action="append", default=[], help="csv with a text column (repeatable)"
    )
    parser.add_argument(
        "--text-column", default=None, help="csv text column (default: the export's config)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the scores to this csv")
    parser.add_argument("--batch-size", type=int, default=64)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not (args.texts or args.file or args.csv):
        print("error: give texts, --file or --csv", file=sys.stderr)
        return 2
    try:
        import tensorflow as tf

        export_dir = resolve_export(args.model)
        loaded = tf.saved_model.load(str(export_dir))
        meta = json.loads(loaded.signatures["metadata"]()["json"].numpy())
        column = args.text_column or meta["config"]["data"]["text_column"]
        texts = gather_texts(args.texts, args.file, args.csv, column)
        predictions = run(export_dir, texts, batch_size=args.batch_size, loaded=loaded)
    except (RunError, TextDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(predictions))
    if args.out is not None:
        write_csv(args.out, predictions)
        print(f"scores: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
