"""The load generator of bench_serve.py, run in its own process so that its CPU is its own.

    python benchmarks/_loadgen.py URL BODY_FILE CONTENT_TYPE CLIENTS REQUESTS MAX_SECONDS

`CLIENTS` keep-alive HTTP/1.1 connections on one asyncio loop, each sending
`POST URL` with the same body (read once from BODY_FILE) back to back until
`REQUESTS` requests in all or `MAX_SECONDS`, whichever first. The client is a
few lines over raw sockets rather than httpx: on 2 cores shared with the
server, every millisecond the client spends is one the server does not get,
and httpx costs several times more CPU per request. It prints one JSON line:
`{"latencies_s": [...], "errors": N, "wall_s": S, "cpu_s": S, "statuses": {...}}`,
where `cpu_s` is this process's user + system time during the load.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse


async def one_client(host, port, head: bytes, body: bytes, take, latencies, statuses) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while take():
            start = time.perf_counter()
            writer.write(head)
            writer.write(body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = None
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise RuntimeError("a response without Content-Length (chunked is not handled)")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run(
    url: str, body: bytes, content_type: str, clients: int, requests: int, seconds: float
):
    parts = urllib.parse.urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    left = [requests]
    stop_at = time.monotonic() + seconds

    def take() -> bool:
        if left[0] <= 0 or time.monotonic() >= stop_at:
            return False
        left[0] -= 1
        return True

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cpu0, start = time.process_time(), time.perf_counter()
    await asyncio.gather(
        *(
            one_client(parts.hostname, parts.port, head, body, take, latencies, statuses)
            for _ in range(clients)
        )
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    errors = sum(n for s, n in statuses.items() if s != 200)
    return {
        "latencies_s": latencies,
        "errors": errors,
        "wall_s": wall,
        "cpu_s": cpu,
        "statuses": statuses,
    }


def main(argv: list[str]) -> int:
    url, body_file, content_type, clients, requests, seconds = argv
    with open(body_file, "rb") as f:
        body = f.read()
    result = asyncio.run(run(url, body, content_type, int(clients), int(requests), float(seconds)))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # nothing to clean up; skip interpreter teardown in a timed loop


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
