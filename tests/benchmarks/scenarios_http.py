"""Scenarios over plain HTTP: create-payment throughput (1), QR images (5), workers (6)."""

from __future__ import annotations

import json
import secrets
import statistics
import string
import time
from contextlib import nullcontext
from typing import Any

import httpx

from tests.benchmarks.client import (
    PAYMENT_BODY,
    LoadResult,
    create_payment,
    http_client,
    merchant_token,
)
from tests.benchmarks.context import Context
from tests.benchmarks.loadgen import load, raw_request
from tests.benchmarks.measure import CpuMeter, CpuShare
from tests.benchmarks.report import Row, http_row, skipped
from tests.benchmarks.servers import Server, TempPostgres, redis_available

TARGET_RATE = 1000.0
TARGET_QR_SPEEDUP = 10.0
CONCURRENCY = 32


def _create_call(server: Server, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(PAYMENT_BODY).encode()
    request = raw_request(server.url, "POST", "/payments/pix", body, headers)
    return {"request": request, "expect": 201}


def _healthz_call(server: Server) -> dict[str, Any]:
    return {"request": raw_request(server.url, "GET", "/healthz"), "expect": 200}


async def measured(
    ctx: Context, server: Server, call: dict[str, Any], concurrency: int, phase: str | None
) -> tuple[LoadResult, CpuShare]:
    """Warm up, then one bounded load run with its CPU shares (profiled when asked)."""
    await load(server.url, requests=ctx.sizes.warmup, concurrency=concurrency, **call)
    meter = CpuMeter(server)
    profiled = ctx.profiler.phase(phase, server.worker_pids()) if phase else nullcontext()
    with profiled:
        result = await load(
            server.url, requests=ctx.sizes.requests, concurrency=concurrency, **call
        )
    return result, meter.stop()


async def throughput_and_qr(ctx: Context) -> tuple[list[Row], list[Row], Row]:
    """Scenario 1 and the server side of 5 on one SQLite + memory-broker worker.

    Returns (rows of 1, rows of 5, the c=32 create row again for scenario 6).
    """
    rows: list[Row] = []
    with Server(ctx.workdir, "sqlite-memory") as server:
        async with http_client(server.url, 1) as http:
            token = await merchant_token(http)
        for concurrency in (1, CONCURRENCY):
            phase = "create-payment c=32" if concurrency == CONCURRENCY else None
            result, share = await measured(
                ctx, server, _create_call(server, token), concurrency, phase
            )
            target = TARGET_RATE if concurrency == CONCURRENCY else None
            rows.append(
                http_row(f"1. create-payment, c={concurrency}", result, share, target_rate=target)
            )
            phase = "healthz c=32" if concurrency == CONCURRENCY else None
            result, share = await measured(ctx, server, _healthz_call(server), concurrency, phase)
            ceiling = "the same server and client: the most this setup can do"
            scenario = f"1. /healthz (ceiling), c={concurrency}"
            rows.append(http_row(scenario, result, share, extra=ceiling))
        async with http_client(server.url, 1) as http:
            qr_rows = [await _qr_over_http(ctx, http, token)]
    same = rows[2]
    again = Row(
        "6. 1 worker, SQLite + memory broker, c=32",
        same.measured,
        notes="the run of scenario 1 (create-payment, c=32); " + same.notes,
    )
    return rows, qr_rows, again


async def _qr_over_http(ctx: Context, http: httpx.AsyncClient, token: str) -> Row:
    first, second = [], []
    for _ in range(ctx.sizes.qr_fresh):
        payment = await create_payment(http, token)
        path = f"/payments/pix/qr_code/{payment['id']}.png"
        for samples in (first, second):
            started = time.perf_counter()
            answer = await http.get(path)
            samples.append(time.perf_counter() - started)
            if answer.status_code != 200 or not answer.content.startswith(b"\x89PNG"):
                raise RuntimeError(f"QR GET: {answer.status_code}")
    first_ms, second_ms = statistics.median(first) * 1000, statistics.median(second) * 1000
    speedup = first_ms / second_ms
    return Row(
        "5. QR PNG over HTTP: first GET vs second GET of a fresh payment",
        f"first p50 {first_ms:.2f} ms, second p50 {second_ms:.2f} ms: {speedup:.1f}× faster",
        target=f"cached ≥ {TARGET_QR_SPEEDUP:.0f}× faster",
        ok=speedup >= TARGET_QR_SPEEDUP,
        notes=f"{ctx.sizes.qr_fresh} payments, c=1; both GETs also pay for the HTTP request and "
        "the payment's database lookup",
    )


def qr_in_process(ctx: Context) -> Row:
    """Scenario 5 in-process: pixweb.pix.qr.png, first call vs cached call."""
    from pixweb.pix import brcode, qr

    alphabet = string.ascii_letters + string.digits
    payloads = [
        brcode.build(
            key="caixa@padaria.example",
            name="Padaria Sao Joao",
            city="Sao Paulo",
            amount_cents=2590 + i,
            txid="".join(secrets.choice(alphabet) for _ in range(25)),
            description="Pedido benchmark",
        )
        for i in range(ctx.sizes.qr_payloads)
    ]
    qr.png.cache_clear()
    first = []
    for payload in payloads:
        started = time.perf_counter()
        qr.png(payload)
        first.append(time.perf_counter() - started)
    batch = 1000
    cached = []
    for i in range(max(ctx.sizes.qr_cached_calls // batch, 1)):
        payload = payloads[i % len(payloads)]
        started = time.perf_counter()
        for _ in range(batch):
            qr.png(payload)
        cached.append((time.perf_counter() - started) / batch)
    first_ms, cached_us = statistics.median(first) * 1000, statistics.median(cached) * 1e6
    speedup = first_ms * 1000 / cached_us
    return Row(
        "5. QR PNG in-process: pixweb.pix.qr.png first vs cached call",
        f"first p50 {first_ms:.2f} ms, cached p50 {cached_us:.2f} µs: {speedup:,.0f}× faster",
        target=f"cached ≥ {TARGET_QR_SPEEDUP:.0f}× faster",
        ok=speedup >= TARGET_QR_SPEEDUP,
        notes=f"{len(payloads)} distinct BR Codes rendered once each; "
        f"{len(cached) * batch:,} cached calls, timed in batches of {batch}",
    )


async def workers(ctx: Context) -> list[Row]:
    """Scenario 6: PostgreSQL + Redis with one and with two workers, create-payment c=32."""
    why = redis_available(ctx.redis_url)
    if why is not None:
        return [skipped(f"6. {n} worker(s), PostgreSQL + Redis, c=32", why) for n in (1, 2)]
    rows = []
    for count in (1, 2):
        scenario = f"6. {count} worker{'s' if count > 1 else ''}, PostgreSQL + Redis, c=32"
        database = TempPostgres(ctx.postgres_url)
        why = await database.create()
        if why is not None:
            rows.append(skipped(scenario, why))
            continue
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
                result, share = await measured(
                    ctx, server, _create_call(server, token), CONCURRENCY, phase
                )
            rows.append(http_row(scenario, result, share, extra="temporary database, dropped"))
        finally:
            await database.drop()
    return rows
