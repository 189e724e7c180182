"""Serving with hypercorn: N worker processes on one address, graceful shutdown.

On SIGTERM/SIGINT every worker first sets the app's shutdown event, so each open
WebSocket closes with 1012 (htmx reconnects, reaching a live worker), then hypercorn
stops. Several workers need Redis between them and PostgreSQL under them: `check_workers`
refuses the embedded defaults, whose state never leaves one process.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import signal
import socket
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


# After a deploy every open payer page reconnects at once: hypercorn's default listen
# backlog (100) overflows and the kernel drops the rest of the handshakes (the clients retry
# after 1, 3, 7 s...). The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


def hypercorn_config(config: Config, host: str, port: int) -> HypercornConfig:
    """How hypercorn serves pixweb."""
    hypercorn = HypercornConfig()
    hypercorn.bind = [f"{host}:{port}"]
    hypercorn.accesslog = None if config.production else "-"  # production logs JSON lines
    hypercorn.graceful_timeout = 5
    hypercorn.websocket_max_message_size = MAX_WS_MESSAGE
    hypercorn.backlog = LISTEN_BACKLOG
    return hypercorn


def serve(config: Config, host: str, port: int, *, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT, in this process or in `workers` child processes."""
    check_workers(config, workers)
    hypercorn = hypercorn_config(config, host, port)
    if workers == 1:
        _worker(hypercorn, None, None)
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    hypercorn.workers = workers  # hypercorn then binds with SO_REUSEPORT
    bound = hypercorn.create_sockets()  # a taken address fails here, at once
    shared = _own_sockets_per_worker(hypercorn, bound)
    processes = [
        context.Process(target=_worker, args=(hypercorn, shared, stop)) for _ in range(workers)
    ]
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for process in processes:
        process.start()
    for process in processes:
        process.join()


def _own_sockets_per_worker(hypercorn: HypercornConfig, bound: Sockets) -> Sockets | None:
    """Let each worker listen on its own socket (None: the sockets to share, when it cannot).

    Workers sharing one listening socket do not share its connections evenly: whichever
    wakes first accepts every connection then waiting (32 keep-alive clients arriving
    together split 21/11 between two workers). With SO_REUSEPORT each worker binds its own
    socket to the address and the kernel spreads new connections across them (18/14).
    The sockets bound here stay open,
    never listening (they receive nothing), holding the address (its port, when 0 asked
    for any) for the workers."""
    if not hasattr(socket, "SO_REUSEPORT") or bound.secure_sockets or bound.quic_sockets:
        return bound
    binds = []
    for sock in bound.insecure_sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return bound
        host, port = sock.getsockname()[:2]
        binds.append(f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}")
    hypercorn.bind = binds
    return None


def decline_websocket_compression() -> None:
    """Decline permessage-deflate, which hypercorn otherwise accepts whenever offered.

    With it, every socket keeps a zlib stream (~120 KB of RAM, idle or not) or, without
    context takeover, builds one per message (CPU that dominated a 5,000-watcher push).
    pixweb's messages are a few KB and rare: compressing them is not worth either cost
    (make bench: 175 KB -> 58 KB per idle socket).
    """
    from hypercorn.protocol import ws_stream
    from wsproto.extensions import PerMessageDeflate

    class DeclinedDeflate(PerMessageDeflate):
        def accept(self, offer: str) -> None:
            return None

    ws_stream.PerMessageDeflate = DeclinedDeflate  # type: ignore[attr-defined]


# A collection stops the process while it walks its generation, and every open socket
# keeps a few hundred tracked objects: with 5,000 open a full collection takes ~1 s. The
# default thresholds (700, 10, 10) ran one at each ~25% of growth, a dozen while 5,000
# payers connected. Collecting the young generation every 50,000 allocations and the
# middle one every 20 of those made full ones rare but the middle generation
# huge: up to a million objects, 0.2-0.54 s a pass, each a confirmation waiting (make
# bench, storm: gen1 pauses read by gc.callbacks). Small young generations (5,000 and
# 3 x 5,000: under 10 ms a pass) and a full collection considered only after 200 middle
# ones (3 million survivors: a 5,000-socket storm runs none) keep every pause short.
GC_THRESHOLDS = (5_000, 2, 200)


def tune_garbage_collector() -> None:
    """Freeze what start-up made (modules, schemas, templates: never garbage, so never
    walked again) and collect less often; see GC_THRESHOLDS."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _worker(hypercorn: HypercornConfig, sockets: Sockets | None, stop: ProcessEvent | None) -> None:
    decline_websocket_compression()
    if stop is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, through `stop`
    app = create_app()
    tune_garbage_collector()
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
