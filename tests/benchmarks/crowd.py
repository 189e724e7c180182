"""Lean WebSocket clients for a crowd of payers: each notes the moment the paid fragment's
frame reaches the client process, in the protocol callback.

With the websockets library, one Python process reading 5,000 sockets parsed every frame and
woke one task per socket before it could note an arrival: the last payer's fragment was
"late" by the time the client spent on the 4,999 before it (a first arrival at ~65 ms even
for a bare Quart app). Real payers are 5,000 devices that do not queue behind each other,
so the time that matters is when the bytes arrive. These clients parse frames (unmasked,
uncompressed: permessage-deflate is offered, as browsers do, and the server declines it)
and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

PENDING = b'data-status="pending"'
PAID = b'data-status="paid"'
OPEN_TIMEOUT = 30.0


class CrowdSocket(asyncio.Protocol):
    """One payer's socket: opened once the pending status arrives, `paid_at` when paid."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.handshake = _handshake(url)
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paid: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is no subclass
        self.transport.write(self.handshake)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            if not head.startswith(b"http/1.1 101") or b"sec-websocket-extensions" in head:
                self._fail(f"handshake refused or compressed: {head[:80]!r}")
                return
            self.upgraded = True
            del self.buffer[: end + 4]
        while (frame := self._next_frame()) is not None:
            opcode, payload = frame
            if opcode == 0x8:
                self._fail(f"closed by the server: {payload[:2].hex()}")
            elif PENDING in payload and not self.opened.done():
                self.opened.set_result(None)
            elif PAID in payload and not self.paid.done():
                self.paid.set_result(time.perf_counter())

    def _next_frame(self) -> tuple[int, bytes] | None:
        if len(self.buffer) < 2:
            return None
        opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(self.buffer[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(self.buffer[2:10], "big"), 10
        if len(self.buffer) < start + length:
            return None
        payload = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        return opcode, payload

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}")

    def _fail(self, why: str) -> None:
        for future in (self.opened, self.paid):
            if not future.done():
                future.set_exception(ConnectionError(why))
                future.exception()  # whoever awaits it sees it; nobody else need be told

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _handshake(url: str) -> bytes:
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    ).encode()


async def open_crowd(
    urls: Sequence[str],
    concurrency: int = 200,
    *,
    within: float = OPEN_TIMEOUT,
    failures: list[BaseException] | None = None,
) -> list[CrowdSocket]:
    """Open one socket per URL, each once its pending status has arrived (within `within`
    seconds of its connect). Any failure raises, unless a `failures` list collects them."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> CrowdSocket:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock: CrowdSocket | None = None
        async with gate:
            try:
                async with asyncio.timeout(within):
                    _, sock = await loop.create_connection(lambda: CrowdSocket(url), host, port)
                    await asyncio.shield(sock.opened)
            except BaseException:
                if sock is not None:
                    sock.abort()
                raise
            return sock

    results = await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
    sockets = [r for r in results if isinstance(r, CrowdSocket)]
    failed = [r for r in results if not isinstance(r, CrowdSocket)]
    if failures is not None:
        failures += failed
    elif failed:
        for sock in sockets:
            sock.abort()
        raise RuntimeError(f"{len(failed)} of {len(urls)} crowd sockets failed: {failed[0]!r}")
    return sockets


async def paid_arrivals(sockets: Sequence[CrowdSocket], since: float, within: float) -> list[float]:
    """Seconds from `since` to each socket's paid fragment, for those that got it `within`."""
    await asyncio.wait([s.paid for s in sockets], timeout=within)
    return [
        s.paid.result() - since for s in sockets if s.paid.done() and s.paid.exception() is None
    ]
