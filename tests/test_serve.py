"""serve/: TF Serving's REST bodies both ways (= predict), /score, bad input, batching and 503,
API key, metrics, graceful shutdown, and the upload page in a real headless browser.

One tiny export (the session's, from test_export) is loaded once; the apps of this module share
it. Most tests use starlette's TestClient; the shutdown and browser tests run uvicorn on a free
127.0.0.1 port in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_export import tiny_export_dir

from deepwave_tf import predict
from deepwave_tf.serve import ServeConfig, build_app
from deepwave_tf.serve.batching import Batcher, QueueFull

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # starlette 1.x suggests httpx2 for its TestClient; httpx works and is what we declare.
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]
SR = 32000
NAME = "deepwave"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, sample_records, tiny_cfg) -> Path:
    return tiny_export_dir(tmp_path_factory, sample_records, tiny_cfg)


@pytest.fixture(scope="module")
def served(export_dir):
    from deepwave_tf.serve.model import ServedModel

    model = ServedModel(export_dir)
    model.warm_up()
    return model


def wait_ready(client, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "server never became ready"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(served):
    from starlette.testclient import TestClient

    with TestClient(build_app(ServeConfig(model=str(served.path)), model=served)) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def clips(tmp_path_factory, sample_dir) -> dict[str, Path]:
    """test.ogg (a 5 s sample clip), long.wav (11.5 s, 44.1 kHz stereo), other.ogg (another 5 s clip)."""
    d = tmp_path_factory.mktemp("serve_audio")
    test = sorted((sample_dir / "test").glob("*.ogg"))
    shutil.copy(test[0], d / "test.ogg")
    shutil.copy(test[1], d / "other.ogg")
    a, _ = sf.read(test[0], dtype="float32")
    b, _ = sf.read(test[1], dtype="float32")
    import soxr

    long = soxr.resample(np.concatenate([a, b, a])[: int(11.5 * SR)], SR, 44100)
    sf.write(d / "long.wav", np.stack([long, 0.5 * long], axis=1), 44100)
    return {"test": d / "test.ogg", "other": d / "other.ogg", "long": d / "long.wav"}


def url(action: str = "") -> str:
    return f"/v1/models/{NAME}{action}"


# --------------------------------------------------------------------------- #
# TF Serving bodies and /score = predict
# --------------------------------------------------------------------------- #
def test_tf_serving_bodies_both_ways_equal_predict(client, export_dir, clips):
    from deepwave_tf import audio

    scores = predict.run(export_dir, [clips["test"], clips["other"], clips["long"]], progress=False)
    by_name = {Path(s.path).name: s for s in scores}
    pair = np.stack([audio.load(clips[k], SR) for k in ("test", "other")])
    rows = client.post(url(":predict"), json={"instances": pair.tolist()})
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    assert len(predictions) == 2 and set(predictions[0]) == {"fake", "real"}
    cols = client.post(
        url(":predict"),
        json={"signature_name": "serving_default", "inputs": {"waveform": pair.tolist()}},
    )
    assert cols.status_code == 200, cols.text
    outputs = cols.json()["outputs"]
    for i, name in enumerate(("test.ogg", "other.ogg")):
        want = (by_name[name].fake, by_name[name].real)
        assert (predictions[i]["fake"], predictions[i]["real"]) == pytest.approx(want, abs=1e-6)
        assert (outputs["fake"][i], outputs["real"][i]) == pytest.approx(want, abs=1e-6)
    # The long file (44.1 kHz stereo, decoded as predict decodes it): one clip given columnar as
    # [samples], and its windows through the `windows` signature in row format.
    long = by_name["long.wav"]
    wav = audio.load(clips["long"], SR)
    cols = client.post(url(":predict"), json={"inputs": wav.tolist()}).json()["outputs"]
    assert (cols["fake"][0], cols["real"][0]) == pytest.approx((long.fake, long.real), abs=1e-6)
    win = client.post(
        url(":predict"), json={"signature_name": "windows", "instances": [wav.tolist()]}
    )
    (row,) = win.json()["predictions"]
    assert row["start_s"] == pytest.approx([0, 2.5, 5, 6.5], abs=1e-5)
    assert row["end_s"] == pytest.approx([5, 7.5, 10, 11.5], abs=1e-5)
    assert row["fake"] == pytest.approx([t[2] for t in long.timeline], abs=1e-6)
    # /score on the file itself, raw body and multipart: predict's numbers and timeline.
    data = clips["long"].read_bytes()
    raw = client.post(url(":score"), content=data, headers={"content-type": "audio/wav"})
    form = client.post(url(":score"), files={"file": ("long.wav", data, "audio/wav")})
    for response in (raw, form):
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["fake"], body["real"]) == pytest.approx((long.fake, long.real), abs=1e-6)
        assert body["seconds"] == pytest.approx(11.5, abs=1e-4)
        assert body["aggregate"] == "max"
        got = [(w["start_s"], w["end_s"], w["fake"], w["real"]) for w in body["windows"]]
        np.testing.assert_allclose(got, long.timeline, atol=1e-5)
    assert form.json()["filename"] == "long.wav"
    assert raw.json()["native_rate_hz"] == 44100 and "warnings" not in raw.json()


def test_score_warns_on_low_rate_audio(client, tmp_path):
    """Issue 12: an 8 kHz upload is scored, with the same warning predict and submit print."""
    import soundfile as sf

    from deepwave_tf import audio

    t = np.arange(3 * 8000) / 8000
    narrow = tmp_path / "phone.wav"
    sf.write(narrow, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000)
    body = client.post(
        url(":score"), files={"file": ("phone.wav", narrow.read_bytes(), "audio/wav")}
    )
    assert body.status_code == 200, body.text
    got = body.json()
    assert got["native_rate_hz"] == 8000
    assert got["warnings"] == [audio.low_rate_warning("phone.wav", 8000)]
    assert "8000 Hz audio (below 16 kHz)" in got["warnings"][0]
    assert 0.0 <= got["fake"] <= 1.0 and 0.0 <= got["real"] <= 1.0


def test_model_status_and_metadata(client):
    status = client.get(url()).json()
    assert status == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert client.get(url("/versions/1")).json() == status
    meta = client.get(url("/metadata")).json()
    assert meta["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert sorted(defs) == ["features", "serving_default", "windows"]
    waveform = defs["serving_default"]["inputs"]["waveform"]
    assert waveform["dtype"] == "DT_FLOAT" and waveform["tensor_shape"]["unknown_rank"] is True
    assert sorted(defs["windows"]["outputs"]) == ["end_s", "fake", "real", "start_s"]
    mfcc = defs["features"]["inputs"]["mfcc"]["tensor_shape"]["dim"]
    assert [d["size"] for d in mfcc] == ["-1", "313", "40"]
    # The versioned predict URL works too.
    r = client.post(url("/versions/1:predict"), json={"instances": [[0.0] * 1000]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
def test_bad_input_is_a_4xx_that_names_the_problem(served, clips):
    from starlette.testclient import TestClient

    cfg = ServeConfig(model=str(served.path), max_body_bytes=400_000, max_audio_seconds=6.0)
    ogg = clips["test"].read_bytes()
    wav_bytes = clips["long"].read_bytes()
    cases = [
        # (method, path, request kwargs, status, words in the error)
        ("post", url(":predict"), {"content": b""}, 400, "empty request body"),
        ("post", url(":predict"), {"content": b'{"instances": [[0.1, '}, 400, "malformed JSON"),
        ("post", url(":predict"), {"content": b"\xff\xfe"}, 400, "malformed JSON"),
        # orjson stops at 1024 levels, json would recurse to a RecursionError (a 500 before)
        ("post", url(":predict"), {"content": b"[" * 5000}, 400, "depth limit"),
        ("post", url(":predict"), {"content": b'{"instances": [[1e400]]}'}, 400, "NaN or inf"),
        ("post", url(":predict"), {"json": [1, 2]}, 400, "must be a JSON object"),
        (
            "post",
            url(":predict"),
            {"json": {"instances": [[0.1] * 10], "x": 1}},
            400,
            "unknown request keys",
        ),
        ("post", url(":predict"), {"json": {"instances": []}}, 400, "non-empty list"),
        (
            "post",
            url(":predict"),
            {"json": {"instances": [[0.1], [0.1]], "inputs": [0.1]}},
            400,
            "exactly one of",
        ),
        ("post", url(":predict"), {"json": {"instances": [["a", "b"]]}}, 400, "must hold numbers"),
        (
            "post",
            url(":predict"),
            {"json": {"instances": [[0.1, 0.2], [0.1]]}},
            400,
            "rows of different lengths",
        ),
        (
            "post",
            url(":predict"),
            {"json": {"instances": [0.1, 0.2]}},
            400,
            "each instance must be a list of samples",
        ),
        (
            "post",
            url(":predict"),
            {"json": {"inputs": [[[0.1, 0.2]]]}},
            400,
            "float32 [batch, samples]",
        ),
        ("post", url(":predict"), {"json": {"instances": [[]]}}, 400, "0 samples"),
        ("post", url(":predict"), {"content": b'{"instances": [[0.1, NaN]]}'}, 400, "NaN and inf"),
        (
            "post",
            url(":predict"),
            {"content": b'{"instances": [[0.1, Infinity]]}'},
            400,
            "NaN and inf",
        ),
        ("post", url(":predict"), {"json": {"instances": [[1e39, 0.0]]}}, 400, "NaN or inf"),
        (
            "post",
            url(":predict"),
            {"json": {"instances": [[0.0] * (6 * SR + 1)]}},
            413,
            "over the limit",
        ),
        (
            "post",
            url(":predict"),
            {"json": {"signature_name": "nope", "instances": [[0.1]]}},
            400,
            "signature_name 'nope' not found",
        ),
        (
            "post",
            url(":predict"),
            {"json": {"signature_name": "metadata", "instances": [[0.1]]}},
            400,
            "not found",
        ),
        (
            "post",
            url(":predict"),
            {
                "json": {
                    "signature_name": "features",
                    "instances": [{"mfcc": [[0.0]], "mel": [[0.0]]}],
                }
            },
            400,
            "input 'mel' must have shape ['batch', 128, 313]",
        ),
        (
            "post",
            "/v1/models/other:predict",
            {"json": {"instances": [[0.1]]}},
            404,
            "model 'other' not found",
        ),
        (
            "post",
            url("/versions/7:predict"),
            {"json": {"instances": [[0.1]]}},
            404,
            "version 7 not found",
        ),
        ("get", "/v1/nothing", {}, 404, "Not Found"),
        ("get", url(":predict"), {}, 404, "model 'deepwave:predict' not found"),
        ("put", url(":predict"), {}, 405, "Method Not Allowed"),
        ("post", url(":score"), {"content": b""}, 400, "empty request body"),
        (
            "post",
            url(":score"),
            {"content": b"this is not audio at all"},
            400,
            "not usable audio: cannot decode audio",
        ),
        ("post", url(":score"), {"content": ogg[: len(ogg) // 2]}, 400, "truncated Ogg file"),
        ("post", url(":score"), {"content": wav_bytes[:300_000]}, 400, "truncated WAV file"),
        (
            "post",
            url(":score"),
            {"content": b"x" * 400_001},
            413,
            "request body over the limit of 400000 bytes",
        ),
        (
            "post",
            url(":score"),
            {"files": {"file": ("a.ogg", ogg[:100], "audio/ogg")}},
            400,
            "not usable audio",
        ),
        ("post", url(":score"), {"files": {"note": (None, "hello")}}, 400, "has no file field"),
        (
            "post",
            url(":score"),
            {
                "content": b"--x\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            400,
            "multipart body",
        ),
    ]
    nan_wav = clips["long"].parent / "nan.wav"
    sf.write(nan_wav, np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    cases += [
        ("post", url(":score"), {"content": nan_wav.read_bytes()}, 400, "contain NaN or inf"),
        # Past the hot path's pattern (a ':' in the name): Starlette's routes answer alike.
        ("post", "/v1/models/deep:wave:score", {"content": ogg}, 404, "model 'deep:wave' not"),
        ("post", "/v1/models/other/versions/1:score", {"content": ogg}, 404, "model 'other'"),
    ]
    long_ogg = clips["long"].parent / "seven_seconds.ogg"
    sf.write(long_ogg, np.zeros(7 * SR, np.float32), SR)
    cases.append(
        (
            "post",
            url(":score"),
            {"content": long_ogg.read_bytes()},
            413,
            "7.0 s long, over the limit of 6 s",
        )
    )
    with TestClient(build_app(cfg, model=served)) as c:
        wait_ready(c)
        for method, path, kwargs, status, words in cases:
            r = getattr(c, method)(path, **kwargs)
            assert r.status_code == status, (path, kwargs.keys(), r.status_code, r.text[:300])
            assert words in r.json()["error"], (words, r.json())
            assert "/tmp" not in r.json()["error"]  # no server paths leak
        # Still serving, and correctly.
        good = c.post(url(":score"), content=ogg)
        assert good.status_code == 200
        from deepwave_tf import audio

        want = served.run(("serving_default",), {"waveform": audio.load(clips["test"], SR)[None]})
        assert good.json()["fake"] == pytest.approx(float(want["fake"][0]), abs=1e-6)
        metrics = c.get("/metrics").text
        assert 'deepwave_request_errors_total{code="400",endpoint="predict"}' in metrics
        assert 'code="500"' not in metrics


def test_parse_json_is_json_loads_and_refuses_what_json_refuses():
    """orjson is the parser; its answers equal `json.loads`', bad bodies are 400s naming why."""
    import json

    from deepwave_tf.serve.model import RequestError, parse_json

    rng = np.random.default_rng(3)
    clip = (0.3 * rng.standard_normal(SR)).astype(np.float32)
    good = [
        json.dumps({"instances": [clip.tolist()]}).encode(),  # what clients send: repr floats
        b'{"inputs": {"waveform": [[0, -0, 1.0e+2, -0.5E-3, 1e-320, 12345678901234567890]]}}',
        b'{"signature_name": "windows", "instances": [{"waveform": [0.25, -1]}]}',
        '{"s": "\\u00e9 é", "t": true, "n": null, "a": {"a": 1, "a": 2}}'.encode(),
        b'\xef\xbb\xbf{"instances": [[0.5]]}',  # a UTF-8 BOM: json accepts it, so do we
        b" [1, 2.5] \n",
    ]
    for body in good:
        got = parse_json(body)
        assert got == json.loads(body), body[:60]
        assert json.dumps(got) == json.dumps(json.loads(body))  # same types (int vs float)
    # The clip's floats come back bit-exact, then float32 exactly as numpy rounds them.
    parsed = np.asarray(parse_json(good[0])["instances"], np.float32)
    np.testing.assert_array_equal(parsed[0], clip)
    bad = [
        (b"", "Expecting value"),
        (b"   ", "Expecting value"),
        (b'{"instances": [[0.1, ', "Expecting value"),
        (b"[1, 2,]", "Expecting value"),
        (b'{"a": 1} x', "Extra data"),
        (b"{'a': 1}", "Expecting property name"),
        (b"\xff\xfe", "malformed JSON"),
        (b'{"instances": [[0.1, NaN]]}', "NaN is not a number JSON allows"),
        (b'{"instances": [[-Infinity]]}', "-Infinity is not a number JSON allows"),
        (b"[" * 3000 + b"]" * 3000, "depth limit exceeded"),
    ]
    for body, words in bad:
        with pytest.raises(RequestError, match="malformed JSON") as e:
            parse_json(body)
        assert e.value.status == 400 and words in e.value.message, (body[:20], e.value.message)


