"""Scenarios over plain HTTP: create a charge (4), one and two workers (9)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from tests.benchmarks.client import (
    PAYMENT_BODY,
    LoadResult,
    http_client,
    merchant_token,
)
from tests.benchmarks.context import Context
from tests.benchmarks.loadgen import load, raw_request
from tests.benchmarks.measure import CpuMeter, CpuShare, parallel_ceiling
from tests.benchmarks.psp import LeanPsp
from tests.benchmarks.report import Row, http_row, skipped
from tests.benchmarks.servers import Server, TempPostgres, redis_available

TARGET_STATIC_SHARE, TARGET_PSP_SHARE = 1 / 3, 1 / 4
TARGET_WORKERS_SPEEDUP = 1.6
CONCURRENCY = 32


def _create_call(server: Server, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(PAYMENT_BODY).encode()
    request = raw_request(server.url, "POST", "/payments/pix", body, headers)
    return {"request": request, "expect": 201}


def _healthz_call(server: Server) -> dict[str, Any]:
    return {"request": raw_request(server.url, "GET", "/healthz"), "expect": 200}


async def measured(
    ctx: Context,
    server: Server,
    call: dict[str, Any],
    concurrency: int,
    phase: str | None,
    psp: LeanPsp | None = None,
) -> tuple[LoadResult, CpuShare]:
    """Warm up, then one bounded load run with its CPU shares (profiled when asked)."""
    await load(server.url, requests=ctx.sizes.warmup, concurrency=concurrency, **call)
    meter = CpuMeter(server, psp)
    profiled = ctx.profiler.phase(phase, server.worker_pids()) if phase else nullcontext()
    with profiled:
        result = await load(
            server.url, requests=ctx.sizes.requests, concurrency=concurrency, **call
        )
    return result, meter.stop()


async def create(ctx: Context) -> tuple[list[Row], Row]:
    """Scenario 4 on one SQLite + memory-broker worker: a static charge (no PSP), then a
    merchant connected to the lean PSP (each create is a `PUT /cob` over keep-alive mTLS).

    Returns the rows of 4 and the static c=32 row again for scenario 9."""
    rows: list[Row] = []
    floor = ctx.floor.get("create")
    with LeanPsp(ctx.workdir) as psp, Server(ctx.workdir, "sqlite-memory") as server:
        async with http_client(server.url, 1) as http:
            static_token = await merchant_token(http)
            psp_token = await merchant_token(http)
            await psp.connect(http, psp_token)
        for token, label, share_target in (
            (static_token, "static BR Code (no PSP)", TARGET_STATIC_SHARE),
            (psp_token, "at the lean PSP (PUT /cob over mTLS)", TARGET_PSP_SHARE),
        ):
            phase = f"create-payment c=32, {label}"
            result, share = await measured(
                ctx, server, _create_call(server, token), CONCURRENCY, phase, psp
            )
            row = http_row(f"4. create a charge, c={CONCURRENCY}, {label}", result, share)
            ratio = result.rate / floor if floor else None
            row.floor = f"{floor:,.0f} req/s (a constant answer)" if floor else "not measured"
            row.ratio = f"{ratio:.2f}×" if ratio else ""
            row.target = f"≥ 1/{round(1 / share_target)} of the floor ({share_target:.2f}×)"
            row.ok = (ratio >= share_target and not result.errors) if ratio else None
            rows.append(row)
    again = Row(
        "9. 1 worker, SQLite + memory broker, c=32",
        rows[0].measured,
        notes="scenario 4's static run, for comparison; " + rows[0].notes,
    )
    return rows, again


async def workers(ctx: Context) -> list[Row]:
    """Scenario 9: PostgreSQL + Redis with one and with two workers, create c=32, the load
    generator pinned to the last core (the servers, PostgreSQL and Redis are not pinned)."""
    why = redis_available(ctx.redis_url)
    if why is not None:
        return [skipped(f"9. {n} worker(s), PostgreSQL + Redis, c=32", why) for n in (1, 2)]
    rows: list[Row] = []
    rates: dict[int, float] = {}
    busy: dict[int, float] = {}  # cores the whole machine kept busy during each run
    cores = os.sched_getaffinity(0)
    for count in (1, 2):
        scenario = f"9. {count} worker{'s' if count > 1 else ''}, PostgreSQL + Redis, c=32"
        row, rate, share = await _on_postgres(ctx, scenario, count)
        rows.append(row)
        if rate is not None and share is not None:
            rates[count], busy[count] = rate, share.cores_busy()
    if len(rates) == 2:
        speedup = rates[2] / rates[1]
        two = rows[1]
        two.floor, two.ratio = f"1 worker: {rates[1]:,.0f} req/s", f"{speedup:.2f}×"
        two.target = f"≥ {TARGET_WORKERS_SPEEDUP}× one worker"
        two.ok = speedup >= TARGET_WORKERS_SPEEDUP
        # Every party (workers, PostgreSQL, Redis, the client) shares the machine's CPUs: if
        # each request costs them all what it cost with one worker, the CPUs left allow
        # two workers at most this much more.
        bound = len(cores) / busy[1]
        two.notes = (
            f"the one-worker run kept {busy[1]:.2f} of the {len(cores)} CPUs busy (all "
            f"parties), this one {busy[2]:.2f}: at one worker's cost per request the machine "
            f"allows at most {bound:.2f}× it; {two.notes}"
        )
    ceiling = await asyncio.to_thread(parallel_ceiling)
    pinning = (
        f"load generator pinned to CPU {max(cores)} while it loads (sched_setaffinity, set after "
        f"the server started: a child inherits its parent's CPUs); the servers, PostgreSQL and "
        f"Redis run on all {len(cores)} CPUs, so they share CPU {max(cores)} with it; "
        f"two CPU-bound Python processes here do {ceiling:.2f}× the work of one (measured "
        "just after): no two-process speed-up can exceed that"
    )
    for row in rows:
        row.notes = f"{pinning}; {row.notes}"
    return rows


@contextmanager
def _pinned_to_last_core() -> Iterator[None]:
    """This thread (the load generator's loop) on the last CPU only, for the block.

    Only once the server runs: the servers this process starts inherit its CPUs, and two
    workers started while it was pinned shared that one CPU with it (scenario 9 measured
    0.7-1.1x for two workers that way, with the machine 40% idle)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def _on_postgres(
    ctx: Context, scenario: str, count: int
) -> tuple[Row, float | None, CpuShare | None]:
    database = TempPostgres(ctx.postgres_url)
    why = await database.create()
    if why is not None:
        return skipped(scenario, why), None, None
    try:
        server = Server(
            ctx.workdir,
            f"postgres-redis-{count}w",
            workers=count,
            database_url=database.url,
            broker_url=ctx.redis_url,
        )
        with server:
            async with http_client(server.url, 1) as http:
                token = await merchant_token(http)
            phase = f"create-payment c=32, PostgreSQL + Redis, {count} worker(s)"
            with _pinned_to_last_core():
                result, share = await measured(
                    ctx, server, _create_call(server, token), CONCURRENCY, phase
                )
    finally:
        await database.drop()
    row = http_row(scenario, result, share, extra="temporary database, dropped")
    return row, (result.rate if not result.errors else None), share
