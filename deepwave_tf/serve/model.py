"""The served export, loaded with plain `tf.saved_model.load`, and TF Serving's REST bodies.

The server uses the export exactly as a user without this package would: the
SavedModel's signatures and its `metadata` signature, nothing from keras or
the training code. `parse_predict` / `format_predict` read and write the
bodies of TensorFlow Serving's REST predict API (row `instances` and columnar
`inputs`), so a client can move to `tensorflow_model_server` on the same
export unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
WINDOWS_SIGNATURE = "windows"
WAVEFORM = "waveform"
_DTYPE_NAMES = {
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "string": "DT_STRING",
}


class RequestError(Exception):
    """A request the server refuses: `status` (4xx) and a message naming the problem."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def as_tensor(tf, value: np.ndarray):
    """`tf.constant(value)`, without its copy when `value` is a batch the batcher aligned.

    `tf.constant` copies every array (1.6 ms for 16 clips of 5 s); DLPack hands
    TensorFlow the buffer itself, which it accepts only 64-byte aligned (it
    aborts the process otherwise, hence the checks). The buffer is a new one for
    each call and never written again, so the tensor cannot change under TF.
    """
    from deepwave_tf.serve.batching import ALIGN_BYTES

    if (
        value.dtype == np.float32
        and value.size
        and value.flags.c_contiguous
        and value.flags.writeable  # numpy exports no read-only array through DLPack
        and value.ctypes.data % ALIGN_BYTES == 0
    ):
        return tf.experimental.dlpack.from_dlpack(value.__dlpack__())
    return tf.constant(value)


