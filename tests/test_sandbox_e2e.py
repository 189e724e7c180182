"""The development path end to end, over HTTP: a real `pixweb serve` in development connects
each merchant to its own sandbox PSP, so a charge is a cob there, "Simular pagamento" pays
it, the sandbox POSTs the standard webhook to the intake, the intake reads the Pix back with
GET /pix/{e2eid}, and the payer's socket sees the charge paid. The server calls itself over
loopback from inside its own requests: one hypercorn worker must not deadlock on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from tortoise import Tortoise

from pixweb import db
from tests.server import Server
from tests.services.test_ledger import assert_ledger_invariants
from tests.test_multiprocess import call, merchant, receive_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("sandbox-e2e")) as running:  # development, 1 worker
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def simulate(http: httpx.AsyncClient, server: Server, payment: Any, **body: Any) -> str:
    url = f"{server.url}/payments/pix/{payment['id']}/simulate"
    answer = await (http.post(url, json=body) if body else http.post(url))
    assert answer.status_code == 200, answer.text
    return answer.text


async def received(http: httpx.AsyncClient, server: Server, auth: dict[str, str]) -> list[Any]:
    items: list[Any] = (await call(http, server, "/pix/received", auth))["items"]
    return items


async def check_ledger(server: Server) -> None:
    """The money invariant, read from the server's own database."""
    await db.open_database(server.database_url)
    try:
        await assert_ledger_invariants()
    finally:
        await Tortoise.close_connections()


async def test_a_charge_walks_the_sandbox_psp_and_the_standard_webhook(
    server: Server, http: httpx.AsyncClient
) -> None:
    _, auth = await merchant(http, server)
    connection = await call(http, server, "/merchants/me/psp", auth)  # since sign-up
    assert connection["base_url"] == f"{server.url}/sandbox/psp"
    assert connection["webhook_url"].startswith(f"{server.url}/webhooks/pix/")
    payment = await call(http, server, "/payments/pix", auth, value="12.34")
    assert len(payment["bank_payment_id"]) == 35  # a cob's txid, not a static one
    assert "/sandbox/psp/qr/" in payment["brcode"]  # a dynamic code: its location
    page = await http.get(f"{server.url}/payments/pix/{payment['id']}")
    assert "Pagar duas vezes" in page.text  # the sandbox's test panel

    async with websockets.connect(f"{server.ws_url}/ws/payments/{payment['id']}") as socket:
        await receive_until(socket, lambda m: 'data-status="pending"' in m)
        answered = await simulate(http, server, payment)  # no body: pay exactly
        assert 'data-status="paid"' in answered
        await receive_until(socket, lambda m: 'data-status="paid"' in m)

    (pix,) = await received(http, server, auth)
    assert pix["outcome"] == "matched" and pix["source"] == "webhook"
    assert pix["payment_id"] == payment["id"] and pix["value"] == "12.34"
    account = await call(http, server, "/accounts/me", auth)
    assert account["balance"] == "12.34"
    await check_ledger(server)


async def test_paying_twice_records_a_paid_charge_and_a_duplicate(
    server: Server, http: httpx.AsyncClient
) -> None:
    _, auth = await merchant(http, server)
    payment = await call(http, server, "/payments/pix", auth, value="5.00")
    answered = await simulate(http, server, payment, scenario="twice")
    assert 'data-status="paid"' in answered

    outcomes = sorted(p["outcome"] for p in await received(http, server, auth))
    assert outcomes == ["duplicate", "matched"]
    account = await call(http, server, "/accounts/me", auth)
    assert account["balance"] == "10.00"  # both Pix are money in, each credited once
    await check_ledger(server)


async def test_a_webhook_delivered_twice_is_recorded_once(
    server: Server, http: httpx.AsyncClient
) -> None:
    _, auth = await merchant(http, server)
    payment = await call(http, server, "/payments/pix", auth, value="3.00")
    await simulate(http, server, payment, scenario="webhook_twice")
    (pix,) = await received(http, server, auth)
    assert pix["outcome"] == "matched"
    assert (await call(http, server, "/accounts/me", auth))["balance"] == "3.00"


async def test_a_late_payment_is_recorded_late(server: Server, http: httpx.AsyncClient) -> None:
    _, auth = await merchant(http, server)
    payment = await call(http, server, "/payments/pix", auth, value="4.00")
    url = f"{server.url}/payments/pix/{payment['id']}/simulate"
    answer = await http.post(url, data={"scenario": "late"})  # the panel's form
    assert answer.status_code == 200 and 'data-status="expired"' in answer.text
    (pix,) = await received(http, server, auth)
    assert pix["outcome"] == "late"
    await check_ledger(server)


async def test_cancel_removes_the_cob_at_the_sandbox(
    server: Server, http: httpx.AsyncClient
) -> None:
    _, auth = await merchant(http, server)
    payment = await call(http, server, "/payments/pix", auth, value="6.00")
    cancelled = await http.post(f"{server.url}/payments/{payment['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    psp = await http.post(
        f"{server.url}/payments/pix/{payment['id']}/simulate", json={"scenario": "exact"}
    )
    assert psp.status_code == 409  # nothing to pay
