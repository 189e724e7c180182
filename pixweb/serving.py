"""Serving with hypercorn: N worker processes on one listening socket, graceful shutdown.

On SIGTERM/SIGINT every worker first sets the app's shutdown event, so each open
WebSocket closes with 1012 (htmx reconnects, reaching a live worker), then hypercorn
stops. Several workers need Redis between them and PostgreSQL under them: `check_workers`
refuses the embedded defaults, whose state never leaves one process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any
from urllib.parse import urlsplit

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from pixweb.app import create_app
from pixweb.config import Config, ConfigError
from pixweb.deps import SHUTDOWN_KEY

GRACE_SECONDS = 0.5  # for handlers to send their close frames before hypercorn stops
MAX_WS_MESSAGE = 64 * 1024


def check_workers(config: Config, workers: int) -> None:
    """Refuse several workers on the single-process defaults, saying why."""
    if workers <= 1:
        return
    if urlsplit(config.broker_url).scheme == "memory":
        raise ConfigError(
            "--workers > 1 needs PIXWEB_BROKER_URL=redis://...: with memory:// an event "
            "published in one worker never reaches the sockets held by the others"
        )
    if config.database_url.startswith("sqlite"):
        raise ConfigError(
            "--workers > 1 needs PIXWEB_DATABASE_URL=postgres://...: SQLite locks the whole "
            "file and pixweb serializes its writes inside one process only"
        )


def serve(config: Config, host: str, port: int, *, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT, in this process or in `workers` child processes."""
    check_workers(config, workers)
    hypercorn = HypercornConfig()
    hypercorn.bind = [f"{host}:{port}"]
    hypercorn.accesslog = None if config.production else "-"  # production logs JSON lines
    hypercorn.graceful_timeout = 5
    hypercorn.websocket_max_message_size = MAX_WS_MESSAGE
    if workers == 1:
        _worker(hypercorn, None, None)
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    sockets = hypercorn.create_sockets()
    processes = [
        context.Process(target=_worker, args=(hypercorn, sockets, stop)) for _ in range(workers)
    ]
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for process in processes:
        process.start()
    for process in processes:
        process.join()


def _lean_websocket_compression() -> None:
    """Negotiate permessage-deflate without context takeover (RFC 7692 lets a server ask).

    Hypercorn accepts browsers' permessage-deflate offer with its default: a zlib stream
    kept for the socket's whole life, about 120 KB of RAM per idle socket. pixweb sends
    small, rare fragments, so compressing each message on its own costs nothing worth
    measuring and brings an idle socket from ~175 KB down to ~57 KB (make bench).
    """
    from hypercorn.protocol import ws_stream
    from wsproto.extensions import PerMessageDeflate

    class PerMessageDeflateNoTakeover(PerMessageDeflate):
        def __init__(self) -> None:
            super().__init__(client_no_context_takeover=True, server_no_context_takeover=True)

    ws_stream.PerMessageDeflate = PerMessageDeflateNoTakeover  # type: ignore[attr-defined,assignment]


def _worker(hypercorn: HypercornConfig, sockets: Sockets | None, stop: ProcessEvent | None) -> None:
    _lean_websocket_compression()
    if stop is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, through `stop`
    app = create_app()
    try:
        import uvloop

        uvloop.run(_run(app, hypercorn, sockets, stop))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_run(app, hypercorn, sockets, stop))


async def _run(
    app: Any, hypercorn: HypercornConfig, sockets: Sockets | None, stop: ProcessEvent | None
) -> None:
    async def shutdown_trigger() -> None:
        await _wait_for_stop(stop)
        app.extensions[SHUTDOWN_KEY].set()
        await asyncio.sleep(GRACE_SECONDS)

    wrapped = wrap_app(app, hypercorn.wsgi_max_body_size, "asgi")
    await worker_serve(wrapped, hypercorn, sockets=sockets, shutdown_trigger=shutdown_trigger)


async def _wait_for_stop(stop: ProcessEvent | None) -> None:
    if stop is not None:
        # A process-shared Event cannot be awaited; hypercorn polls it the same way.
        while not stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        return
    asked = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, asked.set)
    await asked.wait()
