"""Streaming reader of fastText / word2vec text vectors (`.vec`, optionally `.vec.gz`).

The format: a header line `COUNT DIM`, then COUNT rows `word v1 ... vDIM`
(fastText writes a trailing space; both are accepted). fastText's
`wiki-news-300d-1M.vec` is 1 M rows x 300 values, about 2.3 GB of text, so the
file is read one line at a time and only the rows of the model's vocabulary are
parsed into floats and kept: memory is one embedding matrix `[vocab, dim]` plus
one line, whatever the file's size.

Every row is still checked: its field count must equal the header's DIM, and
the number of rows must equal COUNT, so a truncated or ragged file fails with
its path and line number instead of quietly yielding fewer vectors. Values are
parsed (and checked finite) only for the rows kept: parsing 300 M floats to
throw them away would make loading ~10x slower.

Words of the vocabulary the file lacks get small random vectors
(`vectors.oov_stddev`, seeded), the padding token (index 0) a zero vector; the
caller reports `VectorTable.coverage()`.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from deepwave_tf.text.config import VectorsConfig

PADDING = ""  # TextVectorization's index 0
OOV = "[UNK]"  # TextVectorization's index 1
RESERVED = (PADDING, OOV)


class VectorsError(ValueError):
    """A `.vec` file that cannot be used (named with the line at fault)."""


@dataclasses.dataclass(frozen=True)
class VectorTable:
    """The embedding matrix of one vocabulary, filled from a `.vec` file.

    Attributes:
        matrix: `[len(vocabulary), dim]` float32; row i is the vector of vocabulary[i].
        found: `[len(vocabulary)]` bool, True where the row came from the file.
        case_fallback: `[len(vocabulary)]` bool, True where it came from a row that
            matched only after lower-casing (see `VectorsConfig.case_fallback`).
        dim: vector dimension (the header's DIM).
        file_rows: rows in the file (= the header's COUNT, checked).
        searchable: vocabulary words looked up (the vocabulary minus padding and [UNK]).
    """

    matrix: np.ndarray
    found: np.ndarray
    case_fallback: np.ndarray
    dim: int
    file_rows: int
    searchable: int

    def coverage(self) -> float:
        """Share of the vocabulary's words (padding and [UNK] excluded) that have a vector."""
        return float(self.found.sum()) / self.searchable if self.searchable else 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "vocabulary_words": self.searchable,
            "found": int(self.found.sum()),
            "found_by_case_fallback": int(self.case_fallback.sum()),
            "random": self.searchable - int(self.found.sum()),
            "coverage": self.coverage(),
            "dim": self.dim,
            "file_rows": self.file_rows,
        }


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _parse_header(path: Path, raw: bytes) -> tuple[int, int]:
    text = raw.decode("utf-8", errors="replace").strip()
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or min(int(p) for p in parts) < 1:
        raise VectorsError(
            f"{path}:1: the header must be 'COUNT DIM' (two positive integers, e.g. "
            f"'1000000 300'), got {text[:80]!r}: not a fastText .vec file?"
        )
    return int(parts[0]), int(parts[1])


def read_header(path: str | Path) -> tuple[int, int]:
    """`(count, dim)` from the first line of a `.vec` file.

    Raises:
        VectorsError: a missing file or a header that is not two positive integers.
    """
    path = Path(path)
    if not path.is_file():
        raise VectorsError(f"vectors file not found: {path}")
    with _open(path) as f:
        return _parse_header(path, f.readline())


def load_vectors(
    path: str | Path,
    vocabulary: Sequence[str],
    cfg: VectorsConfig = VectorsConfig(),
    *,
    expected_dim: int = 0,
) -> VectorTable:
    """Stream `path` and build the embedding matrix of `vocabulary`.

    Args:
        path: `.vec` (or `.vec.gz`) file.
        vocabulary: token per index, as `TextVectorization.get_vocabulary()`
            returns it: `""` (padding, zero vector) at 0, `"[UNK]"` (random) at 1.
        cfg: random-vector scale and seed, case fallback.
        expected_dim: the model's embedding size; 0 = accept the file's.

    Returns:
        A `VectorTable` with `matrix` `[len(vocabulary), dim]` float32.

    Raises:
        VectorsError: missing file; a bad header; a row whose field count is not
            DIM, with an unparsable or non-finite value, or not UTF-8; a row count
            other than COUNT; DIM != `expected_dim`. Each names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise VectorsError(f"vectors file not found: {path}")
    index = {w: i for i, w in enumerate(vocabulary) if w not in RESERVED}
    n = len(vocabulary)
    with _open(path) as f:
        count, dim = _parse_header(path, f.readline())
        if expected_dim and dim != expected_dim:
            raise VectorsError(
                f"{path}:1: the vectors have {dim} dimensions but model.embedding_dim = "
                f"{expected_dim} (set it to 0 to take the file's, or to {dim})"
            )
        matrix = np.zeros((n, dim), np.float32)
        # 0 = not seen, 1 = from a case-folded match, 2 = exact match (wins, first one kept).
        source = np.zeros(n, np.int8)
        rows = 0
        lineno = 1
        for lineno, raw in enumerate(f, start=2):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise VectorsError(f"{path}:{lineno}: not UTF-8 text ({e.reason})") from None
            line = line.rstrip("\r\n").rstrip(" ")
            space = line.find(" ")
            # Fields after the word; str.count runs in C, a split would cost ~5x more.
            n_values = line.count(" ") if space > 0 else 0
            if n_values != dim or "  " in line:
                got = len(line.split()) - 1 if line.strip() else 0
                raise VectorsError(
                    f"{path}:{lineno}: expected a word and {dim} values separated by single "
                    f"spaces (the header's DIM), got {max(got, 0)} values"
                    + (f" for {line[:space]!r}" if space > 0 else "")
                )
            rows += 1
            if rows > count:
                raise VectorsError(f"{path}:{lineno}: more rows than the header's COUNT = {count}")
            word = line[:space]
            i = index.get(word)
            kind = 2
            if i is None or source[i] == 2:
                if not cfg.case_fallback:
                    continue
                i = index.get(word.lower())
                kind = 1
                if i is None or source[i] != 0:
                    continue
            try:
                values = np.array(line[space + 1 :].split(" "), dtype=np.float32)
            except ValueError:
                raise VectorsError(
                    f"{path}:{lineno}: a value of {word!r} is not a number"
                ) from None
            if not np.all(np.isfinite(values)):
                raise VectorsError(f"{path}:{lineno}: {word!r} has a non-finite value")
            matrix[i] = values
            source[i] = kind
    if rows != count:
        raise VectorsError(
            f"{path}:{lineno}: the file ends after {rows} rows but the header's COUNT = {count} "
            "(a truncated download?)"
        )

    missing = np.flatnonzero(source == 0)
    missing = missing[[vocabulary[i] != PADDING for i in missing]]
    rng = np.random.default_rng(cfg.seed)
    matrix[missing] = rng.normal(0.0, cfg.oov_stddev, (len(missing), dim)).astype(np.float32)
    searchable = np.array([w not in RESERVED for w in vocabulary], bool)
    return VectorTable(
        matrix=matrix,
        found=(source > 0) & searchable,
        case_fallback=(source == 1) & searchable,
        dim=dim,
        file_rows=rows,
        searchable=int(searchable.sum()),
    )
