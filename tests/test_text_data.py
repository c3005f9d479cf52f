"""deepwave_tf.text.data: csv checks naming the line, the stratified seeded split, tf.data batches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf.text.config import DEFAULT_CONFIG, TextDataConfig, load_text_config
from deepwave_tf.text.data import TextDataError, make_dataset, read_csv, split

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "text_sample"
CFG = TextDataConfig(labels=("book", "prompt"))


def write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_sample_counts():
    cfg = load_text_config(DEFAULT_CONFIG).data
    train = read_csv(SAMPLE / "train.csv", cfg)
    test = read_csv(SAMPLE / "test.csv", cfg)
    assert (len(train), train.class_counts()) == (416, [208, 208])
    assert (len(test), test.class_counts()) == (138, [69, 69])
    assert train.lines[0] == 2 and train.targets.dtype == np.int32
    assert not set(train.texts) & set(test.texts)


def test_split_is_stratified_seeded_and_disjoint():
    ex = read_csv(SAMPLE / "train.csv", CFG)
    tr, va = split(ex, CFG)
    assert va.class_counts() == [42, 42]  # round(0.2 * 208) per class
    assert tr.class_counts() == [166, 166]
    assert not set(tr.texts) & set(va.texts)
    assert sorted(tr.lines.tolist() + va.lines.tolist()) == ex.lines.tolist()
    tr2, va2 = split(ex, CFG)
    assert va2.texts == va.texts
    _, va3 = split(ex, dataclasses.replace(CFG, seed=1))
    assert va3.texts != va.texts


def test_repeated_texts_stay_on_one_side(tmp_path):
    rows = [f"book text {i},book" for i in range(10)] + [f"prompt {i},prompt" for i in range(10)]
    rows += ["book text 3,book"] * 5 + ["prompt 7,prompt"] * 5
    ex = read_csv(write(tmp_path, "text,label\n" + "\n".join(rows) + "\n"), CFG)
    for seed in range(5):
        tr, va = split(ex, dataclasses.replace(CFG, seed=seed, val_fraction=0.3))
        assert not set(tr.texts) & set(va.texts)
        assert len(set(va.texts)) == 6  # 3 distinct texts per class
        assert len(tr) + len(va) == 30


def test_conflicting_labels_name_both_lines(tmp_path):
    path = write(tmp_path, "text,label\nsame words,book\nother,prompt\nsame words,prompt\n")
    with pytest.raises(
        TextDataError, match=r"d.csv:4: this text has label 'prompt', but line 2 gives it 'book'"
    ):
        split(read_csv(path, CFG), CFG)


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,kind\na,book\n", r"d.csv:1: no 'label' column \(the header has \['text', 'kind'\]"),
        ("words,label\na,book\n", r"d.csv:1: no 'text' column"),
        ("text,label\na,book\n  ,prompt\n", r"d.csv:3: empty text"),
        # a quoted text over two lines: the next row starts on line 4
        ('text,label\n"two\nlines",book\n,prompt\n', r"d.csv:4: empty text"),
        (
            "text,label\na,book\nb,Prompt\n",
            r"d.csv:3: label 'Prompt' is not one of data.labels = \['book', 'prompt'\]",
        ),
        ("text,label\na,book\nb,1\n", r"d.csv:3: label '1' is not one of"),
        (
            "text,label\na,book\nhello, world,prompt\n",
            r"d.csv:3: 3 fields, the header has 2 \(a text with a comma must be quoted\)",
        ),
        ("text,label\na,book\nb\n", r"d.csv:3: 1 fields, the header has 2"),
        ("text,label\n", r"d.csv: no rows after the header"),
    ],
)
def test_bad_csv_names_the_line(tmp_path, content, message):
    with pytest.raises(TextDataError, match=message):
        read_csv(write(tmp_path, content), CFG)


def test_unlabelled_missing_file_and_tiny_class(tmp_path):
    ex = read_csv(write(tmp_path, "id,text\n1,hello\n2,there\n"), CFG, labelled=False)
    assert ex.texts == ["hello", "there"] and ex.targets is None
    with pytest.raises(TextDataError, match="csv not found"):
        read_csv(tmp_path / "nope.csv", CFG)
    path = write(tmp_path, "text,label\na,book\nb,book\nc,prompt\n")
    with pytest.raises(TextDataError, match="class 'prompt' has 1 distinct texts"):
        split(read_csv(path, CFG), CFG)


def test_numeric_labels_by_default_and_bom(tmp_path):
    ex = read_csv(write(tmp_path, "\ufefftext,label\na,0\nb,1\nc, 1 \n"), TextDataConfig())
    assert ex.targets.tolist() == [0, 1, 1] and ex.texts == ["a", "b", "c"]


def test_make_dataset_batches(tmp_path):
    import tensorflow as tf

    ex = read_csv(SAMPLE / "test.csv", CFG)
    cfg = dataclasses.replace(CFG, batch_size=32)
    batches = list(make_dataset(ex, cfg, training=False))
    assert [int(x.shape[0]) for x, _ in batches] == [32, 32, 32, 32, 10]
    x, y = batches[0]
    assert x.dtype == tf.string and y.dtype == tf.float32 and y.shape == (32,)
    assert [t.decode() for t in x.numpy()] == ex.texts[:32]
    shuffled = [t.decode() for x, _ in make_dataset(ex, cfg, training=True) for t in x.numpy()]
    assert sorted(shuffled) == sorted(ex.texts) and shuffled != ex.texts
