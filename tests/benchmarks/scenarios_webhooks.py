"""Scenario 7, merchant webhooks: 10 merchants, each with one endpoint subscribed to
`charge.created`, on receivers.py's HTTPS ports; one endpoint fails (500 after 1 s).

- latency, first, on an empty queue: 1,000 charges at a steady 200/s with the delivery
  worker running: commit → delivery, from the event's `created_at` (stamped in the
  committing transaction) to its arrival at the receiver (the same machine's clock);
- throughput: 10,000 events (1,000 charges per merchant) made while the worker is off
  (PIXWEB_DELIVER_WEBHOOKS=0, a restart); the server restarts with it on and drains them
  for at most 90 s: deliveries per second to the healthy endpoints.
The failing endpoint "does not slow the others" when, with it failing, the healthy ones
meet both targets; the notes give each healthy endpoint's rate.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from dataclasses import dataclass
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
DRAIN_TIMEOUT = 90.0  # deliveries still due then are left; the rate is of those made
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


async def _until(
    ctx: Any, port: int, healthy: list[int], want: int, within: float
) -> dict[int, Any]:
    """Poll the receivers until the healthy ports hold `want` deliveries (or `within` s)."""
    deadline = time.monotonic() + within
    while True:
        seen = await _stats(ctx, port)
        if sum(len(seen[p]) for p in healthy) >= want or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.5)


async def deliveries(ctx: Context) -> list[Row]:
    folder = ctx.workdir / "receivers"
    trust = ssl.create_default_context(cadata=certificates(folder).cert_pem.bytes().decode())
    ports = [free_port() for _ in range(ctx.sizes.webhook_endpoints)]
    failing = ports[-1]
    command = [sys.executable, "-m", "tests.benchmarks.receivers", "--ports"]
    command += [",".join(map(str, ports)), "--failing", str(failing), "--certs", str(folder)]
    receivers = Helper(folder, command, ports[0])
    env = {"PIXWEB_DELIVER_WEBHOOKS": "1", "BENCH_EXTRA_CA": str(folder / "ca.pem")}
    receivers.start()
    try:
        with Server(ctx.workdir, "webhooks", env=env, module=TRUSTING) as server:
            tokens = await _endpoints(server, ports)
            latencies, errors = await _live(ctx, server, tokens, trust, ports, failing)
            drain = await _backlog(ctx, server, tokens, trust, ports, failing)
    finally:
        receivers.stop()
    p99 = percentile(latencies, 99)
    return [
        Row(
            f"7. merchant webhooks: {drain.events:,} events to {len(ports)} endpoints, "
            "one failing (500 after 1 s)",
            f"{drain.rate:,.0f} deliveries/s to the healthy ones (backlog); commit → delivery "
            f"p99 {p99 * 1000:,.0f} ms (live, {LIVE_RATE:.0f} events/s)",
            target=f"≥ {TARGET_RATE:.0f}/s, p99 ≤ {TARGET_P99_S:.0f} s, the failing one not "
            "slowing the others",
            ok=drain.rate >= TARGET_RATE and p99 <= TARGET_P99_S and not errors,
            notes=f"live first, on an empty queue: {len(latencies)} healthy deliveries timed, "
            f"p50 {percentile(latencies, 50) * 1000:,.0f} ms, {len(errors)} create errors; "
            f"then the backlog: {drain.notes}; SQLite, one worker",
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
) -> tuple[list[float], list[str]]:
    """Charges at LIVE_RATE with the worker on: each healthy delivery's commit → arrival."""
    live = max(ctx.sizes.webhook_events // 10, 50)
    healthy = [p for p in ports if p != failing]
    bank = Bank(server.url)
    started = time.time()

    async def nothing() -> None:
        return None

    calls = [(_create(server, tokens[i % len(tokens)]), nothing) for i in range(live)]
    want = sum(1 for i in range(live) if ports[i % len(ports)] != failing)
    try:
        with ctx.profiler.phase("webhook deliveries (live)", server.worker_pids()):
            _, errors = await steady(bank, LIVE_RATE, calls, expect=201)
            seen = await _until(trust, ports[0], healthy, want, DRAIN_TIMEOUT)
    finally:
        bank.close()
    return [a - c for p in healthy for a, c, _ in seen[p] if c >= started], errors


@dataclass
class Drain:
    events: int
    rate: float
    notes: str


async def _backlog(
    ctx: Context,
    server: Server,
    tokens: list[str],
    trust: ssl.SSLContext,
    ports: list[int],
    failing: int,
) -> Drain:
    """Events made with the worker off, drained after a restart with it on (bounded)."""
    healthy = [p for p in ports if p != failing]
    before = {p: len(v) for p, v in (await _stats(trust, ports[0])).items()}
    each = ctx.sizes.webhook_events // len(ports)
    server.extra_env["PIXWEB_DELIVER_WEBHOOKS"] = "0"
    await asyncio.to_thread(server.restart)
    create = [
        load(server.url, _create(server, t), requests=each, concurrency=2, expect=201)
        for t in tokens
    ]
    await asyncio.gather(*create)
    server.extra_env["PIXWEB_DELIVER_WEBHOOKS"] = "1"
    await asyncio.to_thread(server.restart)
    ready = time.time()
    meter = CpuMeter(server)
    with ctx.profiler.phase("webhook deliveries (backlog)", server.worker_pids()):
        want = sum(before[p] for p in healthy) + each * len(healthy)
        seen = await _until(trust, ports[0], healthy, want, DRAIN_TIMEOUT)
    share = meter.stop()
    new = {p: [a for a, _, _ in seen[p][before[p] :]] for p in ports}
    # from the first delivery (the worker may start before /healthz answers)
    ready = min([ready, *(a for p in healthy for a in new[p])])
    last = max((a for p in healthy for a in new[p]), default=ready)
    delivered = sum(len(new[p]) for p in healthy)
    rates = [len(new[p]) / max(max(new[p]) - ready, 1e-9) for p in healthy if new[p]]
    return Drain(
        each * len(ports),
        delivered / max(last - ready, 1e-9),
        f"{delivered:,} of {each * len(healthy):,} healthy deliveries within "
        f"{DRAIN_TIMEOUT:.0f} s, each healthy endpoint at {min(rates, default=0):,.0f}–"
        f"{max(rates, default=0):,.0f}/s, the failing one tried {len(new[failing])} times; "
        f"{share.describe()}",
    )
