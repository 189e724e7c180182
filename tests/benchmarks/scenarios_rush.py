"""Scenarios 2 and 3 on one pixweb server whose merchant is connected to the lean PSP, with
5,000 payer pages each watching its own charge (crowd.py's lean sockets):

2. reconnect storm: every page's socket drops and all reconnect at once (a deploy); timed
   until each has its current state again, the server's CPU per open read from /proc, while
   seed-route confirmations of other charges keep arriving at a steady rate (their
   confirm → fragment p99 measured during the storm). The confirmations' own CPU, measured
   at the same rate just before the storm, is taken out of the CPU per open.
3. checkout rush: 1,000 of the pages' charges paid, one Pix a delivery through the standard
   webhook intake at a steady 200/s (open loop), each read back from the lean PSP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.benchmarks import psp as lean
from tests.benchmarks.client import (
    close_now,
    http_client,
    merchant,
    open_sockets,
    payment_socket_url,
    wait_for_paid,
)
from tests.benchmarks.confirmations import intake_request, ms, payments_of, seed_request
from tests.benchmarks.context import Context
from tests.benchmarks.crowd import CrowdSocket, open_crowd
from tests.benchmarks.loadgen import Connection, connect
from tests.benchmarks.measure import CpuMeter
from tests.benchmarks.report import Row
from tests.benchmarks.servers import Server

STORM_SECONDS, STORM_CPU_MS, STORM_P99_MS = 10.0, 2.0, 50.0
RUSH_P99_MS = 25.0
STORM_TIMEOUT = 60.0  # per socket: connect, handshake, current state
PAID_TIMEOUT = 30.0
BANK_CONNECTIONS = 32


class Bank:
    """Keep-alive connections to the server, each carrying one request at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.idle: list[Connection] = []

    async def warm(self, count: int) -> None:
        """Open `count` connections now (one opened during a storm waits in the backlog)."""
        self.idle += await asyncio.gather(*(connect(self.url) for _ in range(count)))

    async def call(self, request: bytes) -> int:
        # the server closes keep-alive connections idle for 5 s (hypercorn's default)
        while self.idle and self.idle[-1].transport.is_closing():
            self.idle.pop()
        reused = bool(self.idle)
        connection = self.idle.pop() if reused else await connect(self.url)
        try:
            status, _ = await connection.call(request)
        except (ConnectionError, RuntimeError) as exc:
            connection.transport.close()
            if not reused or "connection lost" not in str(exc) and "closed" not in str(exc):
                raise
            # closed by the server for idleness as the request left: once more, afresh
            connection = await connect(self.url)
            status, _ = await connection.call(request)
        except BaseException:
            connection.transport.close()
            raise
        if connection.closing:
            connection.transport.close()
        else:
            self.idle.append(connection)
        return status

    def close(self) -> None:
        for connection in self.idle:
            connection.transport.close()


