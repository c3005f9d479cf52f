"""deepwave_tf.text.vectors: streaming .vec reader, coverage, random vectors, errors naming the line."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf.text.config import VectorsConfig
from deepwave_tf.text.vectors import VectorsError, load_vectors, read_header

REPO = Path(__file__).resolve().parent.parent
SAMPLE_VEC = REPO / "data" / "text_sample" / "vectors.vec"


def write_vec(path: Path, rows: list[str], header: str | None = None) -> Path:
    dim = len(rows[0].split()) - 1 if rows else 1
    header = header if header is not None else f"{len(rows)} {dim}"
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_sample_vectors_rows_and_coverage():
    count, dim = read_header(SAMPLE_VEC)
    assert (count, dim) == (403, 16)
    lines = SAMPLE_VEC.read_text().splitlines()
    the = np.array(lines[1].split()[1:], np.float32)
    assert lines[1].split()[0] == "the"
    vocab = ["", "[UNK]", "the", "press", "notaword"]
    table = load_vectors(SAMPLE_VEC, vocab)
    assert table.matrix.shape == (5, 16) and table.matrix.dtype == np.float32
    np.testing.assert_array_equal(table.matrix[2], the)
    np.testing.assert_array_equal(table.matrix[0], np.zeros(16))  # padding
    assert table.found.tolist() == [False, False, True, True, False]
    assert table.searchable == 3
    assert table.coverage() == pytest.approx(2 / 3)
    assert table.summary()["random"] == 1 and table.file_rows == 403


def test_absent_words_get_small_seeded_random_vectors(tmp_path):
    vec = write_vec(tmp_path / "v.vec", ["a 1 2 3"])
    vocab = ["", "[UNK]", "a"] + [f"w{i}" for i in range(400)]
    cfg = VectorsConfig(oov_stddev=0.05, seed=7)
    first = load_vectors(vec, vocab, cfg).matrix
    again = load_vectors(vec, vocab, cfg).matrix
    other = load_vectors(vec, vocab, VectorsConfig(oov_stddev=0.05, seed=8)).matrix
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[3:], other[3:])
    np.testing.assert_array_equal(first[2], [1, 2, 3])
    assert np.std(first[3:]) == pytest.approx(0.05, rel=0.1)
    assert np.any(first[1] != 0)  # [UNK] is random too, padding stays zero
    np.testing.assert_array_equal(first[0], 0)


def test_trailing_spaces_gzip_duplicates_and_case_fallback(tmp_path):
    rows = ["Paris 1 1 ", "the 2 2 ", "the 9 9 ", "Berlin 3 3 ", "berlin 4 4 "]
    vec = write_vec(tmp_path / "v.vec", rows, header="5 2")
    gz = tmp_path / "v.vec.gz"
    gz.write_bytes(gzip.compress(vec.read_bytes()))
    vocab = ["", "[UNK]", "paris", "the", "berlin"]
    for path in (vec, gz):
        t = load_vectors(path, vocab)
        np.testing.assert_array_equal(t.matrix[2:], [[1, 1], [2, 2], [4, 4]])
        # first exact row wins; an exact row after a case-folded one replaces it
        assert t.case_fallback.tolist() == [False, False, True, False, False]
        assert t.coverage() == 1.0
    strict = load_vectors(vec, vocab, VectorsConfig(case_fallback=False))
    assert strict.found.tolist() == [False, False, False, True, True]


@pytest.mark.parametrize(
    "header, rows, message",
    [
        ("hello world", ["a 1 2"], ":1: the header must be 'COUNT DIM'"),
        ("300", ["a 1 2"], ":1: the header must be 'COUNT DIM'"),
        ("2 2 2", ["a 1 2"], ":1: the header must be 'COUNT DIM'"),
        ("2 0", ["a 1 2"], ":1: the header must be 'COUNT DIM'"),
        ("3 2", ["a 1 2", "b 1", "c 1 2"], ":3: expected a word and 2 values"),
        ("3 2", ["a 1 2", "b 1 2 3", "c 1 2"], ":3: expected a word and 2 values"),
        ("3 2", ["a 1 2", "", "c 1 2"], ":3: expected a word and 2 values"),
        ("2 2", ["a 1  2", "c 1 2"], ":2: expected a word and 2 values separated by single"),
        ("3 2", ["a 1 2", "b 1 2"], ":3: the file ends after 2 rows but the header's COUNT = 3"),
        ("1 2", ["a 1 2", "b 1 2"], ":3: more rows than the header's COUNT = 1"),
        ("2 2", ["a 1 2", "the 1 x"], ":3: a value of 'the' is not a number"),
        ("2 2", ["a 1 2", "the 1 nan"], ":3: 'the' has a non-finite value"),
    ],
)
def test_bad_files_name_the_line(tmp_path, header, rows, message):
    path = tmp_path / "bad.vec"
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(VectorsError) as e:
        load_vectors(path, ["", "[UNK]", "the"])
    assert f"{path}{message}" in str(e.value)


def test_not_utf8_dimension_mismatch_and_missing_file(tmp_path):
    path = tmp_path / "latin1.vec"
    path.write_bytes(b"2 1\nthe 1\ncaf\xe9 2\n")
    with pytest.raises(VectorsError, match=r"latin1.vec:3: not UTF-8"):
        load_vectors(path, ["", "[UNK]", "the"])
    ok = write_vec(tmp_path / "ok.vec", ["the 1 2"])
    with pytest.raises(
        VectorsError, match=r"ok.vec:1: the vectors have 2 dimensions but model.embedding_dim = 300"
    ):
        load_vectors(ok, ["", "[UNK]", "the"], expected_dim=300)
    with pytest.raises(VectorsError, match="vectors file not found"):
        load_vectors(tmp_path / "nope.vec", ["the"])


def test_streams_the_file(tmp_path):
    """A 6,000 x 100 file (~4.5 MB): Python allocations stay far below the file's size."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.vec"
    with path.open("w") as f:
        f.write("6000 100\n")
        for i in range(6000):
            f.write(f"w{i} " + " ".join(f"{v:.5f}" for v in rng.standard_normal(100)) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    table = load_vectors(path, ["", "[UNK]", "w0", "w5999", "absent"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert table.found.tolist() == [False, False, True, True, False]
    assert peak < size / 20, f"peak {peak} bytes for a {size}-byte file: not streaming"
