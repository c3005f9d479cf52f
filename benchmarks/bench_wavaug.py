"""Benchmark `wavaug`: CPU milliseconds per 5 s clip for each augmentation and for `random_chain`.

    nice -n 5 .venv/bin/python benchmarks/bench_wavaug.py [--clips 8] [--repeats 3] [--chains 60]

Single-threaded (BLAS/OpenMP pools pinned to one thread before numpy loads;
soxr, libsndfile and scipy's filters are single-threaded here). Each
augmentation runs `--repeats` times on each of `--clips` real clips (the dev
corpus's train clips, ../shared/data/deepwave-dev or $DEEPWAVE_DEV, else the
embedded sample), cropped or tiled to exactly 5 s at 32 kHz, one seed per
call, after one warm-up call. CPU time is `time.process_time` (this process,
all threads); wall time is printed next to it because the machine may be
shared: the load average is printed before and after.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("DEEPWAVE_DEV", REPO.parent / "shared" / "data" / "deepwave-dev"))
SAMPLE = REPO / "data" / "sample"
RATE = 32000
CLIP = 5 * RATE


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def _clips(count: int) -> tuple[list[np.ndarray], Path]:
    from deepwave_tf import audio

    root = DEV if (DEV / "train.csv").exists() else SAMPLE
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    out = []
    for row in rows:
        x = audio.load_soundfile(root / row["path"], RATE)
        out.append(np.resize(x, CLIP).astype(np.float32))  # crop, or tile a short clip
    return out, root


def _time(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(CPU ms, wall ms, result) of one call."""
    c, w = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.process_time() - c) * 1000, (time.perf_counter() - w) * 1000, result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chains", type=int, default=60, help="random_chain draws (max_ops=3)")
    args = p.parse_args(argv)

    from deepwave_tf import wavaug

    load_before = os.getloadavg()
    clips, root = _clips(args.clips)
    print(f"clips: {len(clips)} x 5 s at 32 kHz from {root}; repeats {args.repeats}")
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

    rows, summary = [], {}
    for name, why in wavaug.available().items():
        if why is not None:
            rows.append([name, "unavailable: " + why, "", "", "", ""])
            continue
        fn = wavaug.AUGMENTS[name]
        fn(clips[0], RATE, np.random.default_rng(0))  # warm-up: imports, codec set-up
        cpu, wall = [], []
        for k, x in enumerate(clips):
            for r in range(args.repeats):
                c, w, _ = _time(fn, x, RATE, np.random.default_rng(1000 * k + r))
                cpu.append(c)
                wall.append(w)
        cpu_a, wall_a = np.array(cpu), np.array(wall)
        summary[name] = float(cpu_a.mean())
        rows.append(
            [name, float(np.median(cpu_a)), float(cpu_a.mean()), float(np.percentile(cpu_a, 90)),
             float(np.median(wall_a)), float(1000 / cpu_a.mean())]
        )  # fmt: skip

    cpu, ops = [], []
    for k in range(args.chains):
        x = clips[k % len(clips)]
        c, _, (_, applied) = _time(
            wavaug.random_chain, x, RATE, np.random.default_rng(k), max_ops=3
        )
        cpu.append(c)
        ops.append(len(applied))
    cpu_a = np.array(cpu)
    summary["random_chain"] = float(cpu_a.mean())
    rows.append(
        [f"random_chain (max_ops=3, mean {np.mean(ops):.1f} ops)", float(np.median(cpu_a)),
         float(cpu_a.mean()), float(np.percentile(cpu_a, 90)), "", float(1000 / cpu_a.mean())]
    )  # fmt: skip

    _common.table(
        "wavaug: CPU ms per 5 s clip, one thread",
        ["augmentation", "median ms", "mean ms", "p90 ms", "median wall ms", "clips/s per core"],
        rows,
        _fmt,
    )
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(
        json.dumps({"cpu_ms_mean": summary, "load_before": load_before, "load_after": load_after})
    )


if __name__ == "__main__":
    main()
