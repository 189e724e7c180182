"""A lean closed-loop HTTP/1.1 load generator: keep-alive connections, one request at a time
on each, the request's bytes built once.

httpx costs ~2.5 ms of client CPU per request, so on a 2-core machine shared with the
server it saturated its own core near 300-380 req/s, and scenario 1 measured httpx. This
client parses only the status line and Content-Length (~0.1 ms a request), so the
server is what runs out of CPU first. Every response is still checked: its status, and
that its body is JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

from tests.benchmarks.client import HTTP_TIMEOUT, LoadResult

_HEADER_END = b"\r\n\r\n"


def raw_request(
    base_url: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(base_url).netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection: `call()` sends a request and waits for its response."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(_HEADER_END)
        if end < 0 or self.answer is None or self.answer.done():
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(":", 1) for line in head[1:])
        length = fields.get("content-length")
        # hypercorn ends a keep-alive connection after 1,000 requests (it says so)
        self.closing = fields.get("connection", "").strip() == "close"
        if length is None:
            self.answer.set_exception(RuntimeError(f"no Content-Length: {head[0]}"))
            return
        total = end + len(_HEADER_END) + int(length)
        if len(self.buffer) >= total:
            body = bytes(self.buffer[end + len(_HEADER_END) : total])
            del self.buffer[:total]
            self.answer.set_result((int(head[0].split(" ", 2)[1]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await asyncio.wait_for(self.answer, HTTP_TIMEOUT)


async def connect(base_url: str) -> Connection:
    """Open one keep-alive connection to the server at `base_url`."""
    parts = urlsplit(base_url)
    loop = asyncio.get_running_loop()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    return (await loop.create_connection(Connection, host, port))[1]


async def load(
    base_url: str,
    request: bytes,
    *,
    requests: int,
    concurrency: int,
    expect: int,
) -> LoadResult:
    """Send `request` `requests` times over `concurrency` connections, each waiting for its
    answer before the next (closed loop); the latency of each call."""
    latencies: list[float] = []
    failures: list[str] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        connection = await connect(base_url)
        try:
            while remaining > 0:
                remaining -= 1
                if connection.closing:
                    connection.transport.close()
                    connection = await connect(base_url)
                started = time.perf_counter()
                try:
                    status, body = await connection.call(request)
                    if status != expect:
                        failures.append(f"HTTP {status} {body[:120]!r}")
                    else:
                        json.loads(body)
                except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
                    failures.append(f"{type(exc).__name__} {exc}"[:160])
                    return
                finally:
                    latencies.append(time.perf_counter() - started)
        finally:
            connection.transport.close()

    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), timeout=requests * 0.5 + 60
    )
    seconds = time.perf_counter() - started
    done = len(latencies)
    return LoadResult(done, seconds, latencies, len(failures), failures[0] if failures else "")
