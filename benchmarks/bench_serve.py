"""Benchmark `serve`: throughput, latency and CPU over loopback against the SavedModel called directly.

    .venv/bin/python benchmarks/bench_serve.py [--config configs/default.toml] [--model EXPORT]
        [--clients 1,8,32] [--paths predict,score-ogg,score-wav] [--requests 300]
        [--max-seconds 20] [--direct-seconds 3] [--rss-requests 5000] [--rss-max-seconds 900]
        [--rss-only]

Model: `--model EXPORT`, or `--config` (default configs/default.toml, the full-size
CNN + BiLSTM) built with random weights (seed 1125) and exported uncalibrated, as in
bench_infer.py: speed does not depend on the weights. Input: one 5 s clip of the
embedded sample (data/sample/test/TEST_00120.ogg, 32 kHz mono).

Three processes, all sharing this machine's cores (2 on the project machine):
- the server, `python -m deepwave_tf.serve` on 127.0.0.1 and a free port;
- the load generator, `benchmarks/_loadgen.py`, in its own process for each level:
  N keep-alive connections on one asyncio loop over raw sockets, each sending the
  same body back to back. Its own CPU time is measured and printed, because on a
  small machine every CPU second it spends is one the server does not get;
- this process, which calls the same export's signature directly
  (`tf.saved_model.load`, in-process, no HTTP) right after each level, at that
  level's batch size: the mean rows per SavedModel call the server made (1 with
  batching off). `:predict` calls `serving_default` and `:score` calls `windows`,
  so each path is compared with the signature it calls.

Paths (`--paths`): `predict` is `:predict` in TF Serving's row format, one 5 s clip of
decoded samples per request (a 3.6 MB JSON body, encoded once); `score-ogg` is
`:score` with the clip's 31 kB Ogg file as the raw body; `score-wav` is `:score` with
the clip as a 320 kB 16-bit WAV file. Each runs with batching (`--max-batch 32`, 5 ms
wait) and without (`--max-batch 1`), at each `--clients` level, stopping after
`--requests` requests or `--max-seconds`.

Printed: requests/s, p50 / p95 / p99 latency and mean rows per call; the server's and
the client's CPU (cores busy on average, and ms per request) next to the direct
rate and its CPU per clip, the throughput ratio server / direct, and the CPU ratio
(direct CPU per clip / server CPU per request: the throughput ratio the two would
have with the same CPU, which is what a shared, saturated machine leaves as the
comparable figure); where a request's time went, from the server's /metrics (read,
parse or decode, queue, model, respond); the CPU cost of parsing, decoding and the
model call per clip, measured in this process one at a time; and the server's RSS
and peak RSS every 500 requests over `--rss-requests` `:predict` requests at 32
clients with batching (bounded by `--rss-max-seconds`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CLIP = REPO / "data" / "sample" / "test" / "TEST_00120.ogg"
LOADGEN = Path(__file__).resolve().parent / "_loadgen.py"
TICKS = os.sysconf("SC_CLK_TCK")
# What each measured path sends, and the signature the server calls for it.
PATHS = {
    "predict": ("predict", "application/json", "serving_default"),
    "score-ogg": ("score", "audio/ogg", "windows"),
    "score-wav": ("score", "audio/wav", "windows"),
}
STAGES = ("read", "parse", "decode", "queue", "model", "respond")


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


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


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

    def memory_mb(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MB, from /proc."""
        found = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
        return found.get("VmRSS", float("nan")), found.get("VmHWM", float("nan"))

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics: {(name, sorted label items): value}."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.url + "/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def load(url: str, body_file: Path, content_type: str, clients: int, requests: int, seconds: float):
    """One run of the load generator in its own process; returns its JSON result."""
    out = subprocess.run(
        [
            sys.executable,
            str(LOADGEN),
            url,
            str(body_file),
            content_type,
            str(clients),
            str(requests),
            str(seconds),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


class Direct:
    """The same export's signatures called in this process on decoded clips."""

    def __init__(self, export_dir: Path, clip: np.ndarray):
        import tensorflow as tf

        self.tf = tf
        self.export_dir = Path(export_dir)
        self.signatures = tf.saved_model.load(str(export_dir)).signatures
        self.clip = clip

    def rate(self, signature: str, batch: int, seconds: float) -> tuple[float, float]:
        """(clips/s, CPU cores busy) of `signature` on `[batch, samples]`, for about `seconds`."""
        fn = self.signatures[signature]
        x = self.tf.constant(np.repeat(self.clip[None], batch, axis=0))
        fn(waveform=x)  # warm-up (the first call of a new batch size is slower)
        calls, cpu0, start = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - start < seconds or calls < 3:
            fn(waveform=x)
            calls += 1
        wall = time.perf_counter() - start
        return calls * batch / wall, (time.process_time() - cpu0) / wall


def delta(after: dict, before: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def run_level(
    server: Server, direct: Direct, path: str, body_file: Path, clients: int, args
) -> dict:
    """One (path, clients) level against `server`, then the direct rate at its batch size."""
    endpoint, content_type, signature = PATHS[path]
    m0, cpu0 = server.metrics(), server.cpu_s()
    r = load(
        f"{server.url}/v1/models/deepwave:{endpoint}",
        body_file,
        content_type,
        clients,
        args.requests,
        args.max_seconds,
    )
    cpu1, m1 = server.cpu_s(), server.metrics()
    lat = np.asarray(r["latencies_s"])
    calls = delta(m1, m0, "deepwave_batch_rows_count")
    clips = delta(m1, m0, "deepwave_batch_rows_sum")
    mean_batch = clips / max(calls, 1)
    stages = {}
    for stage in STAGES:
        n = delta(m1, m0, "deepwave_stage_seconds_count", endpoint=endpoint, stage=stage)
        if n:
            s = delta(m1, m0, "deepwave_stage_seconds_sum", endpoint=endpoint, stage=stage)
            stages[stage] = 1000 * s / n
    batch = max(1, round(mean_batch))
    direct_rate, direct_cores = direct.rate(signature, batch, args.direct_seconds)
    rate = len(lat) / r["wall_s"]
    server_cpu_ms = 1000 * (cpu1 - cpu0) / max(len(lat), 1)
    client_cpu_ms = 1000 * r["cpu_s"] / max(len(lat), 1)
    direct_cpu_ms = 1000 * direct_cores / direct_rate
    return {
        "path": path,
        "clients": clients,
        "requests": len(lat),
        "errors": r["errors"],
        "rate": rate,
        "p50": 1000 * np.percentile(lat, 50),
        "p95": 1000 * np.percentile(lat, 95),
        "p99": 1000 * np.percentile(lat, 99),
        "mean_batch": mean_batch,
        "server_cores": (cpu1 - cpu0) / r["wall_s"],
        "client_cores": r["cpu_s"] / r["wall_s"],
        "server_cpu_ms": server_cpu_ms,
        "client_cpu_ms": client_cpu_ms,
        "stages": stages,
        "model_ms_per_clip": 1000
        * delta(m1, m0, "deepwave_model_call_seconds_sum")
        / max(clips, 1),
        "batch": batch,
        "direct": direct_rate,
        "direct_cores": direct_cores,
        "direct_cpu_ms": direct_cpu_ms,
        "ratio": rate / direct_rate,
        # The ratio if both got the same CPU: what decides throughput on a saturated machine.
        "cpu_ratio": direct_cpu_ms / server_cpu_ms,
        "cpu_ratio_with_client": direct_cpu_ms / (server_cpu_ms + client_cpu_ms),
    }


def cpu_costs(direct: Direct, clip: np.ndarray, bodies: dict[str, Path]) -> list[list]:
    """CPU ms per 5 s clip of each server step, measured here one at a time (single thread)."""
    from deepwave_tf.serve.app import decode_audio
    from deepwave_tf.serve.model import ServedModel, parse_json, parse_predict

    served = ServedModel(direct.export_dir)
    predict_body = bodies["predict"].read_bytes()

    def cpu_ms(fn, n: int) -> float:
        fn()
        start = time.process_time()
        for _ in range(n):
            fn()
        return 1000 * (time.process_time() - start) / n

    # The numbers alone (between "[[" and "]]"), for parsers that skip Python lists.
    numbers = predict_body[predict_body.index(b"[[") + 2 : predict_body.rindex(b"]]")]
    rows = [
        ["orjson.loads of the 3.6 MB body", cpu_ms(lambda: parse_json(predict_body), 20)],
        [
            "parse_predict (orjson + checks + float32 array)",
            cpu_ms(lambda: parse_predict(parse_json(predict_body), served, 10**9), 20),
        ],
        [
            "alternative: np.fromstring(numbers, float32, sep=',')",
            cpu_ms(lambda: np.fromstring(numbers, np.float32, sep=","), 5),
        ],
        [
            "alternative: np.loadtxt(numbers, delimiter=',')",
            cpu_ms(lambda: np.loadtxt(io.BytesIO(numbers), np.float32, delimiter=","), 5),
        ],
        [
            "alternative: tf.strings.to_number(tf.strings.split(numbers))",
            cpu_ms(
                lambda: direct.tf.strings.to_number(direct.tf.strings.split(numbers, ",")).numpy(),
                5,
            ),
        ],
    ]
    for path in ("score-ogg", "score-wav"):
        data = bodies[path].read_bytes()
        rows.append(
            [
                f"decode_audio ({len(data) / 1e3:.0f} kB {path[-3:]} -> float32, 32 kHz)",
                cpu_ms(lambda data=data: decode_audio(data, 32000), 20),
            ]
        )
    for signature in ("serving_default", "windows"):
        for batch in (1, 8, 32):
            x = direct.tf.constant(np.repeat(clip[None], batch, axis=0))
            fn = direct.signatures[signature]
            per_call = cpu_ms(lambda fn=fn, x=x: fn(waveform=x), 5)
            rows.append([f"{signature} at batch {batch}, per clip", per_call / batch])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "default.toml")
    p.add_argument("--model", type=Path, default=None, help="an existing export (skips exporting)")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--paths", default=",".join(PATHS), help=f"of {', '.join(PATHS)}")
    p.add_argument("--requests", type=int, default=300, help="requests per level at most")
    p.add_argument("--max-seconds", type=float, default=20.0, help="seconds per level at most")
    p.add_argument("--direct-seconds", type=float, default=3.0, help="direct run after each level")
    p.add_argument("--rss-requests", type=int, default=5000)
    p.add_argument("--rss-max-seconds", type=float, default=900.0)
    p.add_argument("--rss-only", action="store_true", help="only the RSS run")
    p.add_argument("--costs-only", action="store_true", help="only the CPU cost per step")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    paths = args.paths.split(",")
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        p.error(f"--paths: unknown {unknown}; choose from {list(PATHS)}")

    import soundfile as sf

    from deepwave_tf import audio

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_dir = args.model or make_export(args.config, tmp)
        clip = audio.load(CLIP, 32000)
        bodies = {
            "predict": tmp / "predict.json",
            "score-ogg": tmp / "clip.ogg",
            "score-wav": tmp / "clip.wav",
        }
        bodies["predict"].write_bytes(json.dumps({"instances": [clip.tolist()]}).encode())
        bodies["score-ogg"].write_bytes(CLIP.read_bytes())
        sf.write(bodies["score-wav"], clip, 32000, subtype="PCM_16")
        sizes = ", ".join(f"{k} {v.stat().st_size / 1e3:,.0f} kB" for k, v in bodies.items())
        print(
            f"{os.cpu_count()} cores; load average at start: {os.getloadavg()[0]:.1f}; "
            f"clip {len(clip) / 32000:.1f} s; bodies: {sizes}",
            flush=True,
        )
        direct = Direct(export_dir, clip)
        results = []
        skip_levels = args.rss_only or args.costs_only
        for batching, max_batch in () if skip_levels else (("on", 32), ("off", 1)):
            with Server(export_dir, max_batch) as server:
                for path in paths:
                    endpoint, content_type, _ = PATHS[path]
                    url = f"{server.url}/v1/models/deepwave:{endpoint}"
                    load(url, bodies[path], content_type, 2, 6, 30)  # warm the server
                    for clients in levels:
                        res = run_level(server, direct, path, bodies[path], clients, args)
                        res["batching"] = batching
                        results.append(res)
                        print(
                            f"  {path} batching {batching}, {clients} clients: "
                            f"{res['rate']:.1f} req/s, direct {res['direct']:.1f} clips/s at "
                            f"batch {res['batch']} ({res['ratio']:.2f}x; CPU ratio "
                            f"{res['cpu_ratio']:.2f}), load {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
        if results:
            report(results)
        if not args.rss_only:
            table(
                f"CPU per 5 s clip, one step at a time in this process "
                f"(load average now {os.getloadavg()[0]:.1f})",
                ["step", "CPU ms"],
                cpu_costs(direct, clip, bodies),
            )
        if args.rss_requests and not args.costs_only:
            rss_run(export_dir, bodies["predict"], args.rss_requests, args.rss_max_seconds)
    return 0


def report(results: list[dict]) -> None:
    key = ["path", "batching", "clients"]
    table(
        f"serve over loopback (load average now {os.getloadavg()[0]:.1f})",
        [*key, "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "rows/call"],
        [
            [*(r[k] for k in key), r["requests"], r["errors"], r["rate"]]
            + [r["p50"], r["p95"], r["p99"], r["mean_batch"]]
            for r in results
        ],
    )
    table(
        "server / direct at the same batch size: throughput, CPU (cores busy; ms per clip)",
        [
            *key,
            "batch",
            "server req/s",
            "direct clips/s",
            "ratio",
            "server cores",
            "client cores",
            "direct cores",
            "server CPU ms",
            "client CPU ms",
            "direct CPU ms",
            "CPU ratio",
            "CPU ratio incl. client",
        ],
        [
            [*(r[k] for k in key), r["batch"], r["rate"], r["direct"], r["ratio"]]
            + [r["server_cores"], r["client_cores"], r["direct_cores"]]
            + [r["server_cpu_ms"], r["client_cpu_ms"], r["direct_cpu_ms"]]
            + [r["cpu_ratio"], r["cpu_ratio_with_client"]]
            for r in results
        ],
    )
    table(
        "where a request's time goes (the server's /metrics, mean wall ms per request)",
        [*key, *STAGES, "model ms/clip"],
        [
            [*(r[k] for k in key), *[r["stages"].get(s, "-") for s in STAGES]]
            + [r["model_ms_per_clip"]]
            for r in results
        ],
    )


def rss_run(export_dir: Path, body_file: Path, requests: int, max_seconds: float) -> None:
    with Server(export_dir, 32) as server:
        rss, peak = server.memory_mb()
        samples = [[0, rss, peak]]
        done = 0
        start = time.perf_counter()
        url = server.url + "/v1/models/deepwave:predict"
        while done < requests and time.perf_counter() - start < max_seconds:
            left = max_seconds - (time.perf_counter() - start)
            r = load(url, body_file, "application/json", 32, min(500, requests - done), left)
            done += len(r["latencies_s"])
            rss, peak = server.memory_mb()
            samples.append([done, rss, peak])
            print(f"  {done} requests: RSS {rss:.0f} MB, peak {peak:.0f} MB", flush=True)
        wall = time.perf_counter() - start
    table(
        f"server RSS over {done} :predict requests, 32 clients, batching on "
        f"({wall:.0f} s, {done / wall:.1f} req/s, load average now {os.getloadavg()[0]:.1f})",
        ["requests", "RSS MB", "peak RSS MB"],
        samples,
    )


if __name__ == "__main__":
    sys.exit(main())
