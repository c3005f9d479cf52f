"""Benchmark `prep`: clips/s against the notebooks' approach and decode-only, peak RSS, record encodings, backends.

    .venv/bin/python benchmarks/bench_prep.py [--clips 200] [--rss-clips 200,2000] [--skip notebook,...]

Prints one table per measurement. Everything runs on the same clips: the first
`--clips` rows of the dev corpus's train.csv (../shared/data/deepwave-dev or $DEEPWAVE_DEV).

- prep: `prep.run` with configs/default.toml in a fresh subprocess (wall time of
  `run`, including the one-off tf.function trace; TF import excluded), and its
  peak RSS (getrusage in the child) at each size in `--rss-clips` (sizes above
  the corpus repeat clips under new ids).
- (a) notebook: the seed notebooks' per-file pipeline in one process:
  librosa.load, librosa MFCC padded/truncated to a fixed length, mel spectrogram
  rendered with librosa.display.specshow to a PNG file, read back, resized to
  128x128 with PIL, grayscaled and scaled to [0, 1].
- (b) decode-only: `audio.load_soundfile` (libsndfile + soxr) on all cores,
  thread pool and process pool; the faster is the reference.
- where prep's time goes: decode, features (`compute_features` as one
  tf.function per batch size), serialisation + write, per clip.
- record encodings: size and tf.data read speed (parse + decode, batched) of
  raw float32 bytes (uncompressed / GZIP / ZLIB), raw float16 and FloatList.
- audio backends: soundfile vs tensorflow-io decoding of data/sample.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import platform
import subprocess
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
SAMPLE = REPO / "data" / "sample"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def table(title: str, header: list[str], rows: list[list]) -> None:
    _common.table(title, header, rows, _fmt)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def cpu_seconds() -> float:
    """CPU time of this process (all threads), user + system."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def dev_rows(n: int) -> list[dict[str, str]]:
    """n train rows of the dev corpus with absolute paths; repeats (new ids) beyond the corpus."""
    with open(DEV / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i in range(n):
        r = rows[i % len(rows)]
        rid = r["id"] if i < len(rows) else f"{r['id']}_R{i // len(rows)}"
        out.append({"id": rid, "path": str((DEV / r["path"]).resolve()), "label": r["label"]})
    return out


def write_data_dir(rows: list[dict[str, str]], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "train.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "path", "label"])
        w.writeheader()
        w.writerows(rows)
    return directory


_PREP_CHILD = """
import json, resource, sys, time
from pathlib import Path
from deepwave_tf import prep
from deepwave_tf.config import load_config
cfg = load_config(sys.argv[1], sys.argv[4:])
import tensorflow  # noqa: F401  (import cost is not prep's)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start, cpu0 = time.perf_counter(), cpu()
result = prep.run(cfg, Path(sys.argv[2]), Path(sys.argv[3]), progress=False)
seconds, cpu_s = time.perf_counter() - start, cpu() - cpu0
clips = sum(c["total"] for c in result.counts.values())
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_s, "clips": clips, "errors": len(result.errors),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_prep_child(data_dir: Path, out_dir: Path, overrides: list[str] = ()) -> dict:
    cmd = [
        sys.executable,
        "-c",
        _PREP_CHILD,
        str(REPO / "configs" / "default.toml"),
        str(data_dir),
        str(out_dir),
    ]
    proc = subprocess.run([*cmd, *overrides], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"prep child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- #
# (a) the notebooks' approach
# --------------------------------------------------------------------------- #
def notebook_features(path: str, png: Path, sr: int = 32000, n_mfcc: int = 40, max_len: int = 313):
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    y, sr = librosa.load(path, sr=sr)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    if mfcc.shape[1] < max_len:
        mfcc = np.pad(mfcc, ((0, 0), (0, max_len - mfcc.shape[1])))
    else:
        mfcc = mfcc[:, :max_len]
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128), ref=np.max)
    fig = plt.figure(figsize=(3, 3))
    librosa.display.specshow(mel, sr=sr)
    plt.axis("off")
    fig.savefig(png, bbox_inches="tight", pad_inches=0)
    plt.close(fig)
    image = Image.open(png).convert("L").resize((128, 128))
    return mfcc.T, np.asarray(image, np.float32) / 255.0


def bench_notebook(rows) -> tuple[float, float]:
    """(clips/s, CPU ms/clip) of the notebooks' per-file pipeline."""
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "mel.png"
        notebook_features(rows[0]["path"], png)  # imports and matplotlib set-up
        start, cpu = time.perf_counter(), cpu_seconds()
        for r in rows:
            notebook_features(r["path"], png)
        return len(rows) / (time.perf_counter() - start), 1000 * (cpu_seconds() - cpu) / len(rows)


# --------------------------------------------------------------------------- #
# (b) decode only
# --------------------------------------------------------------------------- #
def _decode(path: str) -> int:
    from deepwave_tf import audio

    return audio.load_soundfile(path, 32000).shape[0]


def bench_decode(
    paths: list[str], kind: str, workers: int, repeats: int = 2
) -> tuple[float, float | str]:
    """Best clips/s over `repeats`, and CPU ms/clip (threads only: pool processes' CPU is not visible)."""
    pools = {
        "threads": concurrent.futures.ThreadPoolExecutor,
        "processes": concurrent.futures.ProcessPoolExecutor,
    }
    best, cpu_ms = 0.0, "-"
    with pools[kind](workers) as pool:
        list(pool.map(_decode, paths[:workers]))  # warm up workers/imports
        for _ in range(repeats):
            start, cpu = time.perf_counter(), cpu_seconds()
            list(pool.map(_decode, paths, chunksize=1 if kind == "threads" else 8))
            rate = len(paths) / (time.perf_counter() - start)
            if rate > best:
                best = rate
                cpu_ms = 1000 * (cpu_seconds() - cpu) / len(paths) if kind == "threads" else "-"
    return best, cpu_ms


# --------------------------------------------------------------------------- #
# Breakdown of prep's per-clip cost
# --------------------------------------------------------------------------- #
def bench_breakdown(paths: list[str], batch_sizes: list[int]) -> None:
    import tensorflow as tf

    from deepwave_tf import audio, features, prep, records
    from deepwave_tf.config import load_config

    cfg = load_config(REPO / "configs" / "default.toml")
    fcfg = cfg.features
    n = len(paths)
    rows = []

    def timed(label: str, count: int, fn) -> None:
        start, cpu = time.perf_counter(), cpu_seconds()
        fn()
        wall, cpu_s = time.perf_counter() - start, cpu_seconds() - cpu
        rows.append(
            [label, f"{1000 * wall / count:.2f}", f"{1000 * cpu_s / count:.2f}", count / wall]
        )

    clips = []
    timed(
        "decode + resample + fix_length (1 thread)",
        n,
        lambda: clips.extend(
            prep.fix_length_np(audio.load_soundfile(p, fcfg.sample_rate_hz), fcfg) for p in paths
        ),
    )
    wave = np.stack(clips)
    feats = {}
    for b in batch_sizes:
        if b > n:
            continue
        fn = tf.function(
            lambda w: features.compute_features(w, fcfg),
            input_signature=[tf.TensorSpec([b, fcfg.num_samples], tf.float32)],
            autograph=False,
        )
        batches = [wave[i : i + b] for i in range(0, n - b + 1, b)]
        fn(tf.constant(batches[0]))  # trace

        def run(fn=fn, batches=batches):
            for x in batches:
                out = fn(tf.constant(x))
                feats["mfcc"], feats["mel"] = out[features.MFCC].numpy(), out[features.MEL].numpy()

        timed(f"features, batch {b} (one tf.function, all cores)", len(batches) * b, run)
    # |STFT| alone (the first and largest step of the feature graph).
    b = min(cfg.prep.batch_size, n)
    stft = tf.function(
        lambda w: tf.abs(tf.signal.stft(w, fcfg.n_fft, fcfg.hop_length_samples, fcfg.n_fft)),
        input_signature=[tf.TensorSpec([b, fcfg.num_samples + fcfg.n_fft], tf.float32)],
        autograph=False,
    )
    padded = np.pad(wave, ((0, 0), (fcfg.n_fft // 2, fcfg.n_fft // 2)))
    stft(tf.constant(padded[:b]))
    timed(
        f"  of which |STFT| alone, batch {b}",
        (n // b) * b,
        lambda: [stft(tf.constant(padded[i : i + b])).numpy() for i in range(0, n - b + 1, b)],
    )
    with tempfile.TemporaryDirectory() as tmp:
        writer = tf.io.TFRecordWriter(str(Path(tmp) / "x.tfrecord"))
        ex = {"mfcc": feats["mfcc"][0], "mel": feats["mel"][0]}
        timed(
            "serialize_example + write",
            n,
            lambda: [
                writer.write(records.serialize_example(f"T_{i:05d}", ex, 1, 0)) for i in range(n)
            ],
        )
        writer.close()
    table(
        "Where prep's time goes (per clip; each stage alone)",
        ["stage", "wall ms/clip", "CPU ms/clip", "clips/s"],
        rows,
    )


# --------------------------------------------------------------------------- #
# Record encodings
# --------------------------------------------------------------------------- #
def bench_encodings(records_dir: Path, repeats: int = 3) -> None:
    import tensorflow as tf

    from deepwave_tf import records
    from deepwave_tf.config import load_config

    cfg = load_config(REPO / "configs" / "default.toml").features
    parse32 = records.make_parser(cfg, batched=True)
    examples = []
    for ex in tf.data.TFRecordDataset(
        [str(p) for p in records.shard_paths(records_dir, "train")]
    ).map(records.make_parser(cfg)):
        examples.append((ex["id"].numpy().decode(), ex["mfcc"].numpy(), ex["mel"].numpy()))

    def f16(ex_id, mfcc, mel):
        b = lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))  # noqa: E731
        i = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))  # noqa: E731
        feature = {"id": b(ex_id.encode()), "mfcc": b(mfcc.astype("<f2").tobytes()),
                   "mel": b(mel.astype("<f2").tobytes()), "fake": i(1), "real": i(0)}  # fmt: skip
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    def floatlist(ex_id, mfcc, mel):
        b = lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))  # noqa: E731
        i = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))  # noqa: E731
        fl = lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=v.ravel()))  # noqa: E731
        feature = {
            "id": b(ex_id.encode()),
            "mfcc": fl(mfcc),
            "mel": fl(mel),
            "fake": i(1),
            "real": i(0),
        }
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    base_spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "fake": tf.io.FixedLenFeature([], tf.int64),
        "real": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse16(serialized):
        spec = {
            **base_spec,
            "mfcc": tf.io.FixedLenFeature([], tf.string),
            "mel": tf.io.FixedLenFeature([], tf.string),
        }
        p = tf.io.parse_example(serialized, spec)
        for k, shape in (("mfcc", cfg.mfcc_shape), ("mel", cfg.mel_shape)):
            p[k] = tf.reshape(tf.cast(tf.io.decode_raw(p[k], tf.float16), tf.float32), [-1, *shape])
        return p

    def parse_fl(serialized):
        spec = {
            **base_spec,
            "mfcc": tf.io.FixedLenFeature([int(np.prod(cfg.mfcc_shape))], tf.float32),
            "mel": tf.io.FixedLenFeature([int(np.prod(cfg.mel_shape))], tf.float32),
        }
        p = tf.io.parse_example(serialized, spec)
        p["mfcc"] = tf.reshape(p["mfcc"], [-1, *cfg.mfcc_shape])
        p["mel"] = tf.reshape(p["mel"], [-1, *cfg.mel_shape])
        return p

    raw = lambda e: records.serialize_example(e[0], {"mfcc": e[1], "mel": e[2]}, 1, 0)  # noqa: E731
    variants = [
        ("float32 raw bytes, uncompressed", raw, "", parse32),
        ("float32 raw bytes, GZIP", raw, "GZIP", parse32),
        ("float32 raw bytes, ZLIB", raw, "ZLIB", parse32),
        ("float16 raw bytes, uncompressed", lambda e: f16(*e), "", parse16),
        ("float32 FloatList, uncompressed", lambda e: floatlist(*e), "", parse_fl),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, encode, compression, parse in variants:
            path = str(Path(tmp) / "x.tfrecord")
            start = time.perf_counter()
            with tf.io.TFRecordWriter(path, options=compression or None) as w:
                for e in examples:
                    w.write(encode(e))
            write_rate = len(examples) / (time.perf_counter() - start)
            size = os.path.getsize(path) / len(examples) / 1024
            # 5 passes per timing: a single pass over ~200 examples is too short to time.
            ds = (
                tf.data.TFRecordDataset(path, compression_type=compression)
                .repeat(5)
                .batch(32)
                .map(parse)
            )
            for _ in ds:  # warm the page cache and trace
                pass
            best = 0.0
            for _ in range(repeats):
                start = time.perf_counter()
                count = sum(int(tf.shape(b["mel"])[0]) for b in ds)
                best = max(best, count / (time.perf_counter() - start))
            rows.append([name, f"{size:.0f}", best, write_rate])
    table(
        f"Record encodings ({len(examples)} train examples; read = TFRecordDataset.repeat(5).batch(32).map(parse), best of {repeats})",
        ["encoding", "KiB/example", "read examples/s", "write examples/s"],
        rows,
    )


# --------------------------------------------------------------------------- #
# Audio backends
# --------------------------------------------------------------------------- #
def bench_backends(workers: int) -> None:
    from deepwave_tf import audio

    paths = sorted(str(p) for p in SAMPLE.glob("*/*.ogg"))
    rows = []
    for backend in ("soundfile", "tfio"):
        audio.load(paths[0], 32000, backend)  # load libraries, trace
        start = time.perf_counter()
        for p in paths:
            audio.load(p, 32000, backend)
        one = len(paths) / (time.perf_counter() - start)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            start = time.perf_counter()
            list(pool.map(lambda p, b=backend: audio.load(p, 32000, b), paths))
            many = len(paths) / (time.perf_counter() - start)
        rows.append([backend, one, many])
    table(
        f"Audio backends on data/sample ({len(paths)} ogg clips, decode to 32 kHz mono)",
        ["backend", "clips/s, 1 thread", f"clips/s, {workers} threads"],
        rows,
    )


# --------------------------------------------------------------------------- #
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--rss-clips", default="200,2000")
    parser.add_argument("--notebook-clips", type=int, default=0, help="clips for (a); 0 = --clips")
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of: notebook,decode,prep,rss,breakdown,encodings,backends",
    )
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    workers = os.cpu_count() or 1
    print(
        f"# bench_prep  {time.strftime('%Y-%m-%d %H:%M')}  {_cpu_name()}, {workers} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start (other processes share these cores)"
    )
    rows = dev_rows(args.clips)
    paths = [r["path"] for r in rows]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_data_dir(rows, tmp / "data")
        if "prep" not in skip:
            run_prep_child(data, tmp / "warm" / "recs")  # warm the page cache like the others
            r = run_prep_child(data, tmp / "out" / "recs")
            results["prep"] = (r["clips"] / r["seconds"], 1000 * r["cpu_seconds"] / r["clips"])
        if "decode" not in skip:
            results["decode_threads"] = bench_decode(paths, "threads", workers)
            results["decode_processes"] = bench_decode(paths, "processes", workers)
        if "notebook" not in skip:
            results["notebook"] = bench_notebook(rows[: args.notebook_clips or args.clips])
        prep_rate = results.get("prep", (0.0, "-"))[0]
        out = [
            [
                "prep (configs/default.toml; whole run() incl. trace)",
                *results.get("prep", ("-", "-")),
                "",
            ]
        ]
        if "notebook" in results:
            ratio = f"prep = {prep_rate / results['notebook'][0]:.1f}x (target >= 20x)"
            out.append(["(a) notebooks' approach, 1 process", *results["notebook"], ratio])
        if "decode_threads" in results:
            ref = max(results["decode_threads"][0], results["decode_processes"][0])
            out.append([f"(b) decode only, {workers} threads", *results["decode_threads"], ""])
            out.append([f"(b) decode only, {workers} processes", *results["decode_processes"], ""])
            out.append(["prep / faster (b)", "", "", f"{prep_rate / ref:.2f}x (target >= 0.5x)"])
        table(
            f"Throughput on {len(rows)} dev clips",
            ["pipeline", "clips/s", "CPU ms/clip", "ratio"],
            out,
        )

        if "rss" not in skip:
            rss_rows = []
            for n in [int(x) for x in args.rss_clips.split(",")]:
                d = write_data_dir(dev_rows(n), tmp / f"rss{n}")
                r = run_prep_child(d, tmp / f"rss{n}_out" / "recs")
                cpu_ms = 1000 * r["cpu_seconds"] / r["clips"]
                rss_rows.append([n, r["maxrss_mb"], r["clips"] / r["seconds"], cpu_ms])
            table(
                "prep peak RSS (fresh process, configs/default.toml)",
                ["clips", "peak RSS MB", "clips/s", "CPU ms/clip"],
                rss_rows,
            )
        if "breakdown" not in skip:
            bench_breakdown(paths[: min(len(paths), 128)], [4, 8, 16, 32, 64])
        if "encodings" not in skip:
            recs = tmp / "out" / "recs"
            if not (recs / "manifest.json").exists():
                run_prep_child(data, recs)
            bench_encodings(recs)
    if "backends" not in skip:
        bench_backends(workers)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