# --------------------------------------------------------------------------- #
# Batching, queue bound, API key, metrics
# --------------------------------------------------------------------------- #
def test_batcher_groups_by_key_and_bounds_the_queue():
    calls = []

    def run(key, inputs):
        calls.append((key, inputs["x"].shape[0]))
        time.sleep(0.02)
        return {"y": inputs["x"] * 2}

    async def scenario():
        b = Batcher(run, max_batch=4, max_wait_s=0.05, max_queue=8)
        b.start()
        jobs = [b.submit("a", {"x": np.full((1, 3), i, np.float32)}) for i in range(6)]
        jobs += [b.submit("b", {"x": np.full((2, 5), 9, np.float32)})]
        out = await asyncio.gather(*jobs)
        # The queue bound: with one call running, 2 requests wait and a 3rd is refused.
        gate, entered = threading.Event(), threading.Event()

        def blocked(key, inputs):
            entered.set()
            gate.wait(10)
            return {"y": inputs["x"]}

        b2 = Batcher(blocked, max_batch=1, max_wait_s=0, max_queue=2)
        b2.start()
        running = asyncio.ensure_future(b2.submit("a", {"x": np.zeros((1, 1))}))
        while not entered.is_set():  # the worker took it and is blocked in the model
            await asyncio.sleep(0.01)
        waiting = [asyncio.ensure_future(b2.submit("a", {"x": np.zeros((1, 1))})) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert b2.depth == 2
        with pytest.raises(QueueFull, match="2 requests are queued"):
            await b2.submit("a", {"x": np.zeros((1, 1))})
        gate.set()
        await asyncio.gather(running, *waiting)
        await b.stop()
        await b2.stop()
        return out

    out = asyncio.run(scenario())
    for i in range(6):
        np.testing.assert_array_equal(out[i]["y"], np.full((1, 3), 2 * i))
    assert out[6]["y"].shape == (2, 5)
    assert calls[:3] == [("a", 4), ("a", 2), ("b", 2)]  # max_batch rows per call, keys apart


def test_batcher_reports_queue_and_call_times_and_does_not_copy_a_lone_request():
    seen, calls = [], []

    def run(key, inputs):
        seen.append(inputs["x"])
        time.sleep(0.05)
        return {"y": inputs["x"] + 1}

    async def scenario():
        b = Batcher(run, max_batch=4, max_wait_s=0.02, on_batch=lambda *a: calls.append(a))
        b.start()
        lone = np.zeros((1, 3), np.float32)
        out, queue_s, call_s = await b.submit_timed("k", {"x": lone})
        pair = await asyncio.gather(
            *(b.submit_timed("k", {"x": np.ones((1, 3), np.float32)}) for _ in range(2))
        )
        await b.stop()
        return lone, out, queue_s, call_s, pair

    lone, out, queue_s, call_s, pair = asyncio.run(scenario())
    assert seen[0] is lone  # a call of one request gets the request's own array
    np.testing.assert_array_equal(out["y"], np.ones((1, 3)))
    # The lone request waited max_wait_s for company (20 ms), then its call slept 50 ms.
    assert 0.015 <= queue_s < 10 and 0.045 <= call_s < 10
    assert seen[1].shape == (2, 3)  # the two others shared a call
    assert pair[0][2] == pair[1][2]  # ... so both report that call's time
    assert [c[:2] for c in calls] == [(1, 1), (2, 2)] and calls[1][2] == pair[0][2]


def test_batches_are_joined_aligned_and_tensorflow_takes_them_as_they_are(served, clips):
    import tensorflow as tf

    from deepwave_tf import audio
    from deepwave_tf.serve.batching import ALIGN_BYTES, concat_aligned
    from deepwave_tf.serve.model import as_tensor

    wav = audio.load(clips["test"], SR)
    parts = [wav[None], 0.5 * wav[None], np.stack([wav[::-1], -wav])]
    joined = concat_aligned(parts)
    assert joined.ctypes.data % ALIGN_BYTES == 0 and joined.shape == (4, len(wav))
    np.testing.assert_array_equal(joined, np.concatenate(parts))
    shared = as_tensor(tf, joined)  # DLPack: TensorFlow reads the buffer itself
    joined[0, 0] += 1.0
    assert shared[0, 0].numpy() == joined[0, 0]
    joined[0, 0] -= 1.0
    # An unaligned or read-only array is copied by tf.constant instead (DLPack would abort).
    unaligned = np.frombuffer(joined.tobytes()[4:-4], np.float32)
    assert unaligned.ctypes.data % ALIGN_BYTES != 0 or not unaligned.flags.writeable
    np.testing.assert_array_equal(as_tensor(tf, unaligned).numpy(), unaligned)
    # The model's answers on the shared buffer equal its answers on a copied batch.
    for signature in ("serving_default", "windows"):
        got = served.run((signature,), {"waveform": joined})
        want = served.run((signature,), {"waveform": np.concatenate(parts)})
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_warm_up_calls_every_batch_size_before_ready(served):
    """oneDNN builds kernels at the first call of each shape: none of that on a request's time."""
    from starlette.testclient import TestClient

    from deepwave_tf.serve.model import ServedModel

    calls = []

    class Recorder(SlowModel):
        _warmed_rows = set()  # its own, not the shared model's: every size is new here

        def run(self, key, inputs):
            calls.append((key[0], inputs["waveform"].shape))
            return self._model.run(key, inputs)

        def warm_up(self, max_batch=1):  # the real warm-up, calling the recording `run`
            return ServedModel.warm_up(self, max_batch)

    model = Recorder(served)
    with TestClient(build_app(ServeConfig(model=str(served.path), max_batch=5), model=model)) as c:
        wait_ready(c)
    samples = int(served.window_seconds * SR)
    assert calls == [("serving_default", (1, samples))] + [
        ("windows", (rows, samples)) for rows in range(1, 6)
    ]
    # Kernels outlive an app: a second app on the same model warms only the new sizes.
    assert ServedModel.warm_up(model, 7) == [6, 7]


def test_the_cli_app_freezes_the_gc_once_warm(served):
    """TensorFlow's ~360,000 objects leave the cyclic GC's scans (full ones cost ~80 ms each)."""
    import gc

    from starlette.testclient import TestClient

    app = build_app(ServeConfig(model=str(served.path), max_batch=2), model=served)
    app.state.freeze_gc = True  # what `run` sets for its own process
    try:
        with TestClient(app) as c:
            wait_ready(c)
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()  # this test process serves many apps
    with TestClient(build_app(ServeConfig(model=str(served.path)), model=served)) as c:
        wait_ready(c)
        assert gc.get_freeze_count() == 0  # apps built by hand (tests) leave the GC alone


class SlowModel:
    """The served model with 0.3 s added to every call (to fill the queue, to be in flight)."""

    def __init__(self, model, delay_s: float = 0.3):
        self._model, self._delay_s = model, delay_s
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run(self, key, inputs):
        if key[0] == "serving_default" and inputs["waveform"].shape[1] == 1000:
            self.entered.set()  # a test request (not the warm-up) is in the model
        time.sleep(self._delay_s)
        return self._model.run(key, inputs)


def test_concurrent_requests_are_batched_and_a_full_queue_is_503(served):
    from starlette.testclient import TestClient

    rng = np.random.default_rng(5)
    clips = (0.1 * rng.standard_normal((8, SR))).astype(np.float32)
    want = served.run(("serving_default",), {"waveform": clips})["fake"]
    cfg = ServeConfig(model=str(served.path), max_batch=8, max_wait_ms=300)
    with TestClient(build_app(cfg, model=served)) as c:
        wait_ready(c)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda w: c.post(url(":predict"), json={"instances": [w.tolist()]}), clips)
            )
        got = [a.json()["predictions"][0]["fake"] for a in answers]
        np.testing.assert_allclose(got, want, atol=1e-6)
        metrics = c.get("/metrics").text
        # Fewer calls than requests: some call held more than one request.
        calls = float(metrics.split("deepwave_batch_requests_count ")[1].split()[0])
        assert calls < 8, metrics
    cfg = ServeConfig(model=str(served.path), max_batch=1, max_queue=1)
    with TestClient(build_app(cfg, model=SlowModel(served))) as c:
        wait_ready(c)
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            answers = list(
                pool.map(
                    lambda w: c.post(url(":predict"), json={"instances": [w.tolist()]}), clips[:5]
                )
            )
        codes = sorted(a.status_code for a in answers)
        assert codes.count(200) >= 2 and 503 in codes, codes
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.headers["retry-after"] == "1"
        assert "server busy" in busy.json()["error"]
        assert c.post(url(":predict"), json={"instances": [clips[0].tolist()]}).status_code == 200


