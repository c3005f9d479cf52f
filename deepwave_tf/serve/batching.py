"""Request batching: a bounded queue in front of one TensorFlow worker thread.

Concurrent requests for the same signature and the same input shape (apart
from the batch axis) are concatenated into one SavedModel call: the first
request waits at most `max_wait_s` for others to join, a call holds at most
`max_batch` rows, and the answer is split back per request. A request larger
than `max_batch` rows runs alone. Requests of other shapes stay queued, in
order, for the next call.

The queue is bounded (`max_queue` requests waiting): `submit` raises
`QueueFull` instead of building an unbounded backlog, and the app answers 503
with `Retry-After`. TensorFlow runs in one worker thread (its ops use every
core already); the event loop keeps accepting and parsing meanwhile. While a
call runs, the requests that arrive queue up and the next call takes them all
(up to `max_batch`), so under load the batch grows with the backlog rather
than with `max_wait_s`, which only matters when the model is idle.

A call's requests are joined on the worker thread, into one 64-byte aligned
buffer (`concat_aligned`) that TensorFlow then takes without a second copy
(`model.as_tensor`); the event loop only hands the list over.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Hashable

import numpy as np

Inputs = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]


ALIGN_BYTES = 64  # Eigen's largest alignment (AVX-512): TensorFlow can use such a buffer as is


def concat_aligned(arrays: list[np.ndarray]) -> np.ndarray:
    """`np.concatenate(arrays)` (batch axis) into a new buffer aligned to `ALIGN_BYTES`."""
    shape = (sum(len(a) for a in arrays), *arrays[0].shape[1:])
    dtype = np.result_type(*arrays)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN_BYTES, np.uint8)
    start = -raw.ctypes.data % ALIGN_BYTES
    out = raw[start : start + nbytes].view(dtype).reshape(shape)
    return np.concatenate(arrays, out=out)


class QueueFull(Exception):
    """The batch queue holds `max_queue` requests already."""


@dataclasses.dataclass
class _Item:
    key: Hashable
    inputs: Inputs
    rows: int
    future: asyncio.Future
    queued_at: float


class Batcher:
    """Batches `submit(key, inputs)` calls into `run(key, inputs)` calls on a worker thread.

    Args:
        run: `run(key, inputs) -> outputs`, every array with the batch axis
            first; called on the worker thread.
        max_batch: rows per call (1 turns batching off: one request per call).
        max_wait_s: how long the first request of a call waits for others.
        max_queue: requests waiting at most; one more raises `QueueFull`.
        on_batch: `on_batch(rows, requests, run_s)` after each call (metrics):
            the call's rows and requests, and its wall time in seconds.
    """

    def __init__(
        self,
        run: Callable[[Hashable, Inputs], Outputs],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_s >= 0")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tf-batch")

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a running call)."""
        return len(self._queue)

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker."""
        while self._queue:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def call(self, fn: Callable, *args):
        """Run `fn(*args)` on the TensorFlow thread, outside the batches (warm-up, metadata)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, key: Hashable, inputs: Inputs) -> Outputs:
        """Queue one request; returns its rows of the outputs.

        Raises:
            QueueFull: `max_queue` requests are waiting already.
        """
        return (await self.submit_timed(key, inputs))[0]

    async def submit_timed(self, key: Hashable, inputs: Inputs) -> tuple[Outputs, float, float]:
        """`submit`, plus where the time went: `(outputs, queue_s, call_s)`.

        `queue_s` is the request's wait before its call started, `call_s` the
        wall time of the SavedModel call it shared.

        Raises:
            QueueFull: `max_queue` requests are waiting already.
        """
        if self._task is None:
            raise RuntimeError("Batcher.start() was not called")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"{len(self._queue)} requests are queued (serve --max-queue)")
        rows = len(next(iter(inputs.values())))
        item = _Item(
            key, inputs, rows, asyncio.get_running_loop().create_future(), time.monotonic()
        )
        self._queue.append(item)
        self._wakeup.set()
        return await item.future

    def _take(self) -> list[_Item]:
        """The oldest request plus the queued ones that fit its call, in order."""
        first = self._queue[0]
        taken, rows = [], 0
        for item in list(self._queue):
            if item.key != first.key:
                continue
            if taken and rows + item.rows > self.max_batch:
                break
            taken.append(item)
            rows += item.rows
        for item in taken:
            self._queue.remove(item)
        return taken

    def _ready_rows(self, key: Hashable) -> int:
        return sum(item.rows for item in self._queue if item.key == key)

    def _call(self, key: Hashable, parts: list[Inputs]) -> Outputs:
        """On the worker thread: join the requests' inputs, run the call."""
        if len(parts) == 1:  # no copy for a call of one request
            inputs = parts[0]
        else:
            inputs = {name: concat_aligned([p[name] for p in parts]) for name in parts[0]}
        return self._run(key, inputs)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            first = self._queue[0]
            deadline = first.queued_at + self.max_wait_s
            while self._ready_rows(first.key) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            items = self._take()
            items = [item for item in items if not item.future.done()]  # cancelled clients
            if not items:
                continue
            started = time.monotonic()
            try:
                parts = [item.inputs for item in items]
                outputs = await loop.run_in_executor(self._executor, self._call, first.key, parts)
            except Exception as e:  # the error belongs to the requests, not to the worker
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            run_s = time.monotonic() - started
            if self._on_batch is not None:
                self._on_batch(sum(item.rows for item in items), len(items), run_s)
            offset = 0
            for item in items:
                part = {k: v[offset : offset + item.rows] for k, v in outputs.items()}
                offset += item.rows
                if not item.future.done():
                    item.future.set_result((part, started - item.queued_at, run_s))
