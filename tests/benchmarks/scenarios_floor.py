"""The floor rows of scenarios 1, 3 and 4: the same loads against floor_app.py, the fixed
stack (Quart on hypercorn, served as pixweb serves) with nothing of pixweb behind it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from websockets.asyncio.client import ClientConnection

from tests.benchmarks.client import close_now, open_sockets
from tests.benchmarks.context import Context
from tests.benchmarks.crowd import CrowdSocket, open_crowd
from tests.benchmarks.loadgen import raw_request
from tests.benchmarks.measure import CpuMeter
from tests.benchmarks.report import Row, http_row
from tests.benchmarks.scenarios_http import CONCURRENCY, measured
from tests.benchmarks.scenarios_ws import SETTLE, crowd_arrivals, crowd_row, rss_row
from tests.benchmarks.servers import FLOOR_MODULE, Server

STACK = "bare Quart + hypercorn"


async def floor(ctx: Context, wanted: set[str]) -> list[Row]:
    rows: list[Row] = []
    held: list[ClientConnection] = []
    crowd_sockets: list[CrowdSocket] = []
    with Server(ctx.workdir, "floor", module=FLOOR_MODULE) as server:
        try:
            if "1" in wanted:
                for method, path, expect in (
                    ("POST", "/payments/pix", 201),
                    ("GET", "/healthz", 200),
                ):
                    call = {"request": raw_request(server.url, method, path), "expect": expect}
                    result, share = await measured(ctx, server, call, CONCURRENCY, None)
                    scenario = f"1. floor: {STACK}, {method} {path} (a constant), c={CONCURRENCY}"
                    rows.append(http_row(scenario, result, share, extra="floor_app.py"))
            if not wanted & {"3", "4"}:
                return rows
            n, crowd = ctx.sizes.checkpoints[2], ctx.sizes.crowd
            urls = [f"{server.ws_url}/ws/payments/idle-{i}" for i in range(n - crowd)]
            close_now(await open_sockets(urls[:20]))  # warm-up
            await asyncio.sleep(SETTLE)
            baseline = server.rss_bytes()
            meter = CpuMeter(server)
            held = await open_sockets(urls, ctx.open_concurrency)
            crowd_sockets = await open_crowd([f"{server.ws_url}/ws/payments/crowd"] * crowd)
            share = meter.stop()
            await asyncio.sleep(SETTLE)
            row = rss_row(ctx, n, server.rss_bytes(), baseline, n, share)
            rows.append(replace(row, scenario=f"4. floor: {n:,} idle sockets, {STACK}"))
            request = raw_request(server.url, "POST", "/payments/pix/confirmation")
            meter = CpuMeter(server)
            arrivals, failed, status = await crowd_arrivals(server, request, crowd_sockets)
            scenario = f"3. floor: {crowd:,} sockets woken at once, {STACK}"
            notes = f"{n - crowd:,} other sockets open; {meter.stop().describe()}"
            rows.append(crowd_row(scenario, arrivals, failed, status, notes))
        finally:
            close_now(held)
            for sock in crowd_sockets:
                sock.abort()
    return rows