def test_api_key_everywhere_but_health_checks(served, export_dir, capsys, monkeypatch):
    from starlette.testclient import TestClient

    from deepwave_tf.serve import app as app_lib

    cfg = ServeConfig(model=str(served.path), host="0.0.0.0", api_key="s3cret")
    cfg.check_binding()
    with TestClient(build_app(cfg, model=served)) as c:
        assert c.get("/healthz").json() == {"status": "alive"}
        wait_ready(c)
        for path in ("/", "/metrics", url(), url("/metadata")):
            r = c.get(path)
            assert r.status_code == 401 and "API key" in r.json()["error"], path
            assert r.headers["www-authenticate"].startswith("Basic")
        body = {"instances": [[0.0] * 100]}
        assert c.post(url(":predict"), json=body).status_code == 401
        assert c.post(url(":predict"), json=body, headers={"x-api-key": "wrong"}).status_code == 401
        basic = base64.b64encode(b"anyone:s3cret").decode()
        for headers in (
            {"authorization": "Bearer s3cret"},
            {"x-api-key": "s3cret"},
            {"authorization": f"Basic {basic}"},
        ):
            assert c.post(url(":predict"), json=body, headers=headers).status_code == 200
        assert c.get("/", headers={"x-api-key": "s3cret"}).text.startswith("<!doctype html>")
    # No key: loopback only.
    assert app_lib.is_loopback("127.0.0.1") and app_lib.is_loopback("::1")
    assert not app_lib.is_loopback("0.0.0.0")
    monkeypatch.delenv(app_lib.API_KEY_ENV, raising=False)
    assert app_lib.main(["--model", str(export_dir), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 is reachable from other machines: set an API key" in err
    assert app_lib.main(["--model", "/nonexistent/export"]) == 2
    assert "model not found: /nonexistent/export" in capsys.readouterr().err


def test_health_readiness_and_metrics(served):
    from starlette.testclient import TestClient

    gate = threading.Event()

    class Gated(SlowModel):
        def warm_up(self, max_batch=1):
            gate.wait(30)
            return self._model.warm_up(max_batch)

    with TestClient(build_app(ServeConfig(model=str(served.path)), model=Gated(served))) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "not ready", "reason": "loading"}
        r = c.post(url(":predict"), json={"instances": [[0.0] * 10]})
        assert r.status_code == 503 and "not ready: the model is loading" in r.json()["error"]
        gate.set()
        wait_ready(c)
        assert c.post(url(":predict"), json={"instances": [[0.0] * 10]}).status_code == 200
        text = c.get("/metrics").text
    for needle in (
        'deepwave_requests_total{code="200",endpoint="predict"} 1.0',
        'deepwave_request_errors_total{code="503",endpoint="predict"} 1.0',
        'deepwave_request_latency_seconds_bucket{endpoint="predict",le="+Inf"} 2.0',
        'deepwave_batch_rows_bucket{le="1.0"} 1.0',
        "deepwave_queue_depth 0.0",
        "deepwave_model_ready 1.0",
        "deepwave_model_call_seconds_count 1.0",
        # where the one good request's time went (the 503 ended before any stage)
        'deepwave_stage_seconds_count{endpoint="predict",stage="read"} 1.0',
        'deepwave_stage_seconds_count{endpoint="predict",stage="parse"} 1.0',
        'deepwave_stage_seconds_count{endpoint="predict",stage="queue"} 1.0',
        'deepwave_stage_seconds_count{endpoint="predict",stage="model"} 1.0',
        'deepwave_stage_seconds_count{endpoint="predict",stage="respond"} 1.0',
    ):
        assert needle in text, needle
    # The model stage of a request is its call's time, which the SlowModel made >= 0.3 s.
    model_s = float(
        text.split('deepwave_stage_seconds_sum{endpoint="predict",stage="model"} ')[1].split()[0]
    )
    assert 0.3 <= model_s < 30


# --------------------------------------------------------------------------- #
# A real server: graceful shutdown, the page in a browser
# --------------------------------------------------------------------------- #
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn on 127.0.0.1:free port in a thread (its SIGTERM handler sets `should_exit`)."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=30,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "live server never became ready"
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


def test_shutdown_lets_in_flight_requests_finish(served):
    import httpx

    slow = SlowModel(served, 0.5)
    app = build_app(ServeConfig(model=str(served.path), max_batch=1), model=slow)
    with LiveServer(app) as live:
        body = {"instances": [[0.0] * 1000]}
        batcher = app.state.serve_state["batcher"]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(httpx.post, live.url + url(":predict"), json=body, timeout=60)
                for _ in range(3)
            ]
            deadline = time.monotonic() + 60
            while not (
                slow.entered.is_set() and batcher.depth == 2
            ):  # one in the model, two queued
                assert time.monotonic() < deadline
                time.sleep(0.01)
            live.server.should_exit = True  # what uvicorn's SIGTERM handler does
            answers = [f.result() for f in futures]
        live.thread.join(30)
        assert not live.thread.is_alive()
    assert [a.status_code for a in answers] == [200, 200, 200]
    with pytest.raises(httpx.ConnectError):
        httpx.post(live.url + url(":predict"), json=body)