async def steady(
    bank: Bank,
    rate: float,
    calls: list[tuple[bytes, Callable[[], Any]]],
    stop: Callable[[], bool] = lambda: False,
    expect: int = 200,
    sent: list[float] | None = None,
) -> tuple[list[float], list[str]]:
    """Send each request at `rate` per second (open loop) until `stop()`: seconds from
    sending to its fragment (`arrived()` awaited), and the errors; `sent` gets, for each
    latency, when its request was sent (seconds from the first)."""
    latencies: list[float] = []
    errors: list[str] = []
    begin = time.perf_counter()

    async def one(request: bytes, arrived: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            status = await bank.call(request)
            if status != expect:
                errors.append(f"HTTP {status}")
                return
            await asyncio.wait_for(arrived(), PAID_TIMEOUT)
            latencies.append(time.perf_counter() - started)
            if sent is not None:
                sent.append(started - begin)
        except (OSError, RuntimeError, TimeoutError, ConnectionError) as exc:
            errors.append(f"{type(exc).__name__} {exc}"[:120])

    tasks = []
    for i, (request, arrived) in enumerate(calls):
        if stop():
            break
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(request, arrived)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def storm_and_rush(ctx: Context, wanted: set[str]) -> list[Row]:
    sizes, rows = ctx.sizes, []
    crowd: list[CrowdSocket] = []
    flow_sockets: list[ClientConnection] = []
    with lean.LeanPsp(ctx.workdir) as psp, Server(ctx.workdir, "rush") as server:
        bank = Bank(server.url)
        try:
            async with http_client(server.url, 32) as http:
                token, chave = await merchant(http)
                hook_path = "/" + (await psp.connect(http, token)).split("/", 3)[3]
                pages = await payments_of(http, token, sizes.pages)
                flow = await payments_of(http, token, int(sizes.storm_flow_rate * 20))
            urls = [payment_socket_url(server.ws_url, p) for p in pages]
            crowd = await open_crowd(urls, ctx.open_concurrency)
            if "2" in wanted:
                flow_sockets = await open_sockets(
                    [payment_socket_url(server.ws_url, p) for p in flow]
                )
                calls = [
                    (seed_request(server, p), lambda ws=ws: wait_for_paid(ws))
                    for p, ws in zip(flow, flow_sockets, strict=True)
                ]
                row, crowd = await _storm(ctx, server, bank, urls, crowd, calls)
                rows.append(row)
            if "3" in wanted:
                rows.append(await _rush(ctx, server, psp, bank, hook_path, chave, pages, crowd))
        finally:
            bank.close()
            close_now(flow_sockets)
            for sock in crowd:
                sock.abort()
    return rows


async def _storm(
    ctx: Context,
    server: Server,
    bank: Bank,
    urls: list[str],
    crowd: list[CrowdSocket],
    calls: list[tuple[bytes, Callable[[], Any]]],
) -> tuple[Row, list[CrowdSocket]]:
    rate = ctx.sizes.storm_flow_rate
    calm = calls[: len(calls) // 4]  # their CPU, alone, at the same rate
    meter = CpuMeter(server)
    await steady(bank, rate, calm)
    per_confirmation = meter.stop().server / len(calm)
    await bank.warm(BANK_CONNECTIONS)
    for sock in crowd:
        sock.abort()
    await asyncio.sleep(2.0)  # the server closes its side: not part of the storm
    done = False
    meter = CpuMeter(server)
    started = time.perf_counter()
    sent_at: list[float] = []
    flowing = asyncio.create_task(
        steady(bank, rate, calls[len(calm) :], lambda: done, sent=sent_at)
    )
    failures: list[BaseException] = []
    with ctx.profiler.phase("reconnect storm", server.worker_pids()):
        try:
            reopened = await open_crowd(
                urls, ctx.storm_concurrency, within=STORM_TIMEOUT, failures=failures
            )
        finally:
            back = time.perf_counter() - started
            done = True
            latencies, errors = await flowing
    share = meter.stop()
    sent = len(latencies) + len(errors)
    cpu_ms = max(share.server - per_confirmation * sent, 0.0) / max(len(reopened), 1) * 1000
    p99 = ms(latencies, 99)
    settled = [latency for latency, at in zip(latencies, sent_at, strict=True) if at >= 1.0]
    row = Row(
        f"2. reconnect storm: {len(urls):,} payer pages (own charge each) reconnect at once",
        f"{len(reopened):,} back in {back:.1f} s; {cpu_ms:.1f} ms server CPU per open; "
        f"confirmations during it p99 {p99:.1f} ms",
        target=f"≤ {STORM_SECONDS:.0f} s, ≤ {STORM_CPU_MS:.0f} ms CPU/open, p99 ≤ "
        f"{STORM_P99_MS:.0f} ms",
        ok=back <= STORM_SECONDS
        and cpu_ms <= STORM_CPU_MS
        and p99 <= STORM_P99_MS
        and not errors
        and not failures,
        notes=f"{_lost(failures)}{ctx.storm_concurrency} handshakes in "
        f"flight at most; each back once its pending state arrived; {sent} seed-route "
        f"confirmations at {rate:.0f}/s during it ({_errors(errors)}, p50 {ms(latencies, 50):.1f} "
        f"ms; those sent after its first second: p99 {ms(settled, 99):.1f} ms), their CPU "
        f"({per_confirmation * 1000:.1f} ms each, measured alone just before) "
        f"taken out of the CPU per open; {share.describe()}",
    )
    return row, reopened


async def _rush(
    ctx: Context,
    server: Server,
    psp: lean.LeanPsp,
    bank: Bank,
    hook_path: str,
    chave: str,
    pages: list[dict[str, Any]],
    crowd: list[CrowdSocket],
) -> Row:
    sizes = ctx.sizes
    count = min(sizes.rush_confirmations, len(pages))
    items = [lean.pix_item(n, p, chave) for n, p in enumerate(pages[:count])]
    await psp.add_pix(items)
    watching = {sock.url: sock for sock in crowd}
    urls = [payment_socket_url(server.ws_url, p) for p in pages]
    lost = [url for url in urls if url not in watching]  # by the storm: opened again
    for sock in await open_crowd(lost, ctx.open_concurrency):
        crowd.append(sock)
        watching[sock.url] = sock
    calls = [
        (intake_request(server, hook_path, item), lambda s=watching[url]: asyncio.shield(s.paid))
        for item, url in zip(items, urls[:count], strict=True)
    ]
    await bank.warm(BANK_CONNECTIONS)
    meter = CpuMeter(server, psp)
    with ctx.profiler.phase("checkout rush", server.worker_pids()):
        latencies, errors = await steady(bank, sizes.rush_rate, calls)
    share = meter.stop()
    p99 = ms(latencies, 99)
    return Row(
        f"3. checkout rush: {len(pages):,} payer pages, {count:,} confirmations at "
        f"{sizes.rush_rate:.0f}/s through the webhook intake",
        f"{len(errors)} errors; p50 {ms(latencies, 50):.1f} ms, p99 {p99:.1f} ms; server CPU "
        f"{share.server / share.seconds * 100:.0f}% of a core",
        target=f"0 errors, p99 ≤ {RUSH_P99_MS:.0f} ms",
        ok=not errors and p99 <= RUSH_P99_MS,
        notes=f"{_errors(errors)}; confirm → paid fragment on the page's own socket; each Pix "
        f"read back from the lean PSP over mTLS; {share.server / count * 1000:.1f} ms server "
        f"CPU per confirmation; {share.describe()}",
    )


def _errors(errors: list[str]) -> str:
    return f"{len(errors)} errors" + (f", the first: {errors[0]}" if errors else "")


def _lost(failures: list[BaseException]) -> str:
    if not failures:
        return ""
    return (
        f"**{len(failures):,} not back within {STORM_TIMEOUT:.0f} s** (the first: "
        f"{failures[0]!r}; connects beyond the server's listen backlog wait for SYN "
        "retransmits); "
    )
