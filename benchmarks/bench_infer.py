"""Benchmark inference: `submit` through the SavedModel vs the notebooks' per-file way.

    .venv/bin/python benchmarks/bench_infer.py [--clips 200] [--baseline-clips 40]
                                               [--config configs/default.toml] [--latency-calls 50]

Model: `--config` (default configs/default.toml: the full-size CNN + BiLSTM) built
with random weights (seed 1125), exported with `export.run(..., calibrate=False)`:
speed does not depend on the weights. Clips: the first `--clips` rows of the dev
corpus's test.csv (../shared/data/deepwave-dev or $DEEPWAVE_DEV: 5 s Ogg Vorbis at 32 kHz).

Measured (wall time, one process, TF import excluded):
- submit: `submit.run` on the clips, including loading the SavedModel, and the
  steady state (`serving.score_files` with the model loaded and warmed up):
  tf.data parallel decode (soundfile + soxr) -> batches of 32 -> `serving_default`
  (features computed in the graph).
- serving_default latency: one decoded 5 s clip per call, p50 / p95 (ms), and the
  model-only throughput on batches of 32 decoded clips.
- notebook way, per file: `librosa.load`, librosa MFCC padded/truncated to the model's
  frames, librosa mel spectrogram in dB rendered with `librosa.display.specshow` to a
  PNG, read back and resized with PIL to the model's mel shape (as the notebooks fed
  images), then the Keras model's `predict` on that one clip. A lean variant skips
  the image (numpy log-mel straight into the model), the notebooks' best case.
- decode only: `audio.load` of every clip on a thread pool (the ceiling for any
  pipeline that decodes compressed audio).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np

REPO = Path(__file__).resolve().parent.parent
# The dev corpus beside the checkout (../shared/data/deepwave-dev), or $DEEPWAVE_DEV.
DEV = Path(os.environ.get("DEEPWAVE_DEV", REPO.parent / "shared" / "data" / "deepwave-dev"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def table(title: str, header: list[str], rows: list[list]) -> None:
    _common.table(title, header, rows, lambda c: f"{c:.3g}")


def dev_test_rows(n: int) -> list[tuple[str, str]]:
    with open(DEV / "test.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [(r["id"], str((DEV / r["path"]).resolve())) for r in rows]


def make_export(cfg, work: Path) -> tuple[Path, object]:
    """A run dir with a random-weight model, exported uncalibrated. Returns (export dir, keras model)."""
    import keras

    from deepwave_tf import export
    from deepwave_tf import model as model_lib

    keras.utils.set_random_seed(1125)
    model = model_lib.build_model(cfg)
    run_dir = work / "run"
    run_dir.mkdir(parents=True)
    model.save(run_dir / "model.keras")
    cfg.save(run_dir)
    start = time.perf_counter()
    out = export.run(run_dir, calibrate=False, verbose=False)
    print(
        f"export (random weights, {model.count_params():,} parameters): {time.perf_counter() - start:.1f} s"
    )
    return out, model


def notebook_inputs(path: str, cfg, png: Path | None) -> dict[str, np.ndarray]:
    """The notebooks' per-file features, shaped for the model (batch of one)."""
    import librosa

    f = cfg.features
    y, sr = librosa.load(path, sr=f.sample_rate_hz)
    mfcc = librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=f.n_mfcc, n_fft=f.n_fft, hop_length=f.hop_length_samples, n_mels=f.n_mels
    )
    frames = f.num_frames
    mfcc = (
        mfcc[:, :frames]
        if mfcc.shape[1] >= frames
        else np.pad(mfcc, ((0, 0), (0, frames - mfcc.shape[1])))
    )
    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=f.n_fft, hop_length=f.hop_length_samples, n_mels=f.n_mels
        ),
        ref=np.max,
    )
    if png is not None:
        import librosa.display
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from PIL import Image

        fig = plt.figure(figsize=(4, 4))
        librosa.display.specshow(mel, sr=sr)
        plt.axis("off")
        fig.savefig(png, bbox_inches="tight", pad_inches=0)
        plt.close(fig)
        image = Image.open(png).convert("L").resize((frames, f.n_mels))
        mel = np.asarray(image, np.float32) / 255.0
    else:
        mel = (
            mel[:, :frames]
            if mel.shape[1] >= frames
            else np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))
        )
    return {"mfcc": mfcc.T[None].astype(np.float32), "mel": mel[None, ..., None].astype(np.float32)}


