"""A merchant's webhook receiver for tests: a real HTTP/1.1 server on 127.0.0.1 (raw
asyncio, keep-alive), recording every request and answering from a script.

`answers` is consumed one per request (then `default`): (status, body, delay seconds,
extra headers). A delay longer than the client's timeout makes a receiver that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

REASONS = {200: "OK", 204: "No Content", 302: "Found", 410: "Gone", 500: "Internal Server Error"}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, bytes, float, dict[str, str]]


@dataclass
class Receiver:
    answers: list[Answer] = field(default_factory=list)
    default: Answer = (200, b"ok", 0.0, {})
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def script(self, *answers: int | Answer) -> None:
        self.answers = [a if isinstance(a, tuple) else (a, b"", 0.0, {}) for a in answers]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(headers, body))
                self.arrived.set()
                status, content, delay, extra = (
                    self.answers.pop(0) if self.answers else self.default
                )
                await asyncio.sleep(delay)
                more = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(
                    f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                    f"content-length: {len(content)}\r\n{more}\r\n".encode()
                    + content
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await server.wait_closed()
