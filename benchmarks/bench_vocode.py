"""Benchmark `vocode`: CPU cost of each copy-synthesis vocoder on real dev-corpus clips.

    .venv/bin/python benchmarks/bench_vocode.py [--clips 20] [--seeds 2] [--vocoders world,lpc,...]

Runs every available vocoder on the first `--clips` real rows of the dev corpus's
train.csv (../shared/data/deepwave-dev or $DEEPWAVE_DEV), `--seeds` settings draws
per clip, single-threaded (BLAS/OpenMP pools at one thread, set before numpy is
imported), after one warm-up call per vocoder (librosa's numba kernels compile on
first use). The cost is CPU time (user + system, including forked children: codec2
decodes in one) per second of input audio, so it does not depend on the machine's
load as wall time would; the load average is printed next to it anyway. Settings are
drawn per call, so the spread between clips is mostly the spread between settings.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEV = Path(os.environ.get("DEEPWAVE_DEV", REPO.parent / "shared" / "data" / "deepwave-dev"))
SAMPLE_RATE_HZ = 32000


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"
    return str(value)


def real_clips(count: int) -> list[Path]:
    with open(DEV / "train.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "real"]
    return [DEV / r["path"] for r in rows[:count]]


def main() -> None:
    from deepwave_tf import vocode
    from deepwave_tf.audio import load_soundfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--vocoders", default=",".join(vocode.VOCODERS))
    args = parser.parse_args()

    clips = [load_soundfile(p, SAMPLE_RATE_HZ) for p in real_clips(args.clips)]
    audio_s = sum(c.size for c in clips) / SAMPLE_RATE_HZ
    load = os.getloadavg()
    print(
        f"# bench_vocode: {len(clips)} real dev-train clips ({audio_s:.1f} s), {args.seeds} seeds each"
    )
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"single-threaded; load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )

    availability = vocode.available()
    rows = []
    for name in args.vocoders.split(","):
        if availability[name]:
            rows.append([name, f"unavailable: {availability[name]}", "", "", "", "", ""])
            continue
        vocode.vocode(name, clips[0], SAMPLE_RATE_HZ, np.random.default_rng(0))  # warm-up
        costs, errors = [], 0
        wall_start = time.perf_counter()
        for seed in range(args.seeds):
            for k, clip in enumerate(clips):
                rng = np.random.default_rng([seed, k])
                start = _common.cpu_seconds()
                try:
                    vocode.vocode(name, clip, SAMPLE_RATE_HZ, rng)
                except vocode.VocodeError:
                    errors += 1
                    continue
                costs.append(
                    (_common.cpu_seconds() - start) / (clip.size / SAMPLE_RATE_HZ) * 1000.0
                )
        wall = time.perf_counter() - wall_start
        c = np.asarray(costs)
        rows.append(
            [
                name,
                float(np.mean(c)),
                float(np.median(c)),
                float(np.percentile(c, 90)),
                float(np.max(c)),
                f"{errors}/{args.seeds * len(clips)}",
                wall,
            ]
        )
        print(f"{name}: done ({wall:.1f} s wall)", flush=True)

    load = os.getloadavg()
    _common.table(
        f"CPU ms per second of audio (single-threaded; load average at end {load[0]:.1f})",
        ["vocoder", "mean", "median", "p90", "max", "VocodeErrors", "wall s"],
        rows,
        _fmt,
    )


if __name__ == "__main__":
    main()
