"""Benchmark training: input-pipeline examples/s (augmentation off / on) and training examples/s per config.

    .venv/bin/python benchmarks/bench_train.py [--records DIR | --data DIR] [--batches 60] [--steps 4]
        [--configs tiny,default,cnn_bilstm,cnn_bilstm_gelu] [--train-only]

Records: `--records` (a prep output), else `prep.run` over `--data` (default the
embedded data/sample) into a temporary directory. The train split is repeated,
so a small split still gives a steady-state figure.

- input pipeline alone: `data.make_dataset(split="train", training=True,
  repeat=True)` with the default config's batch size, iterated for `--batches`
  batches after 5 warm-up batches, augmentation off and on; plus the validation
  split with its fixed mixing; augmentation also without XLA
  (`augment.jit_compile=false`). Reports wall examples/s and CPU ms per example
  (process time: robust to other load on the machine). The default config
  mixes in recorded noise (data/noise/); the rows "synthetic noise only" set
  `augment.noise_dir=""` for comparison.
- noise bank build: `augment.make_noise_bank` (train and val parts) with its
  caches cleared, for tiny and default, recorded + synthetic vs synthetic only.
- training: each config's model (`fit.compile_model`), `train_on_batch` on a
  batch of its `data.batch_size` records, 2 warm-up steps (trace) then `--steps`
  timed steps. The default config is also measured with `model.first_conv_stride=1`.
  A `--configs` entry may carry overrides after `@`, `;`-separated, e.g.
  `waveform@model.waveform_stride=1`. A config with the waveform branch
  (configs/waveform.toml) needs the waveform in the records: the temporary prep
  then stores it (`prep.store_waveform`), which changes none of the features.
  `--train-only` skips the pipeline and noise-bank tables.
- targets (issue 3): pipeline >= 2,000 examples/s and >= 10x the default
  model's training throughput.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CONFIGS = ("tiny", "default", "cnn_bilstm", "cnn_bilstm_gelu")


def table(title: str, header: list[str], rows: list[list]) -> None:
    _common.table(title, header, rows, lambda c: f"{c:,.1f}")


class Clock:
    """Wall and process-CPU time of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def bench_pipeline(records, cfg, split: str, training: bool, batches: int) -> tuple[float, float]:
    from deepwave_tf import data

    ds = data.make_dataset(records, split, cfg, training=training, repeat=True)
    it = iter(ds)
    for _ in range(5):
        next(it)
    n = 0
    with Clock() as c:
        for _ in range(batches):
            n += int(next(it)[1]["fake"].shape[0])
    return n / c.wall, 1000 * c.cpu / n


def bench_training(records, cfg, steps: int) -> tuple[float, float, int]:
    from deepwave_tf import data, fit
    from deepwave_tf import model as model_lib

    plain = cfg.replace(augment=dataclasses.replace(cfg.augment, enabled=False, val_mixing=False))
    x, y = next(iter(data.make_dataset(records, "train", plain, training=True, repeat=True)))
    model = fit.compile_model(model_lib.build_model(cfg, data.load_stats(records)), cfg)
    for _ in range(2):
        model.train_on_batch(x, y)
    batch = int(y["fake"].shape[0])
    with Clock() as c:
        for _ in range(steps):
            model.train_on_batch(x, y)
    return batch * steps / c.wall, 1000 * c.cpu / (batch * steps), model.count_params()


