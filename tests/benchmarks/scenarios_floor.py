"""The floor: the same loads against floor_app.py, the fixed stack (Quart on hypercorn, served
as pixweb serves) with nothing of pixweb behind it. Measured first; its numbers go into
`ctx.floor` for pixweb's rows (scenarios 1, 4 and 5) to show beside theirs, with the ratio.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection

from tests.benchmarks.client import close_now, open_sockets
from tests.benchmarks.confirmations import confirm_each, crowd_arrivals, ms
from tests.benchmarks.context import Context
from tests.benchmarks.crowd import CrowdSocket, open_crowd
from tests.benchmarks.loadgen import raw_request
from tests.benchmarks.scenarios_http import CONCURRENCY, measured
from tests.benchmarks.scenarios_ws import SETTLE
from tests.benchmarks.servers import FLOOR_MODULE, Server


def _push(server: Server, socket_id: str) -> bytes:
    return raw_request(server.url, "POST", f"/payments/pix/confirmation?id={socket_id}")


async def _latencies(
    ctx: Context, server: Server, prefix: str, held: list[ClientConnection]
) -> list[float]:
    """Open one socket per watcher, then push to each in turn (POST → its fragment)."""
    ids = [f"{prefix}-{i}" for i in range(ctx.sizes.watched)]
    sockets = await open_sockets([f"{server.ws_url}/ws/payments/{i}" for i in ids])
    held += sockets
    return await confirm_each(
        server.url, [(_push(server, i), ws) for i, ws in zip(ids, sockets, strict=True)]
    )


async def floor(ctx: Context, wanted: set[str]) -> None:
    held: list[ClientConnection] = []
    crowd_sockets: list[CrowdSocket] = []
    numbers = ctx.floor
    with Server(ctx.workdir, "floor", module=FLOOR_MODULE) as server:
        try:
            if "4" in wanted:
                call = {"request": raw_request(server.url, "POST", "/payments/pix"), "expect": 201}
                result, _ = await measured(ctx, server, call, CONCURRENCY, None)
                numbers["create"] = result.rate
            if not wanted & {"1", "5"}:
                return
            one = await _latencies(ctx, server, "one", held)
            numbers["one.p50"], numbers["one.p99"] = ms(one, 50), ms(one, 99)
            n, crowd = ctx.sizes.checkpoints[2], ctx.sizes.crowd
            urls = [f"{server.ws_url}/ws/payments/idle-{i}" for i in range(n - crowd)]
            await asyncio.sleep(SETTLE)
            baseline = server.rss_bytes()
            held += await open_sockets(urls, ctx.open_concurrency)
            crowd_url = f"{server.ws_url}/ws/payments/crowd"
            crowd_sockets = await open_crowd([crowd_url] * crowd, ctx.open_concurrency)
            await asyncio.sleep(SETTLE)
            numbers["rss_per_socket"] = (server.rss_bytes() - baseline) / n
            idle = await _latencies(ctx, server, "idle", held)
            numbers["idle.p50"], numbers["idle.p99"] = ms(idle, 50), ms(idle, 99)
            request = raw_request(server.url, "POST", "/payments/pix/confirmation")
            arrivals, failed, _ = await crowd_arrivals(server.url, request, crowd_sockets)
            if not failed:
                numbers["fanout"] = max(arrivals) * 1000
        finally:
            close_now(held)
            for sock in crowd_sockets:
                sock.abort()
