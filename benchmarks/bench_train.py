"""Benchmark training: input-pipeline examples/s (augmentation off / on) and training examples/s per config.

    .venv/bin/python benchmarks/bench_train.py [--records DIR | --data DIR] [--batches 60] [--steps 4]
        [--configs tiny,default,cnn_bilstm,cnn_bilstm_gelu,stats_views,NAME@section.key=value;...]
        [--sections pipeline,noise,train,twins] [--twins default,cnn_bilstm,...] [--rounds 5]
        [--twin-steps 4] [--round-seconds 1] [--threads 2] [--plain-keras]
        [--no-metrics] [--train-on-batch]

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
- targets (issue 3): pipeline >= 2,000 examples/s and >= 10x the default
  model's training throughput.
- Keras vs PyTorch (issue 11): each `--twins` config's model against its
  PyTorch twin (benchmarks/torch_twin.py, built from the same config: same
  layers, Adam, loss), batch `data.batch_size` of random inputs, TF and torch
  both on `--threads` intra-op and inter-op threads. The Keras side trains
  through `model.fit` on a dataset repeating the batch in memory, the loop
  `fit.run` trains with (`train.steps_per_execution` steps per call, metrics
  reset once per epoch); the default `--twins` is every model config in
  configs/. After warm-up, `--rounds` rounds alternate Keras and torch (A B A
  B), each side running the same number of steps a round: at least
  `--twin-steps` and `--round-seconds` of the slower side, a multiple of the
  steps per execution (fit's per-call cost is then a few % at most). The table
  gives median examples/s of each and the median of the per-round
  Keras/PyTorch ratios (target >= 1.2). An entry `NAME:section.key=value;...`
  adds overrides, e.g. `default:model.activation="gelu_tanh"` or
  `default:model.branches=["mel"]`. Extra Keras runners in the same rounds,
  each with its own ratio: `--plain-keras` (Keras's own BatchNormalization and
  Activation layers, model.py before its fused layers), `--no-metrics`
  (compiled without metrics, as the twin), `--train-on-batch` (the previous
  measure: `train_on_batch` resets every metric variable on each call). Needs torch (`pip install -e
  '.[bench]'`); without it the section says so and is skipped.
  torch's OpenMP threads wait passively (`OMP_WAIT_POLICY=PASSIVE`, the
  default of `--torch-omp-wait`): with libgomp's spinning wait, torch on 2
  threads ran 7-30x slower than with it on this VM shared with other jobs
  (load 14-17), which would flatter Keras. TF's own thread pool is not OpenMP.

The last line printed is the figures as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CONFIGS = ("tiny", "default", "cnn_bilstm", "cnn_bilstm_gelu", "stats_views")
# Every model config in configs/ (text.toml is the text model, deepwave_tf.text).
TWINS = (
    "default",
    "cnn_bilstm",
    "cnn_bilstm_gelu",
    "stats_views",
    "frontend_mel",
    "frontend_lfcc",
    "frontend_linear",
    "frontend_phase",
    "stats_linear",
    "stats_lr",
    "stats_vocode",
    "tiny",
    "waveform",
    "waveform_stats",
)
SECTIONS = ("pipeline", "noise", "train", "twins")


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


@contextlib.contextmanager
def plain_keras_layers():
    """Build models with Keras's own BatchNormalization and Activation (model.py before its fused layers)."""
    import keras

    from deepwave_tf import model as model_lib

    saved = model_lib.FusedBatchNormalization, model_lib.activation_layer
    model_lib.FusedBatchNormalization = keras.layers.BatchNormalization
    model_lib.activation_layer = lambda name, layer_name: keras.layers.Activation(
        model_lib._dense_activation(name), name=layer_name
    )
    try:
        yield
    finally:
        model_lib.FusedBatchNormalization, model_lib.activation_layer = saved


@contextlib.contextmanager
def no_compiled_metrics():
    """Compile models without fit.output_metrics (loss only, as the twin)."""
    from deepwave_tf import fit

    saved = fit.output_metrics
    fit.output_metrics = list
    try:
        yield
    finally:
        fit.output_metrics = saved


def parse_twin(item: str) -> tuple[str, list[str]]:
    """`NAME[:section.key=value;...]` -> (config name, overrides)."""
    name, _, rest = item.partition(":")
    return name, [o for o in rest.split(";") if o]


def _fit_runner(model, ds, steps: int):
    """`steps` training steps through `model.fit` (one epoch), the loop `fit.run` trains with."""
    return functools.partial(
        model.fit, ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False
    )


def _set_steps_per_execution(model, spe: int) -> None:
    """Change a compiled model's steps per call (Keras retraces its train function)."""
    model.steps_per_execution = spe
    model.make_train_function(force=True)


