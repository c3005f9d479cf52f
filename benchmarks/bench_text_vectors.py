"""Benchmark the streaming `.vec` reader on a synthetic fastText-sized file.

    .venv/bin/python benchmarks/bench_text_vectors.py [--rows 200000] [--dim 300] [--vocab 20000]

Writes a `--rows` x `--dim` file in fastText's text format (6 decimals, trailing
space, like `wiki-news-300d-1M.vec`) to a temporary directory, then times
`text.vectors.load_vectors` for a vocabulary of `--vocab` words, half of them in
the file. Prints rows/s, MB/s, the time extrapolated to 1 M rows, and the peak
Python allocation (tracemalloc, on a second pass) against the file's size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import table  # noqa: E402
from deepwave_tf.text.vectors import load_vectors  # noqa: E402


def write_file(path: Path, rows: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write(f"{rows} {dim}\n")
        for start in range(0, rows, 1000):
            block = rng.standard_normal((min(1000, rows - start), dim)) * 0.1
            for k, v in enumerate(block):
                f.write(f"w{start + k} " + " ".join(f"{x:.6f}" for x in v) + " \n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--vocab", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.vec"
        t0 = time.perf_counter()
        write_file(path, args.rows, args.dim)
        size_mb = path.stat().st_size / 1e6
        print(
            f"wrote {args.rows} x {args.dim} ({size_mb:.0f} MB) in {time.perf_counter() - t0:.0f} s"
        )
        step = max(1, args.rows // (args.vocab // 2))
        vocab = ["", "[UNK]"] + [f"w{i}" for i in range(0, args.rows, step)][: args.vocab // 2]
        vocab += [f"absent{i}" for i in range(args.vocab - len(vocab))]
        t0 = time.perf_counter()
        t = load_vectors(path, vocab)
        secs = time.perf_counter() - t0
        tracemalloc.start()
        load_vectors(path, vocab)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    matrix_mb = t.matrix.nbytes / 1e6
    table(
        "load_vectors (one process, wall time)",
        [
            "rows x dim",
            "file MB",
            "vocab",
            "found",
            "s",
            "rows/s",
            "MB/s",
            "s per 1 M rows",
            "peak MB (matrix MB)",
        ],
        [
            [
                f"{args.rows} x {args.dim}",
                size_mb,
                len(vocab),
                int(t.found.sum()),
                secs,
                args.rows / secs,
                size_mb / secs,
                1e6 / (args.rows / secs),
                f"{peak:.0f} ({matrix_mb:.0f})",
            ]
        ],
        lambda v: f"{v:,.1f}" if isinstance(v, float) else str(v),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