class ServedModel:
    """An export loaded for serving.

    Attributes:
        path: the export directory.
        metadata: the `metadata` signature's JSON (config, labels, temperatures).
        inputs: `{signature: {input name: tf.TensorSpec}}` of the callable signatures.
        outputs: `{signature: {output name: tf.TensorSpec}}`.
        sample_rate_hz, window_seconds, hop_seconds, aggregate, labels: from the metadata.
    """

    def __init__(self, path: str | Path):
        import tensorflow as tf

        from deepwave_tf.serving import ExportError, resolve_export_dir

        self.path = resolve_export_dir(path)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except Exception as e:
            raise ExportError(f"cannot load SavedModel {self.path}: {type(e).__name__}: {e}") from e
        sigs = self._loaded.signatures
        for needed in (DEFAULT_SIGNATURE, WINDOWS_SIGNATURE, "metadata"):
            if needed not in sigs:
                raise ExportError(
                    f"{self.path} has no '{needed}' signature (export it again with this version)"
                )
        self.metadata: dict[str, Any] = json.loads(sigs["metadata"]()["json"].numpy())
        self._signatures = {
            name: fn for name, fn in sigs.items() if fn.structured_input_signature[1]
        }
        self.inputs = {
            name: dict(fn.structured_input_signature[1]) for name, fn in self._signatures.items()
        }
        self.outputs = {name: dict(fn.structured_outputs) for name, fn in self._signatures.items()}
        config = self.metadata["config"]
        self.sample_rate_hz = int(config["features"]["sample_rate_hz"])
        self.window_seconds = float(config["features"]["clip_seconds"])
        self.hop_seconds = float(config["export"]["window_hop_seconds"])
        self.aggregate = config["export"]["aggregate"]
        self.labels = tuple(self.metadata["labels"])
        self._warmed_rows: set[int] = set()  # batch sizes `warm_up` called `windows` at

    @property
    def signature_names(self) -> list[str]:
        return sorted(self._signatures)

    def run(self, key, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call signature `key[0]` on numpy inputs (the batch worker's function)."""
        import tensorflow as tf

        fn = self._signatures[key[0]]
        out = fn(**{name: as_tensor(tf, value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in out.items()}

    def warm_up(self, max_batch: int = 1) -> list[int]:
        """The first calls, before the server says it is ready.

        The first call of a signature allocates and is slow, and so is the first
        call at each batch size: oneDNN builds its kernels for every new shape
        (~25 ms of CPU each: up to ~1.7 ms per request over the first 300 requests
        at 32 clients, before this warmed every size). So `windows` is called once at
        each batch size of one-window clips up to `max_batch`; `serving_default`
        runs the same model core on the same shapes, so its kernels are built too.
        The kernels live as long as the process: sizes this model warmed once (an
        earlier app on the same `ServedModel`) are not called again.

        Returns:
            the batch sizes `windows` was called at now.
        """
        samples = int(self.window_seconds * self.sample_rate_hz)
        self.run((DEFAULT_SIGNATURE,), {WAVEFORM: np.zeros((1, samples), np.float32)})
        sizes = [rows for rows in range(1, max_batch + 1) if rows not in self._warmed_rows]
        for rows in sizes:
            self.run((WINDOWS_SIGNATURE,), {WAVEFORM: np.zeros((rows, samples), np.float32)})
            self._warmed_rows.add(rows)
        return sizes

    def signature_def(self) -> dict[str, Any]:
        """`GET /v1/models/NAME/metadata`'s `signature_def`, in TF Serving's JSON layout."""

        def tensor_info(spec, key: str, name: str) -> dict[str, Any]:
            shape = spec.shape
            info: dict[str, Any] = {
                "dtype": _DTYPE_NAMES.get(spec.dtype.name, spec.dtype.name),
                "name": f"{key}_{name}:0",
            }
            if shape.rank is None:
                info["tensor_shape"] = {"dim": [], "unknown_rank": True}
            else:
                dims = [{"size": str(-1 if d is None else d), "name": ""} for d in shape.as_list()]
                info["tensor_shape"] = {"dim": dims, "unknown_rank": False}
            return info

        defs = {}
        for key in self.signature_names:
            defs[key] = {
                "inputs": {n: tensor_info(s, key, n) for n, s in self.inputs[key].items()},
                "outputs": {n: tensor_info(s, key, n) for n, s in self.outputs[key].items()},
                "method_name": "tensorflow/serving/predict",
            }
        return {"signature_def": defs}


# --------------------------------------------------------------------------- #
# TF Serving REST bodies
# --------------------------------------------------------------------------- #
def _reject_constant(name: str):
    raise RequestError(
        400, f"malformed JSON: {name} is not a number JSON allows (NaN and inf samples are refused)"
    )


def parse_json(body: bytes) -> Any:
    """The request's JSON.

    orjson parses a 5 s clip's 160,000 numbers in ~11 ms of CPU. The parsers
    that skip Python lists cost more on the same numbers:
    `np.fromstring(sep=",")`, `tf.strings.to_number` and `np.loadtxt` took 2.8x
    to 4.2x its CPU (bench_serve.py --costs-only prints them). A body orjson
    refuses is parsed again by `json`, whose message names the problem (NaN,
    Infinity), or which accepts what orjson alone refuses (a UTF-8 BOM; 1e400,
    which becomes inf and is then refused as a sample by name).

    Raises:
        RequestError: 400 for a body that is not JSON, or nested over 1024 deep.
    """
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        first = e
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    except RecursionError:  # json recurses per level; orjson stopped at its depth limit
        raise RequestError(400, f"malformed JSON: {first}") from None


def _as_tensor(value: Any, name: str, spec) -> np.ndarray:
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    try:
        with np.errstate(over="ignore"):  # 1e39 as float32 is inf: refused below, by name
            array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as e:
        text = str(e)
        if "inhomogeneous" in text or "sequence" in text:
            raise RequestError(
                400,
                f"input '{name}': rows of different lengths or nesting (a batch is one "
                "rectangular tensor; send clips of different lengths in separate requests)",
            ) from None
        raise RequestError(
            400, f"input '{name}' must hold numbers ({spec.dtype.name}): {text}"
        ) from None
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise RequestError(400, f"input '{name}' contains NaN or inf samples")
    return array


def _check_shape(array: np.ndarray, name: str, spec, *, row_format: bool) -> np.ndarray:
    """Against the signature's declared shape; the rank-free `waveform` must be [batch, samples]."""
    shape = spec.shape
    if shape.rank is None:  # the waveform: [batch, samples], or [samples] for one clip (columnar)
        if array.ndim == 1 and not row_format:
            array = array[None]
        if array.ndim != 2:
            what = "each instance" if row_format else f"'{name}'"
            raise RequestError(
                400,
                f"{what} must be a list of samples: '{name}' is float32 [batch, samples] "
                f"(got shape {list(array.shape)})",
            )
        return array
    if array.ndim != shape.rank or any(
        d is not None and d != a for d, a in zip(shape.as_list()[1:], array.shape[1:])
    ):
        want = ["batch"] + ["any" if d is None else d for d in shape.as_list()[1:]]
        raise RequestError(400, f"input '{name}' must have shape {want} (got {list(array.shape)})")
    return array


def parse_predict(
    body: Any, model: ServedModel, max_samples: int
) -> tuple[str, dict[str, np.ndarray], bool]:
    """A TF Serving predict request -> `(signature, inputs, row_format)`.

    Raises:
        RequestError: anything TF Serving would refuse, plus NaN/inf and too many samples.
    """
    if not isinstance(body, dict):
        raise RequestError(
            400, "the request body must be a JSON object with 'instances' or 'inputs'"
        )
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(
            400,
            f"unknown request keys: {unknown} (TF Serving's are signature_name, instances, inputs)",
        )
    signature = body.get("signature_name") or DEFAULT_SIGNATURE
    if not isinstance(signature, str) or signature not in model.inputs:
        raise RequestError(
            400,
            f"signature_name {signature!r} not found; the export serves {model.signature_names}",
        )
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(
            400, "give exactly one of 'instances' (row format) or 'inputs' (columnar)"
        )
    specs = model.inputs[signature]
    names = sorted(specs)
    row_format = "instances" in body
    if row_format:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, "'instances' must be a non-empty list")
        if all(isinstance(i, dict) for i in instances):
            missing = [n for n in names if any(n not in i for i in instances)]
            extra = sorted({k for i in instances for k in i} - set(names))
            if missing or extra:
                raise RequestError(
                    400,
                    f"instances must name the inputs {names} (missing {missing}, unknown {extra})",
                )
            raw = {n: [i[n] for i in instances] for n in names}
        elif len(names) == 1:
            raw = {names[0]: instances}
        else:
            raise RequestError(
                400, f"signature {signature!r} takes {names}: give each instance as an object"
            )
    else:
        value = body["inputs"]
        if isinstance(value, dict):
            if sorted(value) != names:
                raise RequestError(
                    400, f"'inputs' must name the inputs {names} (got {sorted(value)})"
                )
            raw = value
        elif len(names) == 1:
            raw = {names[0]: value}
        else:
            raise RequestError(
                400, f"signature {signature!r} takes {names}: give 'inputs' as an object"
            )
    inputs = {}
    for name in names:
        array = _check_shape(
            _as_tensor(raw[name], name, specs[name]), name, specs[name], row_format=row_format
        )
        if name == WAVEFORM:
            if array.shape[1] == 0:
                raise RequestError(400, "waveform has 0 samples")
            if array.shape[1] > max_samples:
                raise RequestError(
                    413,
                    f"waveform has {array.shape[1]} samples, over the limit of {max_samples} "
                    f"({max_samples / model.sample_rate_hz:g} s; serve --max-audio-seconds)",
                )
        inputs[name] = array
    rows = {len(a) for a in inputs.values()}
    if len(rows) != 1:
        raise RequestError(400, f"inputs have different batch sizes: {sorted(rows)}")
    return signature, inputs, row_format


def _plain(value: np.ndarray) -> Any:
    if value.dtype.kind == "f":
        return value.astype(np.float64).tolist()
    if value.dtype.kind in "SO":
        return value.astype(str).tolist()
    return value.tolist()


def format_predict(outputs: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """TF Serving's response: `{"predictions": [...]}` (row) or `{"outputs": ...}` (columnar)."""
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {"outputs": _plain(outputs[names[0]])}
        return {"outputs": {n: _plain(outputs[n]) for n in names}}
    rows = len(outputs[names[0]])
    if len(names) == 1:
        return {"predictions": _plain(outputs[names[0]])}
    plain = {n: _plain(outputs[n]) for n in names}
    return {"predictions": [{n: plain[n][i] for n in names} for i in range(rows)]}


def timeline(probs: dict[str, np.ndarray], labels: tuple[str, ...]) -> list[dict[str, float]]:
    """The `windows` signature's row for one clip as a list of `{start_s, end_s, fake, real}`."""
    return [
        {
            "start_s": round(float(probs["start_s"][i]), 6),
            "end_s": round(float(probs["end_s"][i]), 6),
            **{k: float(probs[k][i]) for k in labels},
        }
        for i in range(len(probs["start_s"]))
    ]


def combine(
    window_scores: list[dict[str, float]], labels: tuple[str, ...], how: str
) -> dict[str, float]:
    """The export's aggregation (`export.aggregate`) of a clip's window scores."""
    out = {}
    for k in labels:
        values = [w[k] for w in window_scores]
        out[k] = max(values) if how == "max" else math.fsum(values) / len(values)
    return out
