"""Scenarios 1 and 5 on one pixweb server whose merchant is connected to the lean PSP:
confirm → paid fragment (1), one payment's fan-out and idle sockets' RSS (5).

In this order:
  watchers A open (one socket per payment) → RSS baseline → confirm A one by one through
  the seed route (1, "one socket": one push at a time)
  → idle sockets up to 1,000 / 5,000 / 10,000 (RSS), the last half all on one crowd payment
  → watchers B open → confirm B one by one through the seed route (1, with 10,000 idle)
  → watchers C open → confirm C one by one through the standard webhook intake, which reads
  each Pix back from the lean PSP (1: p99 ≤ 2× the seed route's)
  → confirm the crowd payment (5: fan-out, the 5,400 other sockets still open).
The floor's numbers (scenarios_floor.py, measured first) give the ratios.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.benchmarks import psp as lean
from tests.benchmarks.client import (
    close_now,
    create_payment,
    http_client,
    merchant,
    open_sockets,
    payment_socket_url,
    percentile,
)
from tests.benchmarks.confirmations import (
    confirm_each,
    crowd_arrivals,
    intake_request,
    ms,
    payments_of,
    seed_request,
)
from tests.benchmarks.context import Context
from tests.benchmarks.crowd import CrowdSocket, open_crowd
from tests.benchmarks.measure import CpuMeter, CpuShare
from tests.benchmarks.report import Row
from tests.benchmarks.servers import Server

TARGET_P50_MS, TARGET_P99_MS = 2.5, 5.0
TARGET_INTAKE_RATIO = 2.0
TARGET_FANOUT_RATIO, TARGET_RSS_RATIO = 1.3, 1.15
SETTLE = 1.0  # seconds for transient garbage to go before reading RSS
MB, KB = 1e6, 1e3


def latency_row(
    ctx: Context, label: str, latencies: list[float], share: CpuShare, floor_key: str
) -> Row:
    p50, p99 = ms(latencies, 50), ms(latencies, 99)
    floor50, floor99 = ctx.floor.get(f"{floor_key}.p50"), ctx.floor.get(f"{floor_key}.p99")
    return Row(
        f"1. confirm → paid fragment (seed route), {label}",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        target=f"p50 ≤ {TARGET_P50_MS} ms, p99 ≤ {TARGET_P99_MS:.0f} ms",
        ok=p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS,
        floor=f"p50 {floor50:.1f} ms, p99 {floor99:.1f} ms" if floor50 else "not measured",
        ratio=f"p50 {p50 / floor50:.1f}×, p99 {p99 / floor99:.1f}×" if floor50 and floor99 else "",
        notes=f"{len(latencies)} charges confirmed one at a time, each watched by its own "
        f"socket; max {max(latencies) * 1000:.1f} ms; {share.describe()}",
    )


async def sockets(ctx: Context, wanted: set[str]) -> list[Row]:
    sizes, rows = ctx.sizes, []
    held: list[ClientConnection] = []
    crowd: list[CrowdSocket] = []
    with lean.LeanPsp(ctx.workdir) as psp, Server(ctx.workdir, "sockets") as server:
        try:
            async with http_client(server.url, 8) as http:
                token, chave = await merchant(http)
                hook_path = "/" + (await psp.connect(http, token)).split("/", 3)[3]
                idle_payments = await payments_of(http, token, sizes.idle_payments)
                watched = [await payments_of(http, token, sizes.watched) for _ in "ABC"]
                crowd_payment = await create_payment(http, token)
            await psp.add_pix([lean.pix_item(n, p, chave) for n, p in enumerate(watched[2])])
            url = lambda p: payment_socket_url(server.ws_url, p)  # noqa: E731
            close_now(await open_sockets([url(p) for p in idle_payments[:20]]))  # warm-up
            sockets_a = await open_sockets([url(p) for p in watched[0]])
            held += sockets_a
            await asyncio.sleep(SETTLE)
            baseline = server.rss_bytes()
            meter = CpuMeter(server)
            with ctx.profiler.phase("confirm one by one (seed), one socket", server.worker_pids()):
                requests = [seed_request(server, p) for p in watched[0]]
                latencies = await confirm_each(
                    server.url, list(zip(requests, sockets_a, strict=True))
                )
            rows.append(latency_row(ctx, "one socket", latencies, meter.stop(), "one"))
            crowd, share, opened = await _open_idle(ctx, server, idle_payments, crowd_payment, held)
            idle = sizes.checkpoints[2]
            await asyncio.sleep(SETTLE)
            rss = server.rss_bytes()
            if "5" in wanted:
                rows.append(rss_row(ctx, idle, rss, baseline, share, opened))
            rows += await _at_ten_thousand(ctx, server, psp, hook_path, watched, chave, held)
            if "5" in wanted:
                with ctx.profiler.phase("confirm the crowd payment", server.worker_pids()):
                    rows.append(await _crowd(ctx, server, crowd_payment, crowd, len(held)))
        finally:
            close_now(held)
            for sock in crowd:
                sock.abort()
    return rows


async def _open_idle(
    ctx: Context,
    server: Server,
    payments: list[dict[str, Any]],
    crowd_payment: dict[str, Any],
    held: list[ClientConnection],
) -> tuple[list[CrowdSocket], CpuShare, int]:
    """Idle sockets up to each checkpoint, the last ones all on the crowd payment: the
    crowd, and the CPU share and count of the last checkpoint's openings."""
    idle, checkpoints = 0, ctx.sizes.checkpoints
    crowd: list[CrowdSocket] = []
    for checkpoint in checkpoints:
        last = checkpoint == checkpoints[2]
        urls = [
            payment_socket_url(
                server.ws_url, crowd_payment if last else payments[i % len(payments)]
            )
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
    return crowd, share, len(urls)


async def _at_ten_thousand(
    ctx: Context,
    server: Server,
    psp: lean.LeanPsp,
    hook_path: str,
    watched: list[list[dict[str, Any]]],
    chave: str,
    held: list[ClientConnection],
) -> list[Row]:
    """Seed route then webhook intake, one charge at a time, with the idle sockets open."""
    url = lambda p: payment_socket_url(server.ws_url, p)  # noqa: E731
    idle = f"{ctx.sizes.checkpoints[2]:,} idle sockets open"
    sockets_b = await open_sockets([url(p) for p in watched[1]])
    held += sockets_b
    meter = CpuMeter(server)
    with ctx.profiler.phase(f"confirm one by one (seed), {idle}", server.worker_pids()):
        requests = [seed_request(server, p) for p in watched[1]]
        seed = await confirm_each(server.url, list(zip(requests, sockets_b, strict=True)))
    rows = [latency_row(ctx, f"then {idle}", seed, meter.stop(), "idle")]
    sockets_c = await open_sockets([url(p) for p in watched[2]])
    held += sockets_c
    requests = [
        intake_request(server, hook_path, lean.pix_item(n, p, chave))
        for n, p in enumerate(watched[2])
    ]
    meter = CpuMeter(server, psp)
    with ctx.profiler.phase("confirm one by one (webhook intake)", server.worker_pids()):
        intake = await confirm_each(server.url, list(zip(requests, sockets_c, strict=True)))
    share = meter.stop()
    ratio = ms(intake, 99) / ms(seed, 99)
    rows.append(
        Row(
            "1. confirm → paid fragment through the webhook intake (read-back from the lean "
            f"PSP over mTLS), {idle}",
            f"p50 {ms(intake, 50):.1f} ms, p99 {ms(intake, 99):.1f} ms",
            floor=f"seed route p99 {ms(seed, 99):.1f} ms",
            ratio=f"p99 {ratio:.1f}×",
            target=f"p99 ≤ {TARGET_INTAKE_RATIO:.0f}× the seed route's",
            ok=ratio <= TARGET_INTAKE_RATIO,
            notes=f"{len(intake)} charges made at the lean PSP (PUT /cob), one Pix delivered "
            f"at a time to POST /webhooks/pix/<token>/pix; {share.describe()}",
        )
    )
    return rows


def rss_row(ctx: Context, idle: int, rss: int, baseline: int, share: CpuShare, opened: int) -> Row:
    per_socket = (rss - baseline) / idle
    floor = ctx.floor.get("rss_per_socket")
    ratio = per_socket / floor if floor else None
    return Row(
        f"5. idle sockets: RSS per socket, {idle:,} open",
        f"{per_socket / KB:.1f} KB/socket (RSS {rss / MB:,.0f} MB, +{(rss - baseline) / MB:,.0f} "
        f"MB over {baseline / MB:.0f} MB)",
        floor=f"{floor / KB:.1f} KB/socket" if floor else "not measured",
        ratio=f"{ratio:.2f}×" if ratio else "",
        target=f"≤ {TARGET_RSS_RATIO}× the floor",
        ok=ratio <= TARGET_RSS_RATIO if ratio else None,
        notes=f"VmRSS; the client offers permessage-deflate (as browsers do); the last "
        f"{opened:,} opened at {opened / share.seconds:,.0f}/s, "
        f"{share.server / opened * 1000:.1f} ms server CPU each; {share.describe()}",
    )


async def _crowd(
    ctx: Context, server: Server, payment: dict[str, Any], crowd: list[CrowdSocket], others: int
) -> Row:
    meter = CpuMeter(server)
    arrivals, failed, status = await crowd_arrivals(
        server.url, seed_request(server, payment), crowd
    )
    last = max(arrivals, default=float("nan")) * 1000
    floor = ctx.floor.get("fanout")
    ratio = last / floor if floor else None
    return Row(
        f"5. fan-out: one payment → {len(crowd):,} sockets, confirm → the last has it",
        f"{last:,.0f} ms (first {min(arrivals, default=0) * 1000:.0f} ms, p50 "
        f"{percentile(arrivals, 50) * 1000:,.0f} ms)",
        floor=f"{floor:,.0f} ms" if floor else "not measured",
        ratio=f"{ratio:.2f}×" if ratio else "",
        target=f"≤ {TARGET_FANOUT_RATIO}× the floor",
        ok=(ratio <= TARGET_FANOUT_RATIO and not failed and status == 200) if ratio else None,
        notes=f"{others:,} other sockets open; {failed} sockets without the fragment; "
        f"confirmation answered {status}; {meter.stop().describe()}",
    )
