"""Scenarios over WebSockets: confirm→fragment latency (2), a crowd (3), idle sockets' RSS (4).

All three share one fresh server, in this order:
  watchers A open (one socket per payment, 200) → RSS baseline
  → idle sockets up to 1,000 (RSS) → confirm A one by one (scenario 2 at 1,000)
  → idle up to 5,000 (RSS) → idle up to 10,000, the last 5,000 all on one "crowd" payment (RSS)
  → watchers B open → confirm B one by one (scenario 2 at 10,000)
  → confirm the crowd payment (scenario 3, with the 5,400 other sockets still open).
Idle sockets up to the middle checkpoint watch a few hundred other payments, many each.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.benchmarks.client import (
    close_now,
    confirmation,
    create_payment,
    http_client,
    merchant_token,
    open_sockets,
    payment_socket_url,
    percentile,
    wait_for_paid,
)
from tests.benchmarks.context import Context
from tests.benchmarks.crowd import CrowdSocket, open_crowd, paid_arrivals
from tests.benchmarks.loadgen import connect, raw_request
from tests.benchmarks.measure import CpuMeter, CpuShare
from tests.benchmarks.profiling import request_snapshot
from tests.benchmarks.report import Row
from tests.benchmarks.servers import Server

TARGET_P99_MS = 5.0
TARGET_CROWD_MS = 100.0
TARGET_RSS_MB = 400.0
CROWD_TIMEOUT = 120.0
SETTLE = 1.0  # seconds for transient garbage to go before reading RSS
MB, KB = 1e6, 1e3


async def _payments(http: httpx.AsyncClient, token: str, n: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(8)

    async def one() -> dict[str, Any]:
        async with gate:
            return await create_payment(http, token)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def _confirm_each(
    server: Server, watched: list[tuple[dict[str, Any], ClientConnection]]
) -> tuple[list[float], int]:
    """Confirm one payment at a time: from just before sending to the fragment arriving."""
    latencies, errors = [], 0
    bank = await connect(server.url)
    try:
        for payment, ws in watched:
            request = _confirmation_request(server, payment)
            started = time.perf_counter()
            post = asyncio.create_task(bank.call(request))
            await wait_for_paid(ws)
            latencies.append(time.perf_counter() - started)
            errors += (await post)[0] != 200
    finally:
        bank.transport.close()
    return latencies, errors


def _confirmation_request(server: Server, payment: dict[str, Any]) -> bytes:
    body, headers = confirmation(payment)
    return raw_request(server.url, "POST", "/payments/pix/confirmation", body, headers)


def _latency_row(ctx: Context, idle: int, latencies: list[float], errors: int, share: Any) -> Row:
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    final = idle >= ctx.sizes.checkpoints[2]
    return Row(
        f"2. confirm → paid fragment, {idle:,} other idle sockets open",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (max {max(latencies) * 1000:.1f} ms)",
        target=f"p99 < {TARGET_P99_MS:.0f} ms" if final else "",
        ok=(p99 < TARGET_P99_MS and not errors) if final else None,
        notes=f"{len(latencies)} payments confirmed one at a time, each watched by its own "
        f"socket; {errors} confirmation errors; {share.describe()}",
    )


async def sockets(ctx: Context) -> list[Row]:
    sizes = ctx.sizes
    held: list[ClientConnection] = []
    crowd: list[CrowdSocket] = []  # the last checkpoint's sockets, all on one payment
    rows: dict[str, list[Row]] = {"2": [], "3": [], "4": []}
    with Server(ctx.workdir, "sockets") as server:
        try:
            async with http_client(server.url, 8) as http:
                token = await merchant_token(http)
                idle_payments = await _payments(http, token, sizes.idle_payments)
                watched_a = await _payments(http, token, sizes.watched)
                watched_b = await _payments(http, token, sizes.watched)
                crowd_payment = await create_payment(http, token)
                url = lambda p: payment_socket_url(server.ws_url, p)  # noqa: E731
                close_now(await open_sockets([url(p) for p in idle_payments[:20]]))  # warm-up
                sockets_a = await open_sockets([url(p) for p in watched_a])
                held += sockets_a
                await asyncio.sleep(SETTLE)
                baseline = server.rss_bytes()
                idle = 0
                for checkpoint in sizes.checkpoints:
                    last = checkpoint == sizes.checkpoints[2]
                    urls = [
                        url(crowd_payment if last else idle_payments[i % len(idle_payments)])
                        for i in range(idle, checkpoint)
                    ]
                    meter = CpuMeter(server)
                    with ctx.profiler.phase(f"open {len(urls):,} sockets", server.worker_pids()):
                        if last:
                            crowd = await open_crowd(urls, ctx.open_concurrency)
                        else:
                            held += await open_sockets(urls, ctx.open_concurrency)
                    share = meter.stop()
                    idle = checkpoint
                    await asyncio.sleep(SETTLE)
                    rss = server.rss_bytes()
                    rows["4"].append(rss_row(ctx, idle, rss, baseline, len(urls), share))
                    if checkpoint == sizes.checkpoints[0]:
                        meter = CpuMeter(server)
                        latencies, errors = await _confirm_each(
                            server, list(zip(watched_a, sockets_a, strict=True))
                        )
                        rows["2"].append(_latency_row(ctx, idle, latencies, errors, meter.stop()))
                sockets_b = await open_sockets([url(p) for p in watched_b])
                held += sockets_b
                meter = CpuMeter(server)
                with ctx.profiler.phase("confirm one by one, 10,000 idle", server.worker_pids()):
                    latencies, errors = await _confirm_each(
                        server, list(zip(watched_b, sockets_b, strict=True))
                    )
                rows["2"].append(_latency_row(ctx, idle, latencies, errors, meter.stop()))
                with ctx.profiler.phase("confirm the crowd payment", server.worker_pids()):
                    rows["3"].append(await _crowd(server, crowd_payment, crowd, len(held)))
        finally:
            close_now(held)
            for sock in crowd:
                sock.abort()
    return rows["2"] + rows["3"] + rows["4"]


def rss_row(ctx: Context, idle: int, rss: int, baseline: int, opened: int, share: Any) -> Row:
    per_socket = (rss - baseline) / idle
    final = idle >= ctx.sizes.checkpoints[2]
    rate = opened / share.seconds
    return Row(
        f"4. {idle:,} idle sockets held by one server process",
        f"RSS {rss / MB:,.0f} MB (+{(rss - baseline) / MB:,.0f} MB over {baseline / MB:.0f} MB "
        f"before): {per_socket / KB:.1f} KB/socket",
        target=f"RSS < {TARGET_RSS_MB:.0f} MB" if final else "",
        ok=rss / MB < TARGET_RSS_MB if final else None,
        notes=f"VmRSS; the client offers permessage-deflate (as browsers do); these "
        f"{opened:,} sockets opened at {rate:,.0f}/s, {share.server / opened * 1000:.1f} ms "
        f"server CPU each; {share.describe()}",
    )


async def _crowd(
    server: Server,
    payment: dict[str, Any],
    crowd: list[CrowdSocket],
    others: int,
) -> Row:
    meter = CpuMeter(server)
    arrivals, failed, status = await crowd_arrivals(
        server, _confirmation_request(server, payment), crowd
    )
    return crowd_row(
        f"3. one payment watched by {len(crowd):,} sockets: confirm → all have the fragment",
        arrivals,
        failed,
        status,
        f"{others:,} other sockets open on the same server; {meter.stop().describe()}",
    )


async def crowd_arrivals(
    server: Server, request: bytes, crowd: list[CrowdSocket]
) -> tuple[list[float], int, int]:
    """Send the confirmation `request`: seconds from sending it to each socket's paid
    fragment, the sockets without it, the answer's status."""
    bank = await connect(server.url)
    try:
        started = time.perf_counter()
        status, _ = await bank.call(request)
        arrivals = await paid_arrivals(crowd, started, CROWD_TIMEOUT)
    finally:
        bank.transport.close()
    return arrivals, len(crowd) - len(arrivals), status


