"""What each front-end costs prep and the records: CPU per clip and bytes per record.

    .venv/bin/python benchmarks/bench_frontends.py [--clips 32] [--repeats 3]

Every front-end `features.compute_features` offers (`[features] sequence / image`), timed
side by side in one run on the same 5 s clips of data/sample (cycled to `--clips`), in
batches of `prep.batch_size` through one `tf.function` per config, single-threaded ops
as prep runs them (best of `--repeats` passes, after a warm-up). The time is process
CPU time (`time.process_time`), which other jobs on the machine disturb less than
wall time. The default (mfcc + mel) is the reference: ratios are to it, measured in
the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent

VARIANTS = {
    "mfcc + mel (default)": {},
    "mfcc + linear (all 1025 bins)": {"image": "linear"},
    "mfcc + linear (256 bands)": {"image": "linear", "linear_bins": 256},
    "lfcc + mel": {"sequence": "lfcc"},
    "lfcc + deltas + mel": {"sequence": "lfcc", "lfcc_deltas": 2},
    "mfcc + phase (32 bands)": {"image": "phase"},
    "phase only (sequence = image)": {"sequence": "phase", "image": "phase"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import soundfile as sf
    import tensorflow as tf

    from deepwave_tf import features
    from deepwave_tf.config import load_config

    tf.config.threading.set_intra_op_parallelism_threads(1)
    cfg = load_config(REPO / "configs" / "default.toml")
    base, batch = cfg.features, cfg.prep.batch_size
    paths = sorted((REPO / "data" / "sample" / "train").glob("*.ogg"))
    clips = [features.fix_length(sf.read(p, dtype="float32")[0], base).numpy() for p in paths]
    waves = np.stack([clips[i % len(clips)] for i in range(args.clips)])
    batches = [waves[i : i + batch] for i in range(0, len(waves) - batch + 1, batch)]
    print(
        f"# bench_frontends: {len(batches) * batch} clips of {base.clip_seconds:g} s in batches "
        f"of {batch}, 1 intra-op thread, best of {args.repeats}; {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    rows, reference = [], None
    for name, changes in VARIANTS.items():
        f = dataclasses.replace(base, **changes)
        fn = tf.function(lambda w, f=f: features.compute_features(w, f), autograph=False)
        fn(batches[0])  # trace + warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.process_time()
            for b in batches:
                out = fn(b)
            best = min(best, time.process_time() - t0)
        ms = 1000.0 * best / (len(batches) * batch)
        reference = reference or ms
        shapes = ", ".join(f"{k} {list(v.shape[1:])}" for k, v in out.items())
        kib = sum(int(np.prod(v.shape[1:])) for v in out.values()) * 4 / 1024
        rows.append([name, shapes, ms, f"{ms / reference:.2f}x", f"{kib:.0f}"])
    _common.table(
        "front-end cost per clip (prep's featurise step)",
        ["front-end", "stored tensors", "CPU ms / clip", "vs default", "KiB / record"],
        rows,
        lambda v: f"{v:.1f}",
    )


if __name__ == "__main__":
    main()