def train_table(records, variants, steps: int) -> dict[str, float]:
    """Training throughput per `(config name, overrides)`, printed; {label: examples/s}."""
    from deepwave_tf.config import CONFIG_DIR, load_config

    rows, train = [], {}
    for name, overrides in variants:
        cfg = load_config(CONFIG_DIR / f"{name}.toml", overrides)
        ex_s, cpu, params = bench_training(records, cfg, steps)
        label = name + (f" ({', '.join(overrides)})" if overrides else "")
        train[label] = ex_s
        rows.append([label, f"{params:,}", str(cfg.data.batch_size), ex_s, cpu])
    table(
        f"training (train_on_batch, {steps} steps after 2 warm-up steps)",
        ["config", "params", "batch", "examples/s (wall)", "CPU ms/example"],
        rows,
    )
    return train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, help="an existing prep output")
    parser.add_argument(
        "--data", type=Path, default=SAMPLE, help="data dir to prep (default data/sample)"
    )
    parser.add_argument("--batches", type=int, default=60, help="timed pipeline batches")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per config")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument(
        "--train-only", action="store_true", help="only the training table (no pipeline, bank)"
    )
    args = parser.parse_args(argv)

    import tensorflow as tf

    from deepwave_tf import prep
    from deepwave_tf.config import CONFIG_DIR, load_config

    print(f"# bench_train: {os.cpu_count()} CPUs, TF {tf.__version__}, load avg {os.getloadavg()}")
    default = load_config(CONFIG_DIR / "default.toml")
    variants = []  # (label, config)
    for entry in (e for e in args.configs.split(",") if e):
        name, _, extra = entry.partition("@")
        overrides = [o for o in extra.split(";") if o]
        variants.append((name, overrides))
        if name == "default" and not overrides:
            variants.append(("default", ["model.first_conv_stride=1"]))
    tmp = None
    records = args.records
    if records is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_train_")
        records = Path(tmp.name) / "records"
        wave = any(
            load_config(CONFIG_DIR / f"{n}.toml", o).model.uses_waveform for n, o in variants
        )
        prep_cfg = default.replace(prep=dataclasses.replace(default.prep, store_waveform=wave))
        with Clock() as c:
            result = prep.run(prep_cfg, args.data, records, progress=False)
        print(f"prepped {args.data} -> {records} in {c.wall:.1f}s: {result.counts}")
    if args.train_only:
        train_table(records, variants, args.steps)
        print(f"\nload avg at the end {os.getloadavg()}")
        return 0

    # Input pipeline alone.
    rows = []
    off = default.replace(
        augment=dataclasses.replace(default.augment, enabled=False, val_mixing=False)
    )
    no_xla = default.replace(augment=dataclasses.replace(default.augment, jit_compile=False))
    synthetic = default.replace(augment=dataclasses.replace(default.augment, noise_dir=""))
    for label, cfg, split, training in (
        ("train, augmentation off", off, "train", True),
        ("train, augmentation on", default, "train", True),
        ("train, augmentation on, synthetic noise only", synthetic, "train", True),
        ("train, augmentation on, augment.jit_compile=false", no_xla, "train", True),
        ("val, fixed mixing", default, "val", False),
        ("val, fixed mixing, synthetic noise only", synthetic, "val", False),
        ("val, plain", off, "val", False),
    ):
        ex_s, cpu = bench_pipeline(records, cfg, split, training, args.batches)
        rows.append([label, ex_s, cpu])
    pipeline = {r[0]: r[1] for r in rows}
    table(
        f"input pipeline (batch {default.data.batch_size}, {args.batches} batches after warm-up)",
        ["pipeline", "examples/s (wall)", "CPU ms/example"],
        rows,
    )

    # Noise bank build (once per pipeline; cached within a process).
    from deepwave_tf import augment

    rows = []
    for name in ("tiny", "default"):
        cfg = load_config(CONFIG_DIR / f"{name}.toml")
        for label, aug in (
            ("recorded + synthetic", cfg.augment),
            ("synthetic only", dataclasses.replace(cfg.augment, noise_dir="")),
        ):
            augment._make_noise_bank.cache_clear()
            with Clock() as c:
                bank = augment.make_noise_bank(cfg.features, aug, cfg.data.seed)
                augment.make_noise_bank(cfg.features, aug, cfg.data.seed + 1, part="val")
            rows.append([f"{name}, {label}", str(bank.size), c.wall, c.cpu])
    table(
        "noise bank build (train + val part)",
        ["config, bank", "entries per part", "wall s", "CPU s"],
        rows,
    )

    train = train_table(records, variants, args.steps)

    if "default" in train:
        on = pipeline["train, augmentation on"]
        table(
            "targets",
            ["target", "measured", "met"],
            [
                [
                    "pipeline (augmentation off) >= 2,000 ex/s",
                    f"{pipeline['train, augmentation off']:,.0f}",
                    str(pipeline["train, augmentation off"] >= 2000),
                ],
                ["pipeline (augmentation on) >= 2,000 ex/s", f"{on:,.0f}", str(on >= 2000)],
                [
                    "pipeline (augmentation on) >= 10x default training",
                    f"{on / train['default']:,.0f}x",
                    str(on >= 10 * train["default"]),
                ],
            ],
        )
    print(f"\nload avg at the end {os.getloadavg()}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
