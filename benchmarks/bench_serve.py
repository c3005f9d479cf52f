"""Benchmark `serve`: throughput and latency over loopback, batching on and off, RSS over many requests.

    .venv/bin/python benchmarks/bench_serve.py [--config configs/default.toml] [--model EXPORT]
        [--clients 1,8,32] [--requests 200] [--max-seconds 60] [--rss-requests 5000]

Model: `--model EXPORT`, or `--config` (default configs/default.toml, the full-size
CNN + BiLSTM) built with random weights (seed 1125) and exported uncalibrated, as in
bench_infer.py: speed does not depend on the weights. Input: one 5 s clip of the
embedded sample (data/sample/test), decoded to 32 kHz.

Measured (the server is `python -m deepwave_tf.serve` in its own process on
127.0.0.1 and a free port; the clients are threads of this process, each with a
keep-alive connection; everything stays on loopback):
- for 1, 8 and 32 concurrent clients, with batching (`--max-batch 32`, 5 ms wait)
  and without (`--max-batch 1`): requests/s and p50 / p95 / p99 latency of
  `POST :predict` in TF Serving's row format (one 5 s clip per request, the JSON
  encoded once by the client) and of `POST :score` (the clip's Ogg file as the body);
  each level stops after `--requests` requests or `--max-seconds`, whichever first;
- the server's mean batch size per level (from its /metrics);
- direct in-process calls of the same SavedModel's `serving_default` on decoded
  clips at batch sizes 1 and 32 and at each level's mean batch size (clips/s),
  and the ratio server / direct;
- the server's RSS (from /proc) every 500 requests over `--rss-requests`
  requests at 32 clients with batching: it must stay flat.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CLIP = REPO / "data" / "sample" / "test" / "TEST_00120.ogg"


def table(title: str, header: list[str], rows: list[list]) -> None:
    _common.table(title, header, rows, lambda c: f"{c:.3g}" if isinstance(c, float) else str(c))


def make_export(config: Path, work: Path) -> Path:
    import keras

    from deepwave_tf import export
    from deepwave_tf import model as model_lib
    from deepwave_tf.config import load_config

    cfg = load_config(config)
    keras.utils.set_random_seed(1125)
    model = model_lib.build_model(cfg)
    run_dir = work / "run"
    run_dir.mkdir(parents=True)
    model.save(run_dir / "model.keras")
    cfg.save(run_dir)
    start = time.perf_counter()
    out = export.run(run_dir, calibrate=False, verbose=False)
    print(f"export ({model.count_params():,} parameters): {time.perf_counter() - start:.1f} s")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m deepwave_tf.serve` on 127.0.0.1 in a child process."""

    def __init__(self, export_dir: Path, max_batch: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deepwave_tf.serve",
                "--model",
                str(export_dir),
                "--port",
                str(self.port),
                "--max-batch",
                str(max_batch),
                "--max-queue",
                "256",
                "--log-level",
                "warning",
            ],
            env=env,
        )

    def __enter__(self):
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(60)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def batches(self) -> tuple[float, float]:
        """(SavedModel calls, rows) so far, from /metrics."""
        import httpx

        text = httpx.get(self.url + "/metrics").text

        def value(name: str) -> float:
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            return 0.0

        return value("deepwave_batch_rows_count"), value("deepwave_batch_rows_sum")


