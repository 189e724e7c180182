"""What several scenarios do with charges: create them, confirm them (seed route, webhook
intake) and time each confirmation to its paid fragment."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.benchmarks.client import confirmation, create_payment, percentile, wait_for_paid
from tests.benchmarks.crowd import CrowdSocket, paid_arrivals
from tests.benchmarks.loadgen import connect, raw_request
from tests.benchmarks.servers import Server

CROWD_TIMEOUT = 120.0


async def payments_of(http: Any, token: str, n: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(8)

    async def one() -> dict[str, Any]:
        async with gate:
            return await create_payment(http, token)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def confirm_each(url: str, watched: list[tuple[bytes, ClientConnection]]) -> list[float]:
    """Send each request in turn; seconds from just before sending to its paid fragment."""
    latencies = []
    bank = await connect(url)
    try:
        for request, ws in watched:
            if bank.closing:
                bank.transport.close()
                bank = await connect(url)
            started = time.perf_counter()
            post = asyncio.create_task(bank.call(request))
            await wait_for_paid(ws)
            latencies.append(time.perf_counter() - started)
            status, body = await post
            if status != 200:
                raise RuntimeError(f"confirmation answered {status}: {body[:200]!r}")
    finally:
        bank.transport.close()
    return latencies


def seed_request(server: Server, payment: dict[str, Any]) -> bytes:
    body, headers = confirmation(payment)
    return raw_request(server.url, "POST", "/payments/pix/confirmation", body, headers)


def intake_request(server: Server, hook_path: str, item: dict[str, Any]) -> bytes:
    """The PSP's standard webhook delivery of one Pix (pixweb reads it back)."""
    body = json.dumps({"pix": [item]}).encode()
    headers = {"Content-Type": "application/json"}
    return raw_request(server.url, "POST", f"{hook_path}/pix", body, headers)


def ms(latencies: list[float], pct: float) -> float:
    return percentile(latencies, pct) * 1000


async def crowd_arrivals(
    url: str, request: bytes, crowd: list[CrowdSocket]
) -> tuple[list[float], int, int]:
    """Send `request`: seconds from sending it to each socket's paid fragment, the sockets
    without it, the answer's status."""
    bank = await connect(url)
    try:
        started = time.perf_counter()
        status, _ = await bank.call(request)
        arrivals = await paid_arrivals(crowd, started, CROWD_TIMEOUT)
    finally:
        bank.transport.close()
    return arrivals, len(crowd) - len(arrivals), status
