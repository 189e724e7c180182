"""Merchant-webhook events written by the state changes they report: once each, in the
change's transaction (none for a replay or a change that rolled back), with the data the
API shows for the same object, and only for the endpoints that asked for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from tortoise.connection import get_connection

from pixweb import presenters
from pixweb.broker import Broker
from pixweb.config import Config
from pixweb.models import (
    Merchant,
    Payment,
    PaymentStatus,
    PixSource,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from pixweb.services import expiry, ledger, payments, received, settlement
from pixweb.services.clock import utcnow
from pixweb.services.outbox import EVENT_TYPES
from tests.api.test_accounts import move, moved
from tests.api.test_payments import create
from tests.api.test_psp_connection import PUBLIC
from tests.conftest import bearer, make_merchant
from tests.services.test_ledger import assert_ledger_invariants
from tests.support import sqlite_hand_offs

KEY = {"Idempotency-Key": "pedido-42"}


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


@pytest.fixture(autouse=True)
async def _money_invariant(app: Any) -> AsyncIterator[None]:
    yield
    await assert_ledger_invariants()


async def endpoint(
    merchant: Merchant, events: Iterable[str] = EVENT_TYPES, **fields: Any
) -> WebhookEndpoint:
    """An endpoint row written directly (the endpoints API is not what is tested here)."""
    now = utcnow()
    return await WebhookEndpoint.create(
        merchant_id=merchant.id,
        url="https://loja.example/webhooks",
        events=list(events),
        secret="whsec_not-a-real-secret",
        created_at=now,
        updated_at=now,
        **fields,
    )


async def events(type_: str | None = None, merchant: Merchant | None = None) -> list[WebhookEvent]:
    query = WebhookEvent.all()
    if type_ is not None:
        query = query.filter(type=type_)
    if merchant is not None:
        query = query.filter(merchant_id=merchant.id)
    return await query.order_by("created_at")


async def one(type_: str, merchant: Merchant | None = None) -> WebhookEvent:
    found = await events(type_, merchant)
    assert len(found) == 1, [e.type for e in await events()]
    return found[0]


async def body(app: Quart, event: WebhookEvent) -> dict[str, Any]:
    """What the delivery worker sends: built in an app context, outside any request."""
    async with app.app_context():
        return presenters.webhook_body(event)


async def get_json(client: Client, path: str, headers: dict[str, str]) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def pix(broker: Broker, txid: str | None, cents: int, n: int = 1, **kw: Any) -> Any:
    return await received.record_received_pix(
        received.incoming(
            end_to_end_id=f"E12345678202601021000{n:011d}",
            amount_cents=cents,
            txid=txid,
            paid_at=utcnow(),
            source=PixSource.WEBHOOK,
            **kw,
        ),
        broker=broker,
    )


# --- charges -------------------------------------------------------------------------------


async def test_charge_created_once_shaped_as_the_api_shows_the_charge(
    app: Quart, client: Client, auth: dict[str, str], merchant: Merchant
) -> None:
    hook = await endpoint(merchant)
    first = await create(client, auth, value="12.34", description="Pão", **{})
    replay = await client.post("/payments/pix", json={"value": "10.00"}, headers={**auth, **KEY})
    again = await client.post("/payments/pix", json={"value": "10.00"}, headers={**auth, **KEY})
    assert (replay.status_code, again.status_code) == (201, 200)

    created = await events("charge.created")
    assert len(created) == 2  # the replay wrote none
    event = next(e for e in created if e.data["id"] == first["id"])
    sent = await body(app, event)
    assert sent == {
        "id": event.id,
        "type": "charge.created",
        "created_at": sent["created_at"],
        "data": await get_json(client, f"/payments/{first['id']}", auth),
    }
    assert sent["data"]["payment_url"].startswith(PUBLIC)
    assert sent["created_at"].endswith("Z")
    deliveries = await WebhookDelivery.filter(event_id=event.id)
    assert [(d.endpoint_id, d.status, d.attempts) for d in deliveries] == [(hook.id, "pending", 0)]


async def test_only_enabled_endpoints_that_asked_for_the_type_get_a_delivery(
    client: Client, auth: dict[str, str], merchant: Merchant
) -> None:
    await endpoint(merchant, ["charge.paid"])
    wanted = await endpoint(merchant, ["charge.created", "charge.paid"])
    await endpoint(merchant, EVENT_TYPES, enabled=False)
    await endpoint(merchant, EVENT_TYPES, deleted_at=utcnow())
    other = await make_merchant("outra@example.com", pix_key="outra@example.com")
    await endpoint(other)

    await create(client, auth)
    event = await one("charge.created")
    assert event.merchant_id == merchant.id
    deliveries = await WebhookDelivery.all()
    assert [(d.event_id, d.endpoint_id) for d in deliveries] == [(event.id, wanted.id)]


async def test_no_endpoint_no_rows(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    charge = await create(client, auth)
    await pix(broker, charge["bank_payment_id"], 10000)
    other = await create(client, auth)
    assert (await client.post(f"/payments/{other['id']}/cancel", headers=auth)).status_code == 200
    await endpoint(merchant, ["charge.expired"])  # asked for none of those
    await create(client, auth)
    assert await WebhookEvent.all().count() == 0
    assert await WebhookDelivery.all().count() == 0


async def test_cancel_records_charge_cancelled_once_and_when(
    app: Quart, client: Client, auth: dict[str, str], merchant: Merchant
) -> None:
    charge = await create(client, auth)
    await endpoint(merchant)
    path = f"/payments/{charge['id']}/cancel"
    assert (await client.post(path, headers=auth)).status_code == 200
    assert (await client.post(path, headers=auth)).status_code == 409
    event = await one("charge.cancelled")
    payment = await Payment.get(id=charge["id"])
    assert payment.cancelled_at is not None and payment.status == PaymentStatus.CANCELLED
    shown = await get_json(client, f"/payments/{charge['id']}", auth)
    assert (await body(app, event))["data"] == shown
    assert shown["status"] == "cancelled"


async def test_a_pix_paying_its_charge_records_charge_paid_and_pix_received_once(
    app: Quart, client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    await endpoint(merchant)
    charge = await create(client, auth, value="30.00")
    for _ in range(2):  # the second is a repeat: known, nothing changes
        await pix(broker, charge["bank_payment_id"], 3000, payer_name="Maria")
    paid, got = await one("charge.paid"), await one("pix.received")
    assert (await body(app, paid))["data"] == await get_json(
        client, f"/payments/{charge['id']}", auth
    )
    listed = await get_json(client, "/pix/received", auth)
    assert (await body(app, got))["data"] == listed["items"][0]
    assert got.data["outcome"] == "matched" and paid.data["status"] == "paid"


async def test_every_received_pix_is_reported_matched_or_not(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    await endpoint(merchant)
    charge = await create(client, auth, value="30.00")
    await pix(broker, None, 500, 1, merchant_id=merchant.id)  # to the key, no charge
    await pix(broker, charge["bank_payment_id"], 999, 2)  # another amount
    outcomes = sorted(e.data["outcome"] for e in await events("pix.received"))
    assert outcomes == ["amount_mismatch", "no_txid"]
    assert await events("charge.paid") == []


async def test_attaching_a_waiting_pix_records_charge_paid(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    await endpoint(merchant, ["charge.paid"])
    charge = await create(client, auth, value="30.00")
    record, _ = await pix(broker, None, 3000, merchant_id=merchant.id)
    for _ in range(2):
        await received.attach(
            merchant.id,
            record.end_to_end_id,
            UUID(charge["id"]),
            idempotency_key="a",
            broker=broker,
        )
    assert (await one("charge.paid")).data["id"] == charge["id"]


async def test_a_charge_paid_from_a_balance_records_charge_paid_unless_it_rolls_back(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker, config: Config
) -> None:
    await endpoint(merchant)
    payer = await make_merchant("cliente@example.com", pix_key="cliente@example.com")
    await endpoint(payer)
    charge = await create(client, auth, value="100.00")
    with pytest.raises(ledger.InsufficientFundsError):
        # The charge is marked paid, then the payer's debit fails: all of it rolls back.
        await settlement.pay_brcode(payer, charge["brcode"], broker=broker)
    assert await events("charge.paid") == []
    assert (await Payment.get(id=charge["id"])).status == PaymentStatus.PENDING

    await moved(client, bearer(payer, config), "deposits", value="150.00")
    for _ in range(2):
        await settlement.pay_brcode(payer, charge["brcode"], broker=broker, idempotency_key="k")
    assert (await one("charge.paid", merchant)).data["id"] == charge["id"]
    assert await events("charge.paid", payer) == []


# --- transfers -----------------------------------------------------------------------------


async def test_a_transfer_is_reported_to_the_merchant_it_credits_once(
    app: Quart, client: Client, auth: dict[str, str], merchant: Merchant, config: Config
) -> None:
    other = await make_merchant("outra@example.com", pix_key="outra@example.com")
    await endpoint(merchant)
    await endpoint(other)
    refused = await move(client, auth, "transfers", value="10.00")  # no balance: rolls back
    assert refused.status_code == 422
    assert await events() == []

    await moved(client, auth, "deposits", value="50.00")
    for _ in range(2):
        response = await client.post(
            "/accounts/me/transfers",
            json={"value": "20.00", "to_email": "outra@example.com", "description": "Aluguel"},
            headers={**auth, **KEY},
        )
        assert response.status_code in (200, 201)
    event = await one("transfer.received")
    assert event.merchant_id == other.id
    history = await get_json(client, "/accounts/me/movements", bearer(other, config))
    assert (await body(app, event))["data"] == history["items"][0]
    assert event.data["amount"] == "20.00" and event.data["kind"] == "transferencia_recebida"


# --- expiry --------------------------------------------------------------------------------


async def expired_charges(client: Client, auth: dict[str, str], count: int) -> list[str]:
    ids = [(await create(client, auth))["id"] for _ in range(count)]
    past = utcnow() - timedelta(seconds=1)
    await Payment.filter(id__in=ids).update(expires_at=past)
    return ids


async def test_the_sweeper_records_each_expiry_once(
    app: Quart, client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    [gone] = await expired_charges(client, auth, 1)
    await endpoint(merchant, ["charge.expired"])
    live = await create(client, auth)
    paid = await create(client, auth, value="10.00")
    await pix(broker, paid["bank_payment_id"], 1000)
    await Payment.filter(id=paid["id"]).update(expires_at=utcnow() - timedelta(seconds=1))

    assert await expiry.sweep(broker=broker) == 1
    assert await expiry.sweep(broker=broker) == 0
    event = await one("charge.expired")
    shown = await get_json(client, f"/payments/{gone}", auth)
    assert (await body(app, event))["data"] == shown and shown["status"] == "expired"
    assert (await Payment.get(id=gone)).expiry_recorded_at is not None
    assert (await Payment.get(id=live["id"])).expiry_recorded_at is None


async def test_concurrent_sweeps_record_each_expiry_once(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    await endpoint(merchant, ["charge.expired"])
    ids = await expired_charges(client, auth, 24)
    counts = await asyncio.gather(*(expiry.sweep(broker=broker, batch=5) for _ in range(4)))
    assert sum(counts) == 24
    reported = [e.data["id"] for e in await events("charge.expired")]
    assert sorted(reported) == sorted(ids)
    assert await Payment.filter(expiry_recorded_at__isnull=True).count() == 0


async def test_a_cancelled_charge_never_expires(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> None:
    await endpoint(merchant)
    charge = await create(client, auth)
    assert (await client.post(f"/payments/{charge['id']}/cancel", headers=auth)).status_code == 200
    await Payment.filter(id=charge["id"]).update(expires_at=utcnow() - timedelta(seconds=1))
    assert await expiry.sweep(broker=broker) == 0
    assert [e.type for e in await events()] == ["charge.created", "charge.cancelled"]
    assert payments.payment_data(await Payment.get(id=charge["id"]))["status"] == "cancelled"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's own trace
async def test_a_charge_and_its_event_are_one_transaction_and_one_hand_off(
    monkeypatch: pytest.MonkeyPatch, client: Client, auth: dict[str, str], merchant: Merchant
) -> None:
    """The charge's row, the endpoints' read and charge.created with its delivery commit
    together, in one call to the thread aiosqlite runs SQLite on (issue 13: each call
    costs ~0.1 ms of CPU; Tortoise took five)."""
    await create(client, auth)  # the token's merchant is read once, then kept
    hook = await endpoint(merchant, ["charge.created"])
    sqlite = get_connection("default")._connection  # its aiosqlite connection
    statements: list[str] = []
    calls = sqlite_hand_offs(monkeypatch)
    await sqlite.set_trace_callback(statements.append)
    try:
        calls.clear()
        made = await create(client, auth, value="7.00")
        handed = len(calls)
    finally:
        await sqlite.set_trace_callback(None)
    words = [" ".join(s.replace('"', "").split()[:3]) for s in statements]
    assert words == [
        "SELECT id, base_url,",  # the merchant's PSP connection (none here)
        "BEGIN",
        "INSERT INTO payment",
        "SELECT id, url,",  # its webhook endpoints
        "INSERT INTO webhook_event",
        "INSERT INTO webhook_delivery",
        "COMMIT",
    ], words
    assert handed == 2  # that read, then the charge's plan
    event = await one("charge.created")
    assert event.data["id"] == made["id"]
    assert [d.endpoint_id for d in await WebhookDelivery.filter(event_id=event.id)] == [hook.id]
