"""Parts of the training step, timed alone: the BiLSTM and the band statistics (issue 11, item 4).

    .venv/bin/python benchmarks/bench_train_parts.py [--rounds 5] [--steps 20] [--threads 2]

What `bench_train.py --sections twins` cannot separate, on the default
config's shapes (batch 32):
- BiLSTM (79 steps of 40 MFCC, 64 units, both directions), one training step
  (forward, gradient of a sum of squares): Keras's `LSTM` and, with torch
  installed, `nn.LSTM`.
- mel statistics of `stats_views` (mean and std over 313 frames of 128 bands,
  after the per-band normalisation): the TF ops `BandStatistics` runs, the same
  in one XLA kernel with the normalisation inside, the normalisation then both
  moments in XLA, and the moments of the raw mel with the normalisation applied
  to the statistics afterwards (with its largest difference: E[x^2] - E[x]^2
  on dB values cancels in quiet bands).

Each variant runs `--steps` calls per round, in turn; the figures are medians
of `--rounds` rounds (wall and process-CPU ms per call). The last line printed
is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_train.py, before torch loads


def timed(variants: dict, rounds: int, steps: int) -> dict[str, tuple[float, float]]:
    """{name: (wall ms, CPU ms)} per call, medians of the rounds, variants interleaved."""
    for fn in variants.values():
        for _ in range(3):
            fn()
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(rounds):
        for key, fn in variants.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(steps):
                fn()
            wall[key].append(1000 * (time.perf_counter() - w) / steps)
            cpu[key].append(1000 * (time.process_time() - c) / steps)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in variants}


def lstm_variants(batch: int, frames: int, dims: int, units: int) -> tuple[dict, dict]:
    import keras
    import numpy as np
    import tensorflow as tf

    x_np = np.random.default_rng(0).standard_normal((batch, frames, dims), dtype=np.float32)
    x = tf.constant(x_np)
    bi = keras.layers.Bidirectional(keras.layers.LSTM(units))
    bi.build(x.shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = bi(x, training=True)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, bi.trainable_variables)

    variants, notes = {"BiLSTM train step, Keras LSTM": step}, {}
    try:
        import torch
    except ImportError:
        notes["torch"] = "not installed: no nn.LSTM row"
        return variants, notes
    lstm = torch.nn.LSTM(dims, units, batch_first=True, bidirectional=True)
    xt = torch.from_numpy(x_np)

    def torch_step():
        lstm.zero_grad(set_to_none=True)
        _, (h, _) = lstm(xt)
        (h * h).sum().backward()

    variants["BiLSTM train step, torch nn.LSTM"] = torch_step
    return variants, notes


def stats_variants(batch: int, bands: int, frames: int) -> tuple[dict, dict]:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(-40, 20, (batch, bands, frames)).astype(np.float32))
    mu = tf.constant(rng.normal(-40, 5, (bands, 1)).astype(np.float32))
    sd = tf.constant(rng.uniform(10, 20, (bands, 1)).astype(np.float32))

    def moments(n):
        m = tf.reduce_mean(n, 2)
        s = tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(n), 2) - tf.square(m), 1e-8))
        return tf.concat([m, s], -1)

    xla_moments = tf.function(moments, jit_compile=True)
    variants = {
        "stats: normalise, then moments (as now)": tf.function(lambda: moments((x - mu) / sd)),
        "stats: both in one XLA kernel": tf.function(
            lambda: moments((x - mu) / sd), jit_compile=True
        ),
        "stats: normalise, then moments in XLA": tf.function(lambda: xla_moments((x - mu) / sd)),
    }

    @tf.function
    def raw_then_normalise():
        m = tf.reduce_mean(x, 2)
        msq = tf.reduce_mean(tf.square(x), 2)
        s = tf.sqrt(tf.maximum((msq - m * m) / tf.square(sd[:, 0]), 1e-8))
        return tf.concat([(m - mu[:, 0]) / sd[:, 0], s], -1)

    variants["stats: raw moments, normalised after"] = raw_then_normalise
    ref = variants["stats: normalise, then moments (as now)"]().numpy()
    notes = {
        f"{k} max abs diff": float(np.abs(fn().numpy() - ref).max())
        for k, fn in variants.items()
        if k != "stats: normalise, then moments (as now)"
    }
    # A quiet band: dB values near -80 with a std of 0.5 (silence floor).
    quiet = tf.constant(rng.normal(-80, 0.5, (batch, 1, frames)).astype(np.float32))
    m = tf.reduce_mean(quiet, 2)
    raw_var = tf.reduce_mean(tf.square(quiet), 2) - m * m
    exact = np.var(quiet.numpy().astype(np.float64), axis=2)
    notes["quiet band: raw-moment variance, worst relative error"] = float(
        np.abs(raw_var.numpy() / exact - 1).max()
    )
    return variants, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="calls per round and variant")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(args.threads)
    except ImportError:
        pass
    from deepwave_tf.config import CONFIG_DIR, load_config

    cfg = load_config(CONFIG_DIR / "default.toml")
    f, m = cfg.features, cfg.model
    summary = {"load_start": os.getloadavg(), "threads": args.threads}
    print(f"# bench_train_parts: {os.cpu_count()} CPUs, load avg {summary['load_start']}")
    frames = -(-f.num_frames // m.mfcc_time_pool)
    lstm, lstm_notes = lstm_variants(cfg.data.batch_size, frames, f.n_mfcc, m.lstm_units)
    stats, stats_notes = stats_variants(cfg.data.batch_size, f.n_mels, f.num_frames)
    results = timed({**lstm, **stats}, args.rounds, args.steps)
    _common.table(
        f"training-step parts (batch {cfg.data.batch_size}, medians of {args.rounds} rounds "
        f"of {args.steps} calls)",
        ["part", "wall ms", "CPU ms"],
        [[k, w, c] for k, (w, c) in results.items()],
        lambda c: f"{c:,.2f}",
    )
    notes = {**lstm_notes, **stats_notes}
    for k, v in notes.items():
        print(f"{k}: {v}")
    summary.update(ms={k: list(v) for k, v in results.items()}, notes=notes)
    summary["load_end"] = os.getloadavg()
    print(f"load avg at the end {summary['load_end']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