def _repeat(n: int, fn, *args) -> None:
    for _ in range(n):
        fn(*args)


def bench_twins(
    items: list[str],
    rounds: int,
    steps: int,
    plain: bool,
    tob: bool,
    round_seconds: float,
    no_metrics: bool = False,
) -> list[dict]:
    """Keras model vs its PyTorch twin per config, interleaved; one dict of figures per config.

    The Keras side trains through `model.fit` on an in-memory dataset repeating
    one batch: the loop `fit.run` uses (a call runs `train.steps_per_execution`
    steps, metrics reset once per epoch). `tob` also times `train_on_batch`,
    the previous measure, which resets every metric variable on each call.
    """
    import tensorflow as tf
    import torch_twin

    from deepwave_tf import fit
    from deepwave_tf import model as model_lib
    from deepwave_tf.config import CONFIG_DIR, load_config

    results = []
    for item in items:
        name, overrides = parse_twin(item)
        cfg = load_config(CONFIG_DIR / f"{name}.toml", overrides)
        batch = torch_twin.random_batch(cfg, cfg.data.batch_size)
        seq, image, labels, wave = batch
        x = {k: tf.constant(v) for k, v in torch_twin.keras_inputs(cfg, seq, image, wave).items()}
        y = {k: tf.constant(v) for k, v in labels.items()}
        ds = tf.data.Dataset.from_tensors((x, y)).repeat()
        keras_model = fit.compile_model(model_lib.build_model(cfg), cfg, steps_per_epoch=0)
        spe = int(keras_model.steps_per_execution)
        twin, torch_step = torch_twin.make_trainer(cfg)
        parity = torch_twin.check_twin(cfg, keras_model, twin, batch)
        tb = torch_twin.to_torch(*batch)
        models = {"keras": keras_model}
        if plain:
            with plain_keras_layers():
                models["keras_plain"] = fit.compile_model(
                    model_lib.build_model(cfg), cfg, steps_per_epoch=0
                )
        if no_metrics:
            with no_compiled_metrics():
                models["keras_no_metrics"] = fit.compile_model(
                    model_lib.build_model(cfg), cfg, steps_per_epoch=0
                )
        # Size the rounds on one step per call (trace, then 2 timed steps per side), then
        # run as fit.run would for an epoch of that many steps (train.execution_steps).
        step_s = []
        for model in models.values():
            _set_steps_per_execution(model, 1)
            _fit_runner(model, ds, 2)()
            probe = 2
            while True:  # enough steps that fit's per-call cost (~20 ms) does not count
                with Clock() as c:
                    _fit_runner(model, ds, probe)()
                if c.wall >= 0.2 or probe >= 64:
                    break
                probe *= 4
            step_s.append(c.wall / probe)
        _repeat(2, torch_step, *tb)
        with Clock() as c:
            _repeat(2, torch_step, *tb)
        step_s.append(c.wall / 2)
        if tob:
            _repeat(2, keras_model.train_on_batch, x, y)
        n_steps = max(steps, math.ceil(round_seconds / max(step_s)))
        if n_steps >= spe:  # whole calls of train.steps_per_execution steps
            n_steps = spe * math.ceil(n_steps / spe)
        spe = cfg.train.execution_steps(n_steps)
        for model in models.values():
            _set_steps_per_execution(model, spe)
            _fit_runner(model, ds, spe)()  # trace the multi-step function
        runners = {key: _fit_runner(model, ds, n_steps) for key, model in models.items()}
        runners["torch"] = functools.partial(_repeat, n_steps, torch_step, *tb)
        if tob:
            runners["keras_train_on_batch"] = functools.partial(
                _repeat, n_steps, keras_model.train_on_batch, x, y
            )
        wall = {k: [] for k in runners}
        cpu = {k: [] for k in runners}
        n = n_steps * cfg.data.batch_size
        for _ in range(rounds):
            for key, run in runners.items():  # A B A B ...
                with Clock() as c:
                    run()
                wall[key].append(n / c.wall)
                cpu[key].append(1000 * c.cpu / n)
        ratios = [k / t for k, t in zip(wall["keras"], wall["torch"])]
        row = {
            "config": item,
            "params_keras": int(keras_model.count_params()),
            "params_torch": int(sum(p.numel() for p in twin.parameters())),
            "parity_max_abs": parity,
            "batch": cfg.data.batch_size,
            "rounds": rounds,
            "steps": n_steps,
            "steps_per_execution": spe,
            "runners": list(runners),
            **{f"{k}_ex_s": statistics.median(v) for k, v in wall.items()},
            **{f"{k}_cpu_ms_ex": statistics.median(v) for k, v in cpu.items()},
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
        for key in runners:
            if key.startswith("keras_"):
                row[f"ratio_{key}"] = statistics.median(
                    k / t for k, t in zip(wall[key], wall["torch"])
                )
        results.append(row)
        extra = "".join(
            f", {k[6:]} {row[f'{k}_ex_s']:.1f} ex/s ({row[f'ratio_{k}']:.2f})"
            for k in runners
            if k.startswith("keras_")
        )
        print(
            f"  {item}: Keras {row['keras_ex_s']:.1f} ex/s, PyTorch {row['torch_ex_s']:.1f} ex/s, "
            f"ratio {row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}){extra}; "
            f"{n_steps} steps a round, CPU ms/ex Keras {row['keras_cpu_ms_ex']:.2f} PyTorch "
            f"{row['torch_cpu_ms_ex']:.2f}; outputs equal to {row['parity_max_abs']:.0e} "
            "with the same weights",
            flush=True,
        )
        del keras_model, twin, models
    return results


def set_threads(threads: int, with_torch: bool) -> str:
    """The same intra-op and inter-op thread counts for TF and (if used) torch; before any op runs."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if not with_torch:
        return ""
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install -e '.[bench]')"
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    return ""


def section_pipeline(records, default, batches: int) -> dict[str, float]:
    """Input pipeline alone: examples/s per variant."""
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
        ex_s, cpu = bench_pipeline(records, cfg, split, training, batches)
        rows.append([label, ex_s, cpu])
    table(
        f"input pipeline (batch {default.data.batch_size}, {batches} batches after warm-up)",
        ["pipeline", "examples/s (wall)", "CPU ms/example"],
        rows,
    )
    return {r[0]: r[1] for r in rows}


def section_noise() -> dict[str, float]:
    """Noise bank build (once per pipeline; cached within a process): wall s per variant."""
    from deepwave_tf import augment
    from deepwave_tf.config import CONFIG_DIR, load_config

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
    return {r[0]: r[2] for r in rows}


def config_variants(configs: str) -> list[tuple[str, list[str]]]:
    """`--configs` entries `NAME[@section.key=value;...]` -> (config name, overrides);
    the plain default is also measured with `model.first_conv_stride=1`."""
    variants = []
    for entry in (e for e in configs.split(",") if e):
        name, _, extra = entry.partition("@")
        overrides = [o for o in extra.split(";") if o]
        variants.append((name, overrides))
        if name == "default" and not overrides:
            variants.append(("default", ["model.first_conv_stride=1"]))
    return variants


def section_train(records, configs: str, steps: int) -> dict[str, float]:
    """Training throughput per config on records: examples/s per config."""
    from deepwave_tf.config import CONFIG_DIR, load_config

    rows, train = [], {}
    variants = config_variants(configs)
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


def section_targets(pipeline: dict[str, float], train: dict[str, float]) -> None:
    """Issue 3's targets, when both the pipeline and the default's training were measured."""
    if "default" not in train or "train, augmentation on" not in pipeline:
        return
    on, off = pipeline["train, augmentation on"], pipeline["train, augmentation off"]
    table(
        "targets",
        ["target", "measured", "met"],
        [
            ["pipeline (augmentation off) >= 2,000 ex/s", f"{off:,.0f}", str(off >= 2000)],
            ["pipeline (augmentation on) >= 2,000 ex/s", f"{on:,.0f}", str(on >= 2000)],
            [
                "pipeline (augmentation on) >= 10x default training",
                f"{on / train['default']:,.0f}x",
                str(on >= 10 * train["default"]),
            ],
        ],
    )


def section_twins(args) -> list[dict]:
    """Keras vs PyTorch per shipped config: the side-by-side table."""
    items = [t for t in args.twins.split(",") if t]
    print(
        f"\nKeras vs PyTorch: {args.rounds} rounds per side of >= {args.twin_steps} steps and "
        f">= {args.round_seconds} s, {args.threads} threads each"
    )
    results = bench_twins(
        items,
        args.rounds,
        args.twin_steps,
        args.plain_keras,
        args.train_on_batch,
        args.round_seconds,
        args.no_metrics,
    )
    header = [
        "config",
        "steps/execution",
        "Keras ex/s",
        "PyTorch ex/s",
        "Keras/PyTorch (rounds' range)",
        "met (>= 1.2)",
    ]
    extras = [
        (flag, key, label)
        for flag, key, label in (
            (args.plain_keras, "keras_plain", "plain BN/act"),
            (args.train_on_batch, "keras_train_on_batch", "train_on_batch"),
            (args.no_metrics, "keras_no_metrics", "no metrics"),
        )
        if flag
    ]
    for _, _, label in extras:
        header.insert(-2, f"Keras {label} ex/s (ratio)")
    rows = []
    for r in results:
        row = [
            r["config"],
            str(r["steps_per_execution"]),
            f"{r['keras_ex_s']:,.1f}",
            f"{r['torch_ex_s']:,.1f}",
            f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})",
            str(r["ratio"] >= 1.2),
        ]
        for _, key, _ in extras:
            cell = (
                f"{r[f'{key}_ex_s']:,.1f} ({r[f'ratio_{key}']:.2f})" if key in r["runners"] else "-"
            )
            row.insert(-2, cell)
        rows.append(row)
    table(
        f"Keras vs PyTorch twin (train step, batch {results[0]['batch'] if results else '-'}, "
        f"random inputs, medians of {args.rounds} alternating rounds)",
        header,
        rows,
    )
    return results


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
        "--sections",
        default=",".join(SECTIONS),
        help=f"which parts to run, of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--twins",
        default=",".join(TWINS),
        help="configs against their PyTorch twin (NAME[:overrides])",
    )
    parser.add_argument("--rounds", type=int, default=5, help="Keras/PyTorch alternations per twin")
    parser.add_argument(
        "--twin-steps", type=int, default=4, help="training steps per round and side"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="TF and torch intra/inter-op threads"
    )
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=1.0,
        help="a twin round runs at least this long per side (amortises fit's per-call cost)",
    )
    parser.add_argument(
        "--plain-keras", action="store_true", help="also time Keras's own BN/Activation layers"
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="also time the Keras model compiled without its metrics (the twin computes none)",
    )
    parser.add_argument(
        "--train-on-batch",
        action="store_true",
        help="also time the Keras model by train_on_batch (the previous pass's measure)",
    )
    parser.add_argument(
        "--torch-omp-wait",
        choices=("passive", "active"),
        default="passive",
        help="OMP_WAIT_POLICY for torch's OpenMP threads (default passive: see the docstring)",
    )
    args = parser.parse_args(argv)
    # Read when torch's OpenMP runtime loads, so before any import of torch.
    os.environ["OMP_WAIT_POLICY"] = args.torch_omp_wait.upper()
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {list(SECTIONS)}")

    import tensorflow as tf

    # Before any TF (or torch) op runs: both frameworks get the same thread pools.
    no_torch = set_threads(args.threads, "twins" in sections)

    from deepwave_tf import prep
    from deepwave_tf.config import CONFIG_DIR, load_config

    summary: dict = {
        "cpus": os.cpu_count(),
        "tf": tf.__version__,
        "threads": args.threads,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "load_start": os.getloadavg(),
    }
    print(
        f"# bench_train: {summary['cpus']} CPUs, TF {tf.__version__}, {args.threads} threads, "
        f"OMP_WAIT_POLICY={summary['omp_wait_policy']}, load avg {summary['load_start']}"
    )
    default = load_config(CONFIG_DIR / "default.toml")
    tmp = None
    records = args.records
    if records is None and {"pipeline", "train"} & set(sections):
        tmp = tempfile.TemporaryDirectory(prefix="bench_train_")
        records = Path(tmp.name) / "records"
        # A waveform-branch config (configs/waveform.toml) reads the samples: store them then.
        wave = "train" in sections and any(
            load_config(CONFIG_DIR / f"{n}.toml", o).model.uses_waveform
            for n, o in config_variants(args.configs)
        )
        prep_cfg = default.replace(prep=dataclasses.replace(default.prep, store_waveform=wave))
        with Clock() as c:
            result = prep.run(prep_cfg, args.data, records, progress=False)
        print(f"prepped {args.data} -> {records} in {c.wall:.1f}s: {result.counts}")

    pipeline, train = {}, {}
    if "pipeline" in sections:
        summary["pipeline_ex_s"] = pipeline = section_pipeline(records, default, args.batches)
    if "noise" in sections:
        summary["noise_bank_wall_s"] = section_noise()
    if "train" in sections:
        summary["train_ex_s"] = train = section_train(records, args.configs, args.steps)
    section_targets(pipeline, train)
    if "twins" in sections:
        if no_torch:
            print(f"\nKeras vs PyTorch: skipped, {no_torch}")
            summary["twins"] = no_torch
        else:
            import torch

            summary["torch"] = torch.__version__
            summary["twins"] = section_twins(args)

    summary["load_end"] = os.getloadavg()
    print(f"\nload avg at the end {summary['load_end']}")
    if tmp is not None:
        tmp.cleanup()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
