"""The ASGI app: TF Serving's REST API, `:score` for audio files, the upload page, health, metrics.

    python -m deepwave_tf.serve --model EXPORT [--host 127.0.0.1] [--port 8501] [--name deepwave]

Endpoints (NAME = `--name`):

- `POST /v1/models/NAME:predict`: TensorFlow Serving's request and response
  bodies (`instances` or `inputs`, `signature_name`); also under
  `/v1/models/NAME/versions/1`.
- `GET /v1/models/NAME` (version status), `GET /v1/models/NAME/metadata`
  (signature defs).
- `POST /v1/models/NAME:score`: an audio file as the raw body or a multipart
  upload -> `{"fake", "real", "seconds", "windows": [{start_s, end_s, fake, real}]}`.
- `GET /`: the upload page; `GET /healthz` (alive), `GET /readyz` (model
  loaded and warmed up), `GET /metrics` (Prometheus text format).

Bad input is a 4xx `{"error": "..."}` naming the problem, never a 500. The
server binds to 127.0.0.1 unless told otherwise, and any other address needs
an API key (`--api-key` or `DEEPWAVE_API_KEY`), checked on every endpoint but
the health checks: `Authorization: Bearer KEY`, `X-API-Key: KEY`, or HTTP
Basic auth with KEY as the password (what a browser sends after its prompt).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import gc
import hmac
import importlib.resources
import ipaddress
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepwave_tf import audio

log = logging.getLogger("deepwave_tf.serve")

API_KEY_ENV = "DEEPWAVE_API_KEY"
# A WAV body up to this size is decoded on the event loop: numpy reads a 320 kB 16-bit WAV in
# ~0.04 ms, less than the hop to a thread and back costs; other bodies decode in a thread.
INLINE_DECODE_BYTES = 1 << 20
PUBLIC_PATHS = ("/healthz", "/readyz")


class ServeError(ValueError):
    """Unusable server settings (a public address without an API key, ...)."""


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Server settings (`python -m deepwave_tf.serve --help`)."""

    model: str = ""
    host: str = "127.0.0.1"
    port: int = 8501
    name: str = "deepwave"
    api_key: str = ""
    max_batch: int = 32  # rows per SavedModel call; 1 turns batching off
    max_wait_ms: float = 5.0  # how long a request waits for others to share its call
    max_queue: int = 64  # requests waiting; one more gets 503 + Retry-After
    max_body_bytes: int = 50 * 1024 * 1024
    max_audio_seconds: float = 600.0  # longest clip accepted (decoded, or as JSON samples)
    retry_after_seconds: int = 1

    def __post_init__(self):
        if self.max_batch < 1 or self.max_queue < 1:
            raise ServeError("--max-batch and --max-queue must be >= 1")
        if self.max_wait_ms < 0 or self.max_body_bytes < 1 or self.max_audio_seconds <= 0:
            raise ServeError(
                "--max-wait-ms must be >= 0, --max-body-mb and --max-audio-seconds > 0"
            )
        if not self.name or "/" in self.name or ":" in self.name:
            raise ServeError(f"--name {self.name!r}: a model name has no '/' or ':'")

    def check_binding(self) -> None:
        """Raises ServeError for a non-loopback host without an API key."""
        if not self.api_key and not is_loopback(self.host):
            raise ServeError(
                f"--host {self.host} is reachable from other machines: set an API key "
                f"(--api-key KEY or {API_KEY_ENV}=KEY), or keep the default 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #
class Metrics:
    """Prometheus metrics in a registry of this app (several apps may live in one process)."""

    def __init__(self, depth_fn, ready_fn):
        import prometheus_client as prom

        prom.disable_created_metrics()  # no *_created series: this process serves one app
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "deepwave_requests", "HTTP requests", ["endpoint", "code"], registry=self.registry
        )
        self.errors = prom.Counter(
            "deepwave_request_errors",
            "Requests answered 4xx/5xx",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "deepwave_request_latency_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_rows = prom.Histogram(
            "deepwave_batch_rows",
            "Rows (clips) per SavedModel call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.batch_requests = prom.Histogram(
            "deepwave_batch_requests",
            "Requests per SavedModel call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.model_call = prom.Histogram(
            "deepwave_model_call_seconds",
            "Wall time of one SavedModel call (a batch)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # Where a request's time goes: read (the body), parse (JSON -> arrays) or decode
        # (audio file -> samples), queue (waiting for its batch), model (its call's wall
        # time), respond (the answer's JSON). bench_serve.py prints the means.
        self.stage = prom.Histogram(
            "deepwave_stage_seconds",
            "Time a request spends in each stage",
            ["endpoint", "stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        prom.Gauge(
            "deepwave_queue_depth", "Requests waiting for a batch", registry=self.registry
        ).set_function(depth_fn)
        prom.Gauge(
            "deepwave_model_ready",
            "1 once the model is loaded and warmed up",
            registry=self.registry,
        ).set_function(ready_fn)

        # Labelled children by label values: `labels()` validates and locks on every call,
        # 6 to 8 calls per request.
        self._children: dict[tuple, Any] = {}

    def _child(self, metric, *labels: str):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        self._child(self.requests, endpoint, str(code)).inc()
        if code >= 400:
            self._child(self.errors, endpoint, str(code)).inc()
        self._child(self.latency, endpoint).observe(seconds)

    def on_batch(self, rows: int, requests: int, run_s: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)
        self.model_call.observe(run_s)

    def on_stage(self, endpoint: str, stage: str, seconds: float) -> None:
        self._child(self.stage, endpoint, stage).observe(seconds)

    def text(self) -> bytes:
        import prometheus_client as prom

        return prom.generate_latest(self.registry)


# --------------------------------------------------------------------------- #
# The app
# --------------------------------------------------------------------------- #
def page_html(name: str) -> str:
    text = (
        importlib.resources.files("deepwave_tf.serve")
        .joinpath("static/index.html")
        .read_text("utf-8")
    )
    # A JSON string literal inside <script>; "<" escaped so no name can close the tag.
    return text.replace("__MODEL_NAME_JSON__", json.dumps(name).replace("<", "\\u003c"))


def json_response_class():
    """A Starlette `JSONResponse` rendered by orjson (faster than `json`; same JSON for our bodies)."""
    import orjson
    from starlette.responses import JSONResponse

    class ORJSONResponse(JSONResponse):
        def render(self, content: Any) -> bytes:
            return orjson.dumps(content)

    return ORJSONResponse


def build_app(cfg: ServeConfig, model=None):
    """The Starlette app for `cfg`.

    Args:
        cfg: server settings; `cfg.model` is loaded at startup unless `model` is given.
        model: an already loaded `ServedModel` (tests share one between apps).
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    from deepwave_tf.serve.batching import Batcher, QueueFull
    from deepwave_tf.serve.model import (
        WAVEFORM,
        WINDOWS_SIGNATURE,
        RequestError,
        ServedModel,
        combine,
        format_predict,
        parse_json,
        parse_predict,
        timeline,
    )

    JSONResponse = json_response_class()  # noqa: N806  (a class)
    state: dict[str, Any] = {"model": model, "ready": False, "error": ""}

    def depth() -> int:
        batcher = state.get("batcher")
        return batcher.depth if batcher is not None else 0

    metrics = Metrics(depth, lambda: 1.0 if state["ready"] else 0.0)

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def check_key(request: Request) -> None:
        if not cfg.api_key:
            return
        offered = request.headers.get("x-api-key", "")
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            offered = offered or value.strip()
        elif scheme.lower() == "basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                offered = offered or base64.b64decode(value.strip()).decode().partition(":")[2]
        if not (offered and hmac.compare_digest(offered.encode(), cfg.api_key.encode())):
            raise RequestError(
                401,
                "missing or wrong API key (Authorization: Bearer KEY or X-API-Key: KEY)",
                {"WWW-Authenticate": 'Basic realm="deepwave", charset="UTF-8"'},
            )

    def endpoint(label: str, handler, *, public: bool = False):
        async def wrapped(request: Request):
            start = time.perf_counter()
            try:
                if not public:
                    check_key(request)
                response = await handler(request)
            except RequestError as e:
                response = error(e.status, e.message, e.headers)
            except QueueFull as e:
                response = error(
                    503,
                    f"server busy: {e}; retry later",
                    {"Retry-After": str(cfg.retry_after_seconds)},
                )
            except Exception as e:
                if type(e).__name__ == "InvalidArgumentError":  # TensorFlow refused the input
                    message = str(getattr(e, "message", e)).strip().splitlines()[0]
                    response = error(400, f"the model refused the input: {message}")
                else:  # a bug of ours: log it, answer, keep serving
                    log.exception("unexpected error on %s", request.url.path)
                    response = error(500, f"internal error ({type(e).__name__})")
            metrics.observe(label, response.status_code, time.perf_counter() - start)
            return response

        return wrapped

    def served(request: Request) -> ServedModel:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != cfg.name or version not in (None, "1"):
            what = f"model {name!r}" + (f" version {version}" if version else "")
            raise RequestError(404, f"{what} not found; this server serves {cfg.name!r} version 1")
        if not state["ready"]:
            reason = state["error"] or "the model is loading"
            raise RequestError(
                503, f"not ready: {reason}", {"Retry-After": str(cfg.retry_after_seconds)}
            )
        return state["model"]

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        too_big = RequestError(
            413, f"request body over the limit of {cfg.max_body_bytes} bytes (serve --max-body-mb)"
        )
        if declared and declared.isdigit() and int(declared) > cfg.max_body_bytes:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_body_bytes:
                raise too_big
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            raise RequestError(400, "empty request body")
        return body

    # ---- TF Serving REST ------------------------------------------------ #
    async def model_status(request: Request):
        served(request)
        return JSONResponse(
            {
                "model_version_status": [
                    {
                        "version": "1",
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                ]
            }
        )

    async def model_metadata(request: Request):
        model = served(request)
        return JSONResponse(
            {
                "model_spec": {"name": cfg.name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": model.signature_def()},
            }
        )

    def lap(endpoint: str, stage: str, since: float) -> float:
        """Records `stage` as the time since `since`; returns now (the next stage's start)."""
        now = time.perf_counter()
        metrics.on_stage(endpoint, stage, now - since)
        return now

    async def predict(request: Request):
        t = time.perf_counter()
        model = served(request)
        raw = await read_body(request)
        t = lap("predict", "read", t)
        max_samples = int(cfg.max_audio_seconds * model.sample_rate_hz)
        # Parsing 160,000 JSON numbers takes ~13 ms of CPU: off the event loop, which keeps
        # reading other requests and answering health checks meanwhile.
        signature, inputs, row_format = await asyncio.to_thread(
            lambda body: parse_predict(parse_json(body), model, max_samples), raw
        )
        del raw  # the 3.6 MB body of a 5 s clip is not kept while the request waits for its batch
        t = lap("predict", "parse", t)
        key = (signature, *((n, a.shape[1:]) for n, a in sorted(inputs.items())))
        outputs, queue_s, call_s = await state["batcher"].submit_timed(key, inputs)
        metrics.on_stage("predict", "queue", queue_s)
        metrics.on_stage("predict", "model", call_s)
        t = time.perf_counter()
        response = JSONResponse(format_predict(outputs, row_format))
        lap("predict", "respond", t)
        return response

    # ---- audio files ---------------------------------------------------- #
    async def score(request: Request):
        t = time.perf_counter()
        model = served(request)
        body = await read_body(request)
        content_type = request.headers.get("content-type", "")
        filename = ""
        if content_type.startswith("multipart/form-data"):
            body, filename = await uploaded_file(request, body)
        t = lap("score", "read", t)
        if len(body) <= INLINE_DECODE_BYTES and body[:4] == b"RIFF":
            wav, native_hz = decode_audio(body, model.sample_rate_hz)  # < 0.5 ms: no thread hop
        else:
            wav, native_hz = await asyncio.to_thread(decode_audio, body, model.sample_rate_hz)
        del body
        t = lap("score", "decode", t)
        seconds = len(wav) / model.sample_rate_hz
        if seconds > cfg.max_audio_seconds:
            raise RequestError(
                413,
                f"audio is {seconds:.1f} s long, over the limit of {cfg.max_audio_seconds:g} s "
                "(serve --max-audio-seconds)",
            )
        inputs = {WAVEFORM: wav[None]}
        out, queue_s, call_s = await state["batcher"].submit_timed(
            (WINDOWS_SIGNATURE, (WAVEFORM, wav.shape)), inputs
        )
        metrics.on_stage("score", "queue", queue_s)
        metrics.on_stage("score", "model", call_s)
        t = time.perf_counter()
        windows = timeline({k: v[0] for k, v in out.items()}, model.labels)
        result: dict[str, Any] = combine(windows, model.labels, model.aggregate)
        result.update(
            {
                "seconds": round(seconds, 6),
                "aggregate": model.aggregate,
                "windows": windows,
                "model": cfg.name,
            }
        )
        if filename:
            result["filename"] = filename
        result["native_rate_hz"] = native_hz
        # The same low-rate check as predict and submit, in the answer rather than on stderr.
        warning = audio.low_rate_warning(filename or "the upload", native_hz)
        if warning:
            result["warnings"] = [warning]
            log.warning(warning)
        response = JSONResponse(result)
        lap("score", "respond", t)
        return response

    async def uploaded_file(request: Request, body: bytes) -> tuple[bytes, str]:
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
        except Exception as e:  # python-multipart / starlette parse errors
            raise RequestError(400, f"malformed multipart body: {e}") from None
        try:
            files = [v for v in form.values() if hasattr(v, "read")]
            if not files:
                raise RequestError(
                    400, "the multipart body has no file field (send the audio as 'file')"
                )
            upload = next(
                (v for k, v in form.multi_items() if k == "file" and hasattr(v, "read")), files[0]
            )
            data = await upload.read()
            return data, Path(upload.filename or "").name
        finally:
            await form.close()

    # ---- page, health, metrics ------------------------------------------ #
    async def index(request: Request):
        return HTMLResponse(state["page"])

    async def healthz(request: Request):
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request):
        if state["ready"]:
            return JSONResponse(
                {"status": "ready", "model": cfg.name, "path": str(state["model"].path)}
            )
        return JSONResponse(
            {"status": "not ready", "reason": state["error"] or "loading"},
            status_code=503,
            headers={"Retry-After": str(cfg.retry_after_seconds)},
        )

    async def metrics_text(request: Request):
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ---- lifecycle ------------------------------------------------------ #
    async def load() -> None:
        try:
            if state["model"] is None:
                state["model"] = await state["batcher"].call(ServedModel, cfg.model)
            await state["batcher"].call(state["model"].warm_up, cfg.max_batch)
            if state.get("freeze_gc"):
                # TensorFlow leaves ~360,000 objects for the cyclic GC to scan: each full
                # collection cost 80 to 180 ms of CPU, mid-request. Frozen, they are skipped.
                gc.collect()
                gc.freeze()
            state["ready"] = True
            log.info("model %s ready: %s", cfg.name, state["model"].path)
        except Exception as e:
            state["error"] = f"cannot load the model: {type(e).__name__}: {e}"
            log.error("%s", state["error"])
            on_error = state.get("on_load_error")
            if on_error is not None:
                on_error()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        def run(key, inputs):
            return state["model"].run(key, inputs)

        batcher = Batcher(
            run,
            max_batch=cfg.max_batch,
            max_wait_s=cfg.max_wait_ms / 1000.0,
            max_queue=cfg.max_queue,
            on_batch=metrics.on_batch,
        )
        batcher.start()
        state["batcher"] = batcher
        state["on_load_error"] = getattr(app.state, "on_load_error", None)
        state["freeze_gc"] = getattr(app.state, "freeze_gc", False)
        loader = asyncio.get_running_loop().create_task(load())
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish before this point.
            state["ready"] = False
            loader.cancel()
            await batcher.stop()

    async def not_found(request: Request, exc: HTTPException):
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    state["page"] = page_html(cfg.name)
    m = "/v1/models/{name}"
    v = "/v1/models/{name}/versions/{version}"
    routes = [
        Route("/", endpoint("page", index), methods=["GET"]),
        Route("/healthz", endpoint("healthz", healthz, public=True), methods=["GET"]),
        Route("/readyz", endpoint("readyz", readyz, public=True), methods=["GET"]),
        Route("/metrics", endpoint("metrics", metrics_text), methods=["GET"]),
    ]
    for prefix in (m, v):
        routes += [
            Route(prefix + ":predict", endpoint("predict", predict), methods=["POST"]),
            Route(prefix + ":score", endpoint("score", score), methods=["POST"]),
            Route(prefix + "/metadata", endpoint("metadata", model_metadata), methods=["GET"]),
            Route(prefix, endpoint("status", model_status), methods=["GET"]),
        ]
    # The hot endpoints skip Starlette's middleware stack and router (~0.25 ms of CPU per
    # request in py-spy's profile): `wrapped` already turns every exception into an answer, and the routes
    # above still serve the same paths (for a name with ':' in it, which only they match).
    hot_path = re.compile(r"/v1/models/([^/:]+)(?:/versions/([^/:]+))?:(predict|score)\Z")
    hot = {"predict": endpoint("predict", predict), "score": endpoint("score", score)}

    class App(Starlette):
        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["method"] == "POST":
                match = hot_path.match(scope["path"])
                if match:
                    name, version, verb = match.groups()
                    scope["app"] = self
                    scope["path_params"] = {"name": name}
                    if version is not None:
                        scope["path_params"]["version"] = version
                    response = await hot[verb](Request(scope, receive))
                    await response(scope, receive, send)
                    return
            await super().__call__(scope, receive, send)

    app = App(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.state.serve_state = state
    app.state.metrics = metrics
    return app


def decode_audio(data: bytes, sample_rate_hz: int):
    """Uploaded bytes -> (`[samples]` float32 mono at `sample_rate_hz`, the file's own rate).

    Decoded in memory by `audio.decode_bytes_with_rate`, with the same checks
    as a file on disk (truncated Ogg / WAV, 0 samples, NaN); nothing is
    written, and no path sent by a client is ever opened.

    Raises:
        RequestError: 400 naming why the bytes are not usable audio.
    """
    from deepwave_tf.serve.model import RequestError

    try:
        return audio.decode_bytes_with_rate(data, sample_rate_hz, "upload")
    except audio.AudioError as e:
        raise RequestError(400, f"not usable audio: {e.reason}") from None


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    d = ServeConfig()
    p = argparse.ArgumentParser(
        prog="python -m deepwave_tf.serve",
        description="Serve an export over HTTP (TF Serving's REST API, audio upload, a page).",
    )
    p.add_argument("--model", required=True, help="export directory (or run dir: newest export)")
    p.add_argument(
        "--host", default=d.host, help=f"address to bind (default {d.host}; others need --api-key)"
    )
    p.add_argument(
        "--port", type=int, default=d.port, help=f"port (default {d.port}, TF Serving's REST port)"
    )
    p.add_argument("--name", default=d.name, help=f"model name in the URLs (default {d.name})")
    p.add_argument(
        "--api-key",
        default=None,
        help=f"required key on every endpoint but health checks (or {API_KEY_ENV})",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=d.max_batch,
        help="clips per SavedModel call (1: no batching)",
    )
    p.add_argument(
        "--max-wait-ms", type=float, default=d.max_wait_ms, help="wait for a batch to fill"
    )
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="queued requests before 503")
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=d.max_body_bytes / 2**20,
        help="request body limit (MiB)",
    )
    p.add_argument(
        "--max-audio-seconds", type=float, default=d.max_audio_seconds, help="longest clip accepted"
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        model=str(args.model),
        host=args.host,
        port=args.port,
        name=args.name,
        api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV, ""),
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_audio_seconds=args.max_audio_seconds,
    )


def run(cfg: ServeConfig, log_level: str = "info") -> int:
    """Serve until SIGTERM / Ctrl-C; in-flight requests finish first. Returns the exit code."""
    import uvicorn

    from deepwave_tf.serving import resolve_export_dir

    cfg.check_binding()
    resolve_export_dir(cfg.model)  # a wrong path fails now, not after the server is up
    app = build_app(cfg)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            log_level=log_level,
            timeout_graceful_shutdown=30,
            access_log=log_level == "debug",
        )
    )
    failed = []

    def on_load_error():
        failed.append(True)
        server.should_exit = True

    app.state.on_load_error = on_load_error
    app.state.freeze_gc = True  # this process serves this app only
    server.run()
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    from deepwave_tf.serving import ExportError

    try:
        import orjson  # noqa: F401
        import prometheus_client  # noqa: F401
        import python_multipart  # noqa: F401  (starlette's form parser)
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        print(f"error: {e.name} is missing: pip install 'deepwave_tf[serve]'", file=sys.stderr)
        return 2
    try:
        return run(config_from_args(args), args.log_level)
    except (ServeError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
