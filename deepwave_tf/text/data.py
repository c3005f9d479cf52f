"""The `text,label` csv, a stratified seeded validation split, and the tf.data input.

The csv is read and checked in Python before TensorFlow sees it: a missing
column, an empty text, a label outside the two names of `data.labels`, a row
with too many or too few fields, or one text given both labels is an error
naming the file and line (the first line of the row, counting the header as
line 1). Nothing is silently dropped.

The split is stratified by class and made over *distinct* texts, so a text
repeated in the csv lands on one side only (the tensorflow/datasets habit: no
example in two splits). Same csv + same `data.seed` + same `data.val_fraction`
= the same split, on any machine.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from deepwave_tf.text.config import TextDataConfig

EXTRA = "\0extra"  # DictReader's key for fields beyond the header


class TextDataError(ValueError):
    """A csv that cannot be used (named with the line at fault)."""


@dataclasses.dataclass(frozen=True)
class TextExamples:
    """Texts of one csv (or one split of it).

    Attributes:
        texts: N strings, as in the csv (not standardised: the model does that).
        targets: `[N]` int32 0/1 (index into `data.labels`), or None for unlabelled texts.
        lines: `[N]` int64, the csv line each row starts on.
        source: the csv path, for messages.
    """

    texts: list[str]
    targets: np.ndarray | None
    lines: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> TextExamples:
        index = np.asarray(index, np.int64)
        return TextExamples(
            texts=[self.texts[i] for i in index],
            targets=None if self.targets is None else self.targets[index],
            lines=self.lines[index],
            source=self.source,
        )

    def class_counts(self) -> list[int]:
        """Examples per class `[n_negative, n_positive]`."""
        if self.targets is None:
            return []
        return np.bincount(self.targets, minlength=2).tolist()


def read_csv(path: str | Path, cfg: TextDataConfig, *, labelled: bool = True) -> TextExamples:
    """Read and check a csv with `cfg.text_column` (and, if `labelled`, `cfg.label_column`).

    Labels are matched against `cfg.labels` after stripping surrounding spaces:
    `labels[0]` -> target 0, `labels[1]` -> target 1.

    Raises:
        TextDataError: a missing file or column, a short or long row, an empty
            text, an unknown label, or no rows; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise TextDataError(f"csv not found: {path}")
    labels = {name: i for i, name in enumerate(cfg.labels)}
    texts: list[str] = []
    targets: list[int] = []
    lines: list[int] = []
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name.
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, restkey=EXTRA, restval=None)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as e:
            raise TextDataError(f"{path}:1: cannot read the csv header: {e}") from None
        needed = [cfg.text_column] + ([cfg.label_column] if labelled else [])
        missing = [c for c in needed if c not in header]
        if missing:
            raise TextDataError(
                f"{path}:1: no {', '.join(repr(c) for c in missing)} column "
                f"(the header has {header}; set data.text_column / data.label_column)"
            )
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as e:
                raise TextDataError(f"{path}:{start}: not readable as csv: {e}") from None
            if EXTRA in row:
                raise TextDataError(
                    f"{path}:{start}: {len(header) + len(row[EXTRA])} fields, the header "
                    f"has {len(header)} (a text with a comma must be quoted)"
                )
            if any(row[c] is None for c in needed):
                raise TextDataError(
                    f"{path}:{start}: {sum(v is not None for v in row.values())} fields, "
                    f"the header has {len(header)}"
                )
            text = row[cfg.text_column]
            if not text.strip():
                raise TextDataError(f"{path}:{start}: empty text")
            if labelled:
                label = row[cfg.label_column].strip()
                if label not in labels:
                    raise TextDataError(
                        f"{path}:{start}: label {label!r} is not one of data.labels = "
                        f"{list(cfg.labels)}"
                    )
                targets.append(labels[label])
            texts.append(text)
            lines.append(start)
            start = reader.line_num + 1
    if not texts:
        raise TextDataError(f"{path}: no rows after the header")
    return TextExamples(
        texts=texts,
        targets=np.asarray(targets, np.int32) if labelled else None,
        lines=np.asarray(lines, np.int64),
        source=str(path),
    )


def split(examples: TextExamples, cfg: TextDataConfig) -> tuple[TextExamples, TextExamples]:
    """Stratified, seeded train/validation split over distinct texts.

    Per class, `round(cfg.val_fraction * distinct texts)` (at least 1) go to
    validation, chosen by a permutation seeded with `cfg.seed`; repeats of a
    text follow it.

    Returns:
        `(train, val)`, each in csv order.

    Raises:
        TextDataError: unlabelled examples, a text given both labels (both lines
            named), or a class with fewer than 2 distinct texts.
    """
    if examples.targets is None:
        raise TextDataError(f"{examples.source}: the split needs labels")
    first: dict[str, int] = {}  # text -> index of its first row
    for i, text in enumerate(examples.texts):
        j = first.setdefault(text, i)
        if examples.targets[j] != examples.targets[i]:
            raise TextDataError(
                f"{examples.source}:{examples.lines[i]}: this text has label "
                f"{cfg.labels[examples.targets[i]]!r}, but line {examples.lines[j]} gives it "
                f"{cfg.labels[examples.targets[j]]!r}"
            )
    rng = np.random.default_rng(cfg.seed)
    val_texts: set[str] = set()
    for cls in (0, 1):
        distinct = [t for t, i in first.items() if examples.targets[i] == cls]
        if len(distinct) < 2:
            raise TextDataError(
                f"{examples.source}: class {cfg.labels[cls]!r} has {len(distinct)} distinct "
                "texts; a train/validation split needs at least 2"
            )
        n_val = min(max(1, round(cfg.val_fraction * len(distinct))), len(distinct) - 1)
        val_texts.update(distinct[k] for k in rng.permutation(len(distinct))[:n_val])
    in_val = np.array([t in val_texts for t in examples.texts])
    return examples.subset(np.flatnonzero(~in_val)), examples.subset(np.flatnonzero(in_val))


def make_dataset(examples: TextExamples, cfg: TextDataConfig, *, training: bool):
    """`tf.data.Dataset` of `(text [batch] string, target [batch] float32)` batches.

    `training=True` shuffles (seeded with `cfg.seed`, reshuffled each epoch);
    otherwise the csv order is kept. Unlabelled examples give `text` batches only.
    """
    import tensorflow as tf

    texts = tf.constant(examples.texts, tf.string)
    if examples.targets is None:
        ds = tf.data.Dataset.from_tensor_slices(texts)
    else:
        targets = tf.constant(examples.targets.astype(np.float32))
        ds = tf.data.Dataset.from_tensor_slices((texts, targets))
    if training:
        ds = ds.shuffle(
            min(cfg.shuffle_buffer, len(examples)) or 1,
            seed=cfg.seed,
            reshuffle_each_iteration=True,
        )
    return ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)