def load(url: str, body: bytes, content_type: str, clients: int, requests: int, max_seconds: float):
    """`requests` POSTs from `clients` threads; returns (req/s, latencies in s, errors)."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + max_seconds

    def client():
        with httpx.Client(timeout=120, headers={"content-type": content_type}) as http:
            while time.monotonic() < stop_at:
                with lock:
                    if next(counter, None) is None:
                        return
                t = time.perf_counter()
                r = http.post(url, content=body)
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    errors[0] += r.status_code != 200

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - start
    return len(latencies) / wall, np.asarray(latencies), errors[0]


def direct_rate(export_dir: Path, clip: np.ndarray, batch: int, seconds: float = 10.0) -> float:
    """Clips/s of `serving_default` called in-process on `[batch, samples]`."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    x = tf.constant(np.repeat(clip[None], batch, axis=0))
    fn(waveform=x)  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        fn(waveform=x)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "default.toml")
    p.add_argument("--model", type=Path, default=None, help="an existing export (skips exporting)")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--requests", type=int, default=200, help="requests per level at most")
    p.add_argument("--max-seconds", type=float, default=60.0, help="seconds per level at most")
    p.add_argument("--rss-requests", type=int, default=5000)
    p.add_argument("--skip-score", action="store_true", help="only :predict")
    p.add_argument("--rss-only", action="store_true", help="only the RSS run")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]

    from deepwave_tf import audio

    with tempfile.TemporaryDirectory() as tmp:
        export_dir = args.model or make_export(args.config, Path(tmp))
        clip = audio.load(CLIP, 32000)
        predict_body = json.dumps({"instances": [clip.tolist()]}).encode()
        ogg = CLIP.read_bytes()
        print(
            f"load average at start: {os.getloadavg()[0]:.1f}; clip {len(clip) / 32000:.1f} s, "
            f"JSON body {len(predict_body) / 1e6:.1f} MB, Ogg body {len(ogg) / 1e3:.0f} kB"
        )
        endpoints = [("predict", "/v1/models/deepwave:predict", predict_body, "application/json")]
        if not args.skip_score:
            endpoints.append(("score", "/v1/models/deepwave:score", ogg, "audio/ogg"))
        rows, mean_batches = [], {}
        for batching, max_batch in () if args.rss_only else (("on", 32), ("off", 1)):
            with Server(export_dir, max_batch) as server:
                for name, path, body, ctype in endpoints:
                    load(server.url + path, body, ctype, 2, 4, 30)  # warm the connections
                    for clients in levels:
                        calls0, rows0 = server.batches()
                        rate, lat, errors = load(
                            server.url + path, body, ctype, clients, args.requests, args.max_seconds
                        )
                        calls1, rows1 = server.batches()
                        mean_batch = (rows1 - rows0) / max(calls1 - calls0, 1)
                        mean_batches[(name, batching, clients)] = mean_batch
                        p50, p95, p99 = (1000 * np.percentile(lat, q) for q in (50, 95, 99))
                        rows.append(
                            [
                                name,
                                batching,
                                clients,
                                len(lat),
                                errors,
                                rate,
                                p50,
                                p95,
                                p99,
                                mean_batch,
                            ]
                        )
                        print(
                            f"  {name} batching {batching}, {clients} clients: {rate:.1f} req/s",
                            flush=True,
                        )
        if rows:
            report_levels(export_dir, clip, rows, mean_batches)
        if args.rss_requests:
            rss_run(export_dir, predict_body, args.rss_requests)
    return 0


def report_levels(export_dir: Path, clip: np.ndarray, rows: list, mean_batches: dict) -> None:
    table(
        f"serve over loopback (load average now {os.getloadavg()[0]:.1f})",
        [
            "endpoint",
            "batching",
            "clients",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "mean batch",
        ],
        rows,
    )

    sizes = sorted({1, 32} | {max(1, round(b)) for b in mean_batches.values()})
    direct = {b: direct_rate(export_dir, clip, b) for b in sizes}
    table(
        "direct in-process serving_default on decoded clips",
        ["batch", "clips/s"],
        [[b, direct[b]] for b in sizes],
    )
    ratio_rows = []
    for row in rows:
        name, batching, clients, rate, mean_batch = row[0], row[1], row[2], row[5], row[9]
        b = max(1, round(mean_batch))
        ratio_rows.append([name, batching, clients, b, rate, direct[b], rate / direct[b]])
    table(
        "server / direct at the same batch size",
        ["endpoint", "batching", "clients", "batch", "server req/s", "direct clips/s", "ratio"],
        ratio_rows,
    )


def rss_run(export_dir: Path, predict_body: bytes, requests: int) -> None:
    with Server(export_dir, 32) as server:
        samples = [[0, server.rss_mb()]]
        done = 0
        start = time.perf_counter()
        while done < requests:
            n = min(500, requests - done)
            url = server.url + "/v1/models/deepwave:predict"
            load(url, predict_body, "application/json", 32, n, 3600)
            done += n
            samples.append([done, server.rss_mb()])
            print(f"  {done} requests: RSS {samples[-1][1]:.0f} MB", flush=True)
        wall = time.perf_counter() - start
    table(
        f"server RSS over {requests} :predict requests, 32 clients, batching on "
        f"({wall:.0f} s, load average now {os.getloadavg()[0]:.1f})",
        ["requests", "RSS MB"],
        samples,
    )


if __name__ == "__main__":
    sys.exit(main())