@pytest.mark.slow
def test_sigterm_on_the_real_process(export_dir):
    """`python -m deepwave_tf.serve` in its own process: SIGTERM mid-request, the request still answers."""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepwave_tf.serve",
            "--model",
            str(export_dir),
            "--port",
            str(port),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        import http.client
        import json

        wav = (0.1 * np.random.default_rng(0).standard_normal(60 * SR)).astype(np.float32)
        body = json.dumps({"inputs": wav.tolist()}).encode()  # 40 MB: seconds to parse and score
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        # request() returns once the whole body is sent: the server is reading or parsing it.
        conn.request("POST", url(":predict"), body, {"Content-Type": "application/json"})
        proc.terminate()
        answer = conn.getresponse()
        assert answer.status == 200
        assert len(json.loads(answer.read())["outputs"]["fake"]) == 1
        # uvicorn re-raises the signal once it has shut down: the conventional "killed by SIGTERM".
        assert proc.wait(60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()


CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def find_browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (chromium, driver) if chromium and driver else None


def test_upload_page_in_a_headless_browser(served, clips, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip(
            "no chromium + chromedriver on this machine (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip("selenium", reason="selenium is in the dev extra: pip install -e '.[dev]'")
    import httpx
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser[0]
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    with LiveServer(build_app(ServeConfig(model=str(served.path)), model=served)) as live:
        want = httpx.post(
            live.url + url(":score"), content=clips["long"].read_bytes(), timeout=60
        ).json()
        driver = webdriver.Chrome(service=Service(browser[1]), options=options)
        try:
            driver.set_page_load_timeout(30)
            driver.get(live.url + "/")
            assert driver.find_element(By.ID, "model-name").text == NAME
            driver.find_element(By.ID, "file").send_keys(str(clips["long"]))
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
            )
            assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", (
                driver.find_element(By.ID, "error").text
            )
            assert float(driver.find_element(By.ID, "fake").text) == pytest.approx(
                want["fake"], abs=5e-4
            )
            assert float(driver.find_element(By.ID, "real").text) == pytest.approx(
                want["real"], abs=5e-4
            )
            assert driver.find_element(By.ID, "seconds").text == "11.5 s"
            bands = driver.find_elements(By.CSS_SELECTOR, "#plot rect.window")
            assert [float(b.get_attribute("data-start")) for b in bands] == [0, 2.5, 5, 6.5]
            assert [float(b.get_attribute("data-fake")) for b in bands] == pytest.approx(
                [w["fake"] for w in want["windows"]], abs=1e-6
            )
            points = driver.find_element(By.CSS_SELECTOR, "#plot polyline.line-fake").get_attribute(
                "points"
            )
            assert len(points.split()) == 4
            assert "4 window(s), combined by max" in driver.find_element(By.ID, "summary").text
        finally:
            driver.quit()