def crowd_row(scenario: str, arrivals: list[float], failed: int, status: int, notes: str) -> Row:
    last = max(arrivals, default=float("nan")) * 1000
    return Row(
        scenario,
        f"all {len(arrivals):,} in {last:,.0f} ms (first {min(arrivals) * 1000:.0f} ms, "
        f"p50 {percentile(arrivals, 50) * 1000:,.0f} ms)",
        target=f"≤ {TARGET_CROWD_MS:.0f} ms",
        ok=not failed and status == 200 and last <= TARGET_CROWD_MS,
        notes=f"{notes}; {failed} sockets without the fragment; confirmation answered {status}",
    )


async def _idle_on_fresh_server(
    ctx: Context, name: str, n: int, compression: str | None, traced: Path | None = None
) -> tuple[int, int, CpuShare]:
    """Open `n` idle sockets on a fresh server: (RSS before, RSS after, CPU shares)."""
    held: list[ClientConnection] = []
    with Server(ctx.workdir, name, traced_dir=traced) as server:
        try:
            async with http_client(server.url, 8) as http:
                token = await merchant_token(http)
                payments = await _payments(http, token, ctx.sizes.idle_payments)
            urls = [
                payment_socket_url(server.ws_url, payments[i % len(payments)]) for i in range(n)
            ]
            close_now(await open_sockets(urls[:20], compression=compression))  # warm-up
            await asyncio.sleep(SETTLE)
            baseline = server.rss_bytes()
            if traced is not None:
                await request_snapshot(server.pid, traced, 1)
            meter = CpuMeter(server)
            held = await open_sockets(urls, ctx.open_concurrency, compression=compression)
            share = meter.stop()
            await asyncio.sleep(SETTLE)
            rss = server.rss_bytes()
            if traced is not None:
                growth = await request_snapshot(server.pid, traced, 2)
                ctx.profiler.memory_growth(f"{n:,} idle sockets opened ({name})", growth)
        finally:
            close_now(held)
    return baseline, rss, share


async def plain_sockets(ctx: Context) -> Row:
    """Diagnostic for 4: the same idle sockets when the client offers no compression."""
    n = ctx.sizes.plain_sockets
    baseline, rss, share = await _idle_on_fresh_server(ctx, "sockets-plain", n, None)
    return Row(
        f"4. (diagnostic) {n:,} idle sockets, client offers no permessage-deflate",
        f"+{(rss - baseline) / MB:,.0f} MB: {(rss - baseline) / n / KB:.1f} KB/socket",
        notes=f"a fresh server; opened at {n / share.seconds:,.0f}/s, "
        f"{share.server / n * 1000:.1f} ms server CPU each; {share.describe()}",
    )


async def memory_profile(ctx: Context) -> None:
    """`--profile` only: tracemalloc's view of what idle sockets (with deflate) allocate."""
    assert ctx.profile_dir is not None
    traced = ctx.profile_dir / "memory"
    traced.mkdir(parents=True, exist_ok=True)
    n = ctx.sizes.checkpoints[0]
    await _idle_on_fresh_server(ctx, "sockets-traced", n, "deflate", traced)