def bench_notebook(model, cfg, paths: list[str], render: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "mel.png" if render else None
        model.predict(notebook_inputs(paths[0], cfg, png), verbose=0)  # warm-up (tracing)
        start = time.perf_counter()
        for p in paths:
            model.predict(notebook_inputs(p, cfg, png), verbose=0)
        return time.perf_counter() - start


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (TF's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timer:
    """Best (lowest wall time) of several runs, with that run's CPU time.

    The machine is shared: the best of a few runs is the least disturbed one,
    and CPU seconds per clip do not depend on what else is running.
    """

    def __init__(self):
        self.best: dict[str, tuple[float, float]] = {}

    def run(self, name: str, fn) -> None:
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        fn()
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        if name not in self.best or wall < self.best[name][0]:
            self.best[name] = (wall, cpu)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument(
        "--baseline-clips", type=int, default=40, help="clips for the (slow) notebook way"
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "default.toml")
    parser.add_argument("--latency-calls", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds over all methods; the best is kept"
    )
    args = parser.parse_args(argv)

    import tensorflow as tf

    from deepwave_tf import audio, serving, submit
    from deepwave_tf.config import load_config

    cfg = load_config(args.config)
    rows = dev_test_rows(args.clips)
    paths = [p for _, p in rows]
    base = paths[: args.baseline_clips]
    sr = cfg.features.sample_rate_hz
    print(
        f"cpus: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}; "
        f"config {args.config.name} (model '{cfg.model.name}'); {len(rows)} dev test clips; "
        f"best of {args.repeats} rounds"
    )

    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export_dir, keras_model = make_export(cfg, work)
        data = work / "data"
        data.mkdir()
        with open(data / "test.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "path"])
            w.writerows(rows)

        model = serving.load_export(export_dir)
        serve = model._serve
        batch = tf.constant(np.stack([audio.load(p, sr) for p in paths[: args.batch_size]]))
        # Warm-ups: the first calls trace / allocate.
        serving.score_files(
            model, paths[: args.batch_size], batch_size=args.batch_size, progress=False
        )
        serve(waveform=batch)
        with tempfile.TemporaryDirectory() as png_dir:
            keras_model.predict(notebook_inputs(base[0], cfg, Path(png_dir) / "m.png"), verbose=0)

        def run_submit():
            result = submit.run(
                export_dir,
                data,
                work / "submission.csv",
                batch_size=args.batch_size,
                progress=False,
            )
            assert result.exit_code == 0 and len(result.ids) == len(rows)

        def run_decode():
            with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
                list(pool.map(lambda p: audio.load(p, sr), paths))

        def run_model_only():
            for _ in range(3):
                serve(waveform=batch)["fake"].numpy()

        for _ in range(args.repeats):
            timer.run("notebook", lambda: bench_notebook(keras_model, cfg, base, render=True))
            timer.run("notebook_lean", lambda: bench_notebook(keras_model, cfg, base, render=False))
            timer.run("submit", run_submit)
            timer.run(
                "steady",
                lambda: serving.score_files(
                    model, paths, batch_size=args.batch_size, progress=False
                ),
            )
            timer.run("decode", run_decode)
            timer.run("model_only", run_model_only)

        # serving_default latency, one decoded clip per call.
        wav = tf.constant(audio.load(paths[0], sr)[None])
        for _ in range(5):
            serve(waveform=wav)
        times = []
        for _ in range(args.latency_calls):
            t = time.perf_counter()
            serve(waveform=wav)["fake"].numpy()
            times.append(1000 * (time.perf_counter() - t))
        p50, p95 = np.percentile(times, [50, 95])

    counts = {
        "notebook": len(base),
        "notebook_lean": len(base),
        "submit": len(paths),
        "steady": len(paths),
        "decode": len(paths),
        "model_only": 3 * args.batch_size,
    }
    labels = {
        "notebook": "notebook: librosa + mel image + Keras predict per clip",
        "notebook_lean": "notebook, lean: librosa numpy features + Keras predict per clip",
        "submit": "submit (SavedModel, incl. model load)",
        "steady": "submit steady state (serving.score_files)",
        "decode": "decode only (audio.load, thread pool)",
        "model_only": "serving_default only, batches of decoded clips",
    }
    rate = {k: counts[k] / timer.best[k][0] for k in counts}
    cpu_rate = {k: counts[k] / max(timer.best[k][1], 1e-9) for k in counts}
    table(
        "throughput (higher is better)",
        [
            "method",
            "clips",
            "wall s",
            "clips/s",
            "x notebook",
            "x lean",
            "CPU s",
            "clips/CPU s",
            "x notebook (CPU)",
        ],
        [
            [
                labels[k],
                str(counts[k]),
                timer.best[k][0],
                rate[k],
                rate[k] / rate["notebook"],
                rate[k] / rate["notebook_lean"],
                timer.best[k][1],
                cpu_rate[k],
                cpu_rate[k] / cpu_rate["notebook"],
            ]
            for k in counts
        ],
    )
    table(
        "serving_default latency, one 5 s clip per call (ms)",
        ["calls", "p50", "p95", "min"],
        [[str(args.latency_calls), p50, p95, min(times)]],
    )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
