"""Benchmark prep on Apache Beam (DirectRunner) against the single-machine prep, side by side.

    .venv/bin/python benchmarks/bench_prep_beam.py [--clips 300] [--repeats 2] [--config configs/default.toml]

Every variant runs on the same clips (the first `--clips` train rows of the dev
corpus, ../shared/data/deepwave-dev or $DEEPWAVE_DEV; data/sample when it is
missing), each in a fresh process (TF and Beam imports excluded from the time,
the tf.function trace and Beam's pipeline start-up included), in turns, best of
`--repeats`:

- prep: `prep.run` (decode threads + a tf.data map over feature batches),
- beam, 1 worker: `prep_beam.run` on the DirectRunner's default (in-process) mode,
- beam, 2 threads / 2 processes: `--direct_num_workers=2` with
  `--direct_running_mode=multi_threading` / `multi_processing`.

It also checks that each Beam variant wrote byte-identical shards to prep's.
The DirectRunner is Beam's local test runner: on one machine it can at best
match prep; the point of Beam is the other runners (README: "Prep on Apache Beam").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_prep  # noqa: E402  (dev_rows, write_data_dir, _cpu_name: one copy)

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CHILD = """
import json, logging, resource, sys, time
logging.getLogger().setLevel(logging.WARNING)
from deepwave_tf import prep
from deepwave_tf.config import load_config
mode, config, data, out, *beam_args = sys.argv[1:]
cfg = load_config(config)
import tensorflow  # noqa: F401  (import cost is not prep's)
if mode == "beam":
    from deepwave_tf import prep_beam
def cpu():
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
start, cpu0 = time.perf_counter(), cpu()
if mode == "beam":
    result = prep_beam.run(cfg, data, out, beam_args=beam_args)
else:
    result = prep.run(cfg, data, out, progress=False)
seconds, cpu_s = time.perf_counter() - start, cpu() - cpu0
clips = sum(c["total"] for c in result.counts.values())
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_s, "clips": clips,
                  "errors": len(result.errors)}))
"""

VARIANTS = [
    ("prep (single machine)", "prep", []),
    ("beam DirectRunner, 1 worker", "beam", ["--direct_num_workers=1"]),
    (
        "beam DirectRunner, 2 threads",
        "beam",
        ["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
    ),
    (
        "beam DirectRunner, 2 processes",
        "beam",
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    ),
]


def run_child(mode: str, config: Path, data: Path, out: Path, beam_args: list[str]) -> dict:
    cmd = [sys.executable, "-c", _CHILD, mode, str(config), str(data), str(out), *beam_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {beam_args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shard_bytes(records_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(records_dir.glob("*.tfrecord-*"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "default.toml")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    print(
        f"# bench_prep_beam  {time.strftime('%Y-%m-%d %H:%M')}  {bench_prep._cpu_name()}, "
        f"{cores} cores, load average {os.getloadavg()[0]:.2f} at start "
        "(other processes share these cores)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if (bench_prep.DEV / "train.csv").is_file():
            data = bench_prep.write_data_dir(bench_prep.dev_rows(args.clips), tmp / "data")
            source = f"the first {args.clips} train rows of {bench_prep.DEV.name}"
        else:
            data, source = bench_prep.SAMPLE, "data/sample (dev corpus not found)"
        run_child("prep", args.config, data, tmp / "warm" / "recs", [])  # page cache
        best: dict[str, dict] = {}
        same: dict[str, bool] = {}
        for repeat in range(args.repeats):
            for k, (label, mode, beam_args) in enumerate(VARIANTS):  # in turns: load hits all
                out = tmp / f"v{k}_{repeat}" / "recs"
                r = run_child(mode, args.config, data, out, beam_args)
                if label not in best or r["seconds"] < best[label]["seconds"]:
                    best[label] = r
                if mode == "beam":
                    same[label] = shard_bytes(out) == shard_bytes(tmp / "warm" / "recs")
        ref = best[VARIANTS[0][0]]
        rows = []
        for label, _, _ in VARIANTS:
            r = best[label]
            rate = r["clips"] / r["seconds"]
            rows.append(
                [
                    label,
                    f"{r['seconds']:.1f}",
                    rate,
                    1000 * r["cpu_seconds"] / r["clips"],
                    f"{rate / (ref['clips'] / ref['seconds']):.2f}x",
                    "-" if label not in same else ("yes" if same[label] else "NO"),
                ]
            )
        _common.table(
            f"prep vs prep on Beam ({ref['clips']} clips: {source}; {args.config.name}; "
            f"best of {args.repeats}, each in a fresh process)",
            [
                "variant",
                "wall s",
                "clips/s",
                "CPU ms/clip (incl. children)",
                "vs prep",
                "same shard bytes",
            ],
            rows,
            bench_prep._fmt,
        )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
