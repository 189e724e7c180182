"""What every socket handler shares: close codes, client-message limits, task racing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from quart import websocket

from pixweb.broker import SubscriptionLaggedError
from pixweb.deps import get_shutdown, session_merchant
from pixweb.models import Merchant
from pixweb.services.clock import utcnow

CLOSE_POLICY = 1008  # unknown resource, not authenticated, bad origin, flooding
CLOSE_TOO_BIG = 1009
# htmx's ws extension reconnects only after 1006, 1011, 1012 and 1013: a graceful
# shutdown says 1012 (service restart) rather than 1001, so pages move to another worker.
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013


class ServerClosingError(Exception):
    """The server is shutting down gracefully."""


class TooBigError(Exception):
    """The client sent a frame over the socket's limit."""


async def page_merchant() -> Merchant | None:
    """The logged-in merchant of a dashboard page's socket, or None after closing it (1008).

    The session cookie is sent by the browser whatever page opened the socket: only a page
    of this site's own origin may use it."""
    merchant = await session_merchant()
    origin = websocket.headers.get("Origin")
    if merchant is None or origin is None or urlsplit(origin).netloc != websocket.host:
        await websocket.close(CLOSE_POLICY, "log in first" if merchant is None else "bad origin")
        return None
    return merchant


def seconds_until(moment: datetime) -> float:
    """A timeout that ends a hair after `moment`: an early wake-up would find it not yet due."""
    return max((moment - utcnow()).total_seconds(), 0.0) + 0.05


def unyielding_send() -> Callable[[str], Awaitable[None]]:
    """The accepted socket's send, without the `asyncio.sleep(0)` Quart's `send` starts with.

    That yield guards a handler sending in a tight loop; a pushing handler already waits
    between messages. When a change wakes 5,000 sockets it made each write wait until all
    5,000 had taken a first step (the first fragment left ~60 ms after the room rendered
    it). Quart keeps the raw ASGI send as `Websocket._send` (quart 0.20-0.22).
    """
    send: Callable[[str], Awaitable[None]] = cast(Any, websocket)._get_current_object()._send
    return send


async def receive_limited(limit: int) -> str | bytes:
    """Receive one client message, or raise TooBigError when it is over `limit` bytes."""
    message = await websocket.receive()
    # Text counts in UTF-8 bytes (up to 4 per character); encode only when it could matter.
    size = (
        len(message.encode())
        if isinstance(message, str) and len(message) * 4 > limit
        else len(message)
    )
    if size > limit:
        raise TooBigError(f"message over {limit} bytes")
    return message


async def ignore_client_messages(limit: int = 4096) -> None:
    """Read and drop what the client sends (nothing is expected); big frames end it."""
    while True:
        await receive_limited(limit)


async def until_shutdown() -> None:
    """Return never; raise ServerClosingError once a graceful shutdown begins."""
    await get_shutdown().wait()
    raise ServerClosingError("server shutting down")


class closing_as_ended:  # noqa: N801 (used as a function: `async with closing_as_ended()`)
    """Close the socket with the code its ending calls for: 1013 for a dropped subscription
    (the client reconnects and resyncs), 1009 for a frame too big, 1012 for a graceful
    server shutdown.

    A class, not a generator-based context manager: every open payer socket holds one for
    its whole life, and a suspended generator's frame costs ~0.5 KB a socket more."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, trace: Any) -> bool:
        if isinstance(error, SubscriptionLaggedError):
            await websocket.close(CLOSE_TRY_AGAIN, "fell behind: reconnect")
        elif isinstance(error, TooBigError):
            await websocket.close(CLOSE_TOO_BIG, "message too big")
        elif isinstance(error, ServerClosingError):
            await websocket.close(CLOSE_RESTART, "server restarting")
        else:
            return False
        return True


async def serve_until_closed(*work: Coroutine[Any, Any, None]) -> None:
    """Run a socket's work until one part ends (or the server shuts down), then close."""
    async with closing_as_ended():
        await race(*work, until_shutdown())


class reading_client:  # noqa: N801 (used as a function, as closing_as_ended)
    """Read and drop what the client sends while the block runs; what ends the reading (a
    frame over `limit`) is handed to `ended`."""

    __slots__ = ("_ended", "_limit", "_reader")

    def __init__(self, ended: Callable[[BaseException], None], limit: int = 4096) -> None:
        self._ended, self._limit = ended, limit
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            await ignore_client_messages(self._limit)
        except Exception as error:
            self._ended(error)

    async def __aenter__(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, trace: Any) -> None:
        if self._reader is not None:
            await cancelled(self._reader)


async def race(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines until the first ends (or fails); cancel and await the others."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        await asyncio.gather(*(cancelled(task) for task in tasks))


async def cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
