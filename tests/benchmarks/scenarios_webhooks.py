"""Scenario 7, merchant webhooks: 10 merchants, each with one endpoint subscribed to
`charge.created`, on receivers.py's HTTPS ports; one endpoint fails (500 after 1 s).

- throughput: 10,000 events (1,000 charges per merchant) are made while the server's
  delivery worker is off (PIXWEB_DELIVER_WEBHOOKS=0); the server restarts with it on and
  drains them: deliveries per second to the healthy endpoints, from ready to the last one;
- latency: then 1,000 more charges at a steady 200/s with the worker running: commit →
  delivery, from the event's `created_at` (stamped in the committing transaction) to its
  arrival at the receiver (the same machine's clock).
The failing endpoint "does not slow the others" when, with it failing, the healthy ones
meet both targets; the notes give the spread between healthy endpoints.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from typing import Any

import httpx

from tests.benchmarks.client import PAYMENT_BODY, http_client, merchant, percentile
from tests.benchmarks.context import Context
from tests.benchmarks.loadgen import load, raw_request
from tests.benchmarks.measure import CpuMeter
from tests.benchmarks.psp import Helper, certificates
from tests.benchmarks.report import Row
from tests.benchmarks.scenarios_rush import Bank, steady
from tests.benchmarks.servers import Server
from tests.server import free_port

TARGET_RATE, TARGET_P99_S = 500.0, 1.0
DRAIN_TIMEOUT = 180.0
LIVE_RATE = 200.0
TRUSTING = "tests.benchmarks.trusting_server"  # pixweb.cli trusting the receivers' CA


def _create(server: Server, token: str) -> bytes:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return raw_request(
        server.url, "POST", "/payments/pix", json.dumps(PAYMENT_BODY).encode(), headers
    )


async def _stats(ctx: Any, port: int) -> dict[int, list[tuple[float, float, str]]]:
    async with httpx.AsyncClient(verify=ctx, timeout=30) as http:
        answer = await http.get(f"https://127.0.0.1:{port}/_stats")
        answer.raise_for_status()
        return {int(k): v for k, v in answer.json().items()}


async def _until(ctx: Any, port: int, healthy: list[int], want: int) -> dict[int, Any]:
    """Poll the receivers until the healthy ports hold `want` deliveries (or time out)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        seen = await _stats(ctx, port)
        if sum(len(seen[p]) for p in healthy) >= want or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.5)


async def deliveries(ctx: Context) -> list[Row]:
    sizes = ctx.sizes
    folder = ctx.workdir / "receivers"
    trust = ssl.create_default_context(cadata=certificates(folder).cert_pem.bytes().decode())
    ports = [free_port() for _ in range(sizes.webhook_endpoints)]
    failing, healthy = ports[-1], ports[:-1]
    command = [sys.executable, "-m", "tests.benchmarks.receivers", "--ports"]
    command += [",".join(map(str, ports)), "--failing", str(failing), "--certs", str(folder)]
    receivers = Helper(folder, command, ports[0])
    env = {"PIXWEB_DELIVER_WEBHOOKS": "0", "BENCH_EXTRA_CA": str(folder / "ca.pem")}
    receivers.start()
    try:
        with Server(ctx.workdir, "webhooks", env=env, module=TRUSTING) as server:
            tokens = await _endpoints(server, ports)
            each = sizes.webhook_events // len(ports)
            await asyncio.gather(
                *(
                    load(server.url, _create(server, t), requests=each, concurrency=2, expect=201)
                    for t in tokens
                )
            )
            server.extra_env["PIXWEB_DELIVER_WEBHOOKS"] = "1"
            await asyncio.to_thread(server.restart)
            ready = time.time()
            meter = CpuMeter(server)
            with ctx.profiler.phase("webhook deliveries (backlog)", server.worker_pids()):
                seen = await _until(trust, ports[0], healthy, each * len(healthy))
            share = meter.stop()
            drained = {p: len(seen[p]) for p in ports}
            # from the first delivery (the worker may start before /healthz answers)
            ready = min([ready, *(a for p in healthy for a, _, _ in seen[p])])
            rates = [
                drained[p] / max(max(a for a, _, _ in seen[p]) - ready, 1e-9)
                for p in healthy
                if seen[p]
            ]
            last = max((a for p in healthy for a, _, _ in seen[p]), default=ready)
            rate = sum(drained[p] for p in healthy) / max(last - ready, 1e-9)
            latencies, errors = await _live(ctx, server, tokens, trust, ports, failing, drained)
    finally:
        receivers.stop()
    p99 = percentile(latencies, 99)
    return [
        Row(
            f"7. merchant webhooks: {each * len(ports):,} events to {len(ports)} endpoints, "
            "one failing (500 after 1 s)",
            f"{rate:,.0f} deliveries/s to the healthy ones (backlog); commit → delivery p99 "
            f"{p99 * 1000:,.0f} ms (live, {LIVE_RATE:.0f} events/s)",
            target=f"≥ {TARGET_RATE:.0f}/s, p99 ≤ {TARGET_P99_S:.0f} s, the failing one not "
            "slowing the others",
            ok=rate >= TARGET_RATE and p99 <= TARGET_P99_S and not errors,
            notes=f"healthy endpoints drained at {min(rates, default=0):,.0f}–"
            f"{max(rates, default=0):,.0f}/s each; the failing one got {drained[failing]} "
            f"attempts during the drain; live: {len(latencies)} deliveries timed, p50 "
            f"{percentile(latencies, 50) * 1000:,.0f} ms, {len(errors)} create errors; drain "
            f"{share.describe()}; SQLite, one worker",
        )
    ]


async def _endpoints(server: Server, ports: list[int]) -> list[str]:
    """One merchant per port, its endpoint on it: their tokens."""
    tokens = []
    async with http_client(server.url, 1) as http:
        for port in ports:
            token, _ = await merchant(http)
            body = {"url": f"https://127.0.0.1:{port}/hook", "events": ["charge.created"]}
            answer = await http.post(
                "/webhook-endpoints", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"endpoint: {answer.status_code} {answer.text[:200]}")
            tokens.append(token)
    return tokens


async def _live(
    ctx: Context,
    server: Server,
    tokens: list[str],
    trust: ssl.SSLContext,
    ports: list[int],
    failing: int,
    drained: dict[int, int],
) -> tuple[list[float], list[str]]:
    """Charges at LIVE_RATE with the worker on: each healthy delivery's commit → arrival."""
    live = max(ctx.sizes.webhook_events // 10, 50)
    healthy = [p for p in ports if p != failing]
    bank = Bank(server.url)
    started = time.time()

    async def nothing() -> None:
        return None

    calls = [(_create(server, tokens[i % len(tokens)]), nothing) for i in range(live)]
    want = sum(drained[p] for p in healthy)
    want += sum(1 for i in range(live) if ports[i % len(ports)] != failing)
    try:
        with ctx.profiler.phase("webhook deliveries (live)", server.worker_pids()):
            _, errors = await steady(bank, LIVE_RATE, calls, expect=201)
            seen = await _until(trust, ports[0], healthy, want)
    finally:
        bank.close()
    return [a - c for p in healthy for a, c, _ in seen[p] if c >= started], errors
