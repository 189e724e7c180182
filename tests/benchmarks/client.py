"""The load generator's side: HTTP calls and load loops (httpx), many WebSockets (websockets).

Every call has a timeout; load loops are bounded by a request count.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from pixweb.services import webhooks
from tests.benchmarks.servers import WEBHOOK_SECRET

HTTP_TIMEOUT = 30.0
WS_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0
PASSWORD = "uma senha longa de benchmark"


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of `samples` (pct in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000


def http_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=HTTP_TIMEOUT)


async def merchant_token(client: httpx.AsyncClient) -> str:
    """Register a fresh merchant and log it in: its bearer token."""
    return (await merchant(client))[0]


async def merchant(client: httpx.AsyncClient) -> tuple[str, str]:
    """Register a fresh merchant and log it in: its bearer token and Pix key (its e-mail)."""
    email = f"bench-{uuid.uuid4().hex[:10]}@loja.example"
    merchant = {
        "name": "Loja Benchmark",
        "email": email,
        "password": PASSWORD,
        "city": "São Paulo",
        "pix_key": email,
    }
    answer = await client.post("/auth/register", json=merchant)
    answer.raise_for_status()
    answer = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return str(answer.json()["access_token"]), email


PAYMENT_BODY = {"value": "25.90", "description": "Pedido benchmark"}


async def create_payment(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    answer = await client.post(
        "/payments/pix", json=PAYMENT_BODY, headers={"Authorization": f"Bearer {token}"}
    )
    if answer.status_code != 201:
        raise RuntimeError(f"create payment: {answer.status_code} {answer.text[:200]}")
    return dict(answer.json())


async def create_payments(client: httpx.AsyncClient, token: str, n: int) -> list[dict[str, Any]]:
    return [await create_payment(client, token) for _ in range(n)]


def confirmation(payment: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The bank's signed confirmation of `payment`: raw body and headers."""
    body = json.dumps(
        {"bank_payment_id": payment["bank_payment_id"], "value": payment["value"]}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        webhooks.SIGNATURE_HEADER: webhooks.sign(body, WEBHOOK_SECRET),
    }
    return body, headers


# -- WebSockets -------------------------------------------------------------------------------


async def open_socket(url: str, compression: str | None = "deflate") -> ClientConnection:
    """Connect, read the status fragment sent on connect, and keep the socket open.

    `compression="deflate"` offers permessage-deflate, as browsers do.
    """
    ws = await connect(
        url,
        compression=compression,
        open_timeout=WS_TIMEOUT,
        close_timeout=CLOSE_TIMEOUT,
        ping_interval=None,  # no keepalive traffic while measuring
        max_queue=16,
    )
    try:
        first = await asyncio.wait_for(ws.recv(), WS_TIMEOUT)
        if 'data-status="pending"' not in first:
            raise RuntimeError(f"unexpected first message: {str(first)[:120]}")
    except BaseException:
        ws.transport.abort()
        raise
    return ws


async def open_sockets(
    urls: Sequence[str], concurrency: int = 200, compression: str | None = "deflate"
) -> list[ClientConnection]:
    """Open one socket per URL (in order), at most `concurrency` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> ClientConnection:
        async with gate:
            return await open_socket(url, compression)

    results = await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
    sockets = [r for r in results if isinstance(r, ClientConnection)]
    failures = [r for r in results if not isinstance(r, ClientConnection)]
    if failures:
        close_now(sockets)
        raise RuntimeError(f"{len(failures)} of {len(urls)} sockets failed: {failures[0]!r}")
    return sockets


async def wait_for_paid(ws: ClientConnection, within: float = WS_TIMEOUT) -> None:
    """Read until the `paid` fragment arrives (TimeoutError after `within` seconds)."""
    async with asyncio.timeout(within):
        while 'data-status="paid"' not in await ws.recv():
            pass


def close_now(sockets: Sequence[ClientConnection]) -> None:
    """Drop the sockets at once (no closing handshake: thousands would take seconds)."""
    for ws in sockets:
        ws.transport.abort()


def payment_socket_url(ws_base: str, payment: dict[str, Any]) -> str:
    return f"{ws_base}/ws/payments/{payment['id']}"
