"""Notifications: one per movement and merchant touched, pushed on its channel after commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client
from tortoise.transactions import in_transaction

from pixweb import money
from pixweb.models import Merchant, MovementKind, Notification
from pixweb.services import ledger
from pixweb.services.events import Outbox
from tests.api.test_accounts import OTHER, balance, move, moved, movements
from tests.api.test_payments import assert_error, assert_no_event, create
from tests.conftest import bearer, make_merchant
from tests.services.test_ledger import assert_ledger_invariants


@pytest.fixture
async def other(app: Any) -> Merchant:
    return await make_merchant(OTHER, name="Mercado Bom Preço", pix_key=OTHER)


@pytest.fixture
def other_auth(other: Merchant, config: Any) -> dict[str, str]:
    return bearer(other, config)


async def drain(events: Any) -> list[dict[str, Any]]:
    """Every event already published, then nothing more within 0.1 s."""
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(anext(events), 0.1))
        except TimeoutError:
            return received


def movement_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == "movement"]


async def history(client: Client, headers: dict[str, str], query: str = "") -> dict:
    response = await client.get(f"/notifications?{query}", headers=headers)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


# --- what a movement tells ----------------------------------------------------------------


async def test_a_bank_confirmation_tells_the_merchant(client, broker, merchant, auth, sign) -> None:
    payment = await create(client, auth, value="100.00")
    body, headers = sign({"bank_payment_id": payment["bank_payment_id"], "value": "100.00"})
    async with broker.subscribe(f"account:{merchant.id}") as events:
        response = await client.post("/payments/pix/confirmation", data=body, headers=headers)
        assert response.status_code == 200
        [event] = movement_events(await drain(events))
    [movement] = await movements(merchant)
    assert (event["merchant_id"], event["balance"]) == (merchant.id, "100.00")
    assert event["movement"] == ledger.movement_dict(movement)
    note = event["notification"]
    assert (note["tipo"], note["mensagem"]) == ("pix_recebido", "Você recebeu um Pix de R$ 100,00")
    assert note["dados"]["valor"] == "100.00" and note["lida"] is False
    assert datetime.fromisoformat(note["timestamp"]).tzinfo is not None
    page = await history(client, auth)
    assert page["unread"] == 1
    assert [item["id"] for item in page["items"]] == [note["id"]]
    assert page["items"][0]["mensagem"] == note["mensagem"]


PAID = "Pagamento Pix de R$ 10,00 para Mercado Bom Preço realizado"
TOLD = {  # operation of `merchant`: what it is told, what `other` is told
    "deposit": ([("deposito", "Depósito de R$ 1.234,56 realizado")], []),
    "withdrawal": ([("saque", "Saque de R$ 10,00 realizado")], []),
    "transfer": (
        [("transferencia_enviada", "Você transferiu R$ 10,00 para Mercado Bom Preço")],
        [("transferencia_recebida", "Você recebeu R$ 10,00 de Padaria São João")],
    ),
    "payment": ([("pagamento", PAID)], [("pix_recebido", "Você recebeu um Pix de R$ 10,00")]),
}


async def operate(client: Client, auth: dict, operation: str, code: str = "") -> Any:
    """Do one operation of TOLD as `merchant`; a payment pays `code`."""
    if operation == "deposit":
        return await move(client, auth, "deposits", value="1234.56")
    if operation == "withdrawal":
        return await move(client, auth, "withdrawals", value="10.00")
    if operation == "transfer":
        return await move(client, auth, "transfers", value="10.00")
    return await client.post("/accounts/me/payments", json={"brcode": code}, headers=auth)


@pytest.mark.parametrize("operation", list(TOLD))
async def test_every_movement_tells_each_merchant_it_touches(
    client, broker, merchant, auth, other, other_auth, operation
) -> None:
    await moved(client, auth, "deposits", value="50.00")
    code = (await create(client, other_auth, value="10.00"))["brcode"]
    seen = await Notification.all().count()
    async with (
        broker.subscribe(f"account:{merchant.id}") as mine,
        broker.subscribe(f"account:{other.id}") as theirs,
    ):
        response = await operate(client, auth, operation, code)
        assert response.status_code == 201
        received = [movement_events(await drain(mine)), movement_events(await drain(theirs))]
    stored = list(await Notification.all().order_by("id").offset(seen))
    for who, events, told in zip((merchant, other), received, TOLD[operation], strict=True):
        assert [(e["notification"]["tipo"], e["notification"]["mensagem"]) for e in events] == told
        notes = [ledger.notification_dict(n) for n in stored if n.merchant_id == who.id]
        assert [e["notification"] for e in events] == notes
        own = {m.id for m in await movements(who)}
        for event in events:
            assert event["merchant_id"] == who.id and event["movement"]["id"] in own
            assert event["balance"] == money.format_amount(await balance(who))


@pytest.mark.parametrize("operation", ["withdrawal", "transfer", "payment"])
async def test_a_refused_operation_tells_nobody(
    client, broker, merchant, auth, other, other_auth, operation
) -> None:
    code = (await create(client, other_auth, value="10.00"))["brcode"]
    async with (
        broker.subscribe(f"account:{merchant.id}") as mine,
        broker.subscribe(f"account:{other.id}") as theirs,
    ):
        response = await operate(client, auth, operation, code)
        await assert_error(response, 422, "insufficient_funds")
        await assert_no_event(mine)
        await assert_no_event(theirs)
    assert await Notification.all().count() == 0


async def test_nothing_is_published_before_the_commit(broker, merchant) -> None:
    account, outbox, now = await ledger.get_account(merchant.id), Outbox(), datetime.now(UTC)
    async with broker.subscribe(f"account:{merchant.id}") as events:
        async with in_transaction():
            credit = await ledger.apply_movement(
                account, MovementKind.DEPOSITO, 500, outbox=outbox, now=now
            )
            with pytest.raises(ledger.InsufficientFundsError):
                await ledger.apply_movement(
                    account, MovementKind.SAQUE, -501, outbox=outbox, now=now
                )
            await assert_no_event(events)
        await assert_no_event(events)
        await outbox.publish(broker)
        [event] = await drain(events)
    assert (event["movement"]["id"], event["balance"]) == (credit.id, "5.00")
    assert await Notification.filter(merchant_id=merchant.id).count() == 1


async def test_one_merchants_channel_never_hears_about_another(
    client, broker, merchant, auth, other, other_auth
) -> None:
    who = {merchant.id: auth, other.id: other_auth}
    for headers in who.values():
        await moved(client, headers, "deposits", value="10.00")
    async with (
        broker.subscribe(f"account:{merchant.id}") as mine,
        broker.subscribe(f"account:{other.id}") as theirs,
    ):
        calls = []
        for n in range(10):
            for headers in who.values():
                what = "deposits" if n % 2 == 0 else "withdrawals"
                calls.append(move(client, headers, what, value="1.00"))
        assert {r.status_code for r in await asyncio.gather(*calls)} == {201}
        received = {merchant.id: await drain(mine), other.id: await drain(theirs)}
    for merchant_id, events in received.items():
        owner = merchant if merchant_id == merchant.id else other
        own = {m.id for m in await movements(owner)}
        assert len(events) == 10 and len(own) == 11
        assert {e["merchant_id"] for e in events} == {merchant_id}
        assert {e["movement"]["id"] for e in events} < own
    await assert_ledger_invariants()


# --- history and read marks ---------------------------------------------------------------


async def test_history_is_newest_first_with_the_unread_count(
    client, auth, other_auth, other
) -> None:
    for n in range(1, 6):
        await moved(client, auth, "deposits", value=f"{n}.00")
    await moved(client, other_auth, "deposits", value="9.00")
    page = await history(client, auth)
    assert page["unread"] == 5 and page["next_before"] is None
    assert [item["dados"]["valor"] for item in page["items"]] == [
        f"{n}.00" for n in range(5, 0, -1)
    ]
    ids = [item["id"] for item in page["items"]]
    assert ids == sorted(ids, reverse=True)
    seen, query = [], "limit=2"
    while query:
        part = await history(client, auth, query)
        assert part["unread"] == 5
        seen += [item["id"] for item in part["items"]]
        query = f"limit=2&before={part['next_before']}" if part["next_before"] else ""
    assert seen == ids


async def test_marking_read_touches_only_the_callers(client, auth, other, other_auth) -> None:
    for headers in (auth, auth, auth, other_auth, other_auth):
        await moved(client, headers, "deposits", value="1.00")
    mine = [item["id"] for item in (await history(client, auth))["items"]]
    theirs = [item["id"] for item in (await history(client, other_auth))["items"]]
    response = await client.post(
        "/notifications/read", json={"ids": [mine[0], *theirs]}, headers=auth
    )
    assert response.status_code == 200
    assert await response.get_json() == {"marked": 1, "unread": 2}
    assert [item["lida"] for item in (await history(client, auth))["items"]] == [True, False, False]
    assert (await history(client, other_auth))["unread"] == 2
    for marked in (2, 0):
        response = await client.post("/notifications/read", json={"all": True}, headers=auth)
        assert await response.get_json() == {"marked": marked, "unread": 0}
    assert await Notification.filter(merchant_id=other.id, read_at__isnull=True).count() == 2


BAD_READS = [{}, {"all": False}, {"ids": [1], "all": True}, {"ids": None}, {"ids": [], "all": True}]


@pytest.mark.parametrize("body", [*BAD_READS, {"ids": ["x"]}, {"ids": [1], "x": 1}, {"all": 1}])
async def test_read_needs_either_ids_or_all(client, auth, body) -> None:
    await moved(client, auth, "deposits", value="1.00")
    response = await client.post("/notifications/read", json=body, headers=auth)
    assert response.status_code == 400
    assert (await history(client, auth))["unread"] == 1


@pytest.mark.parametrize("body", BAD_READS)
async def test_a_bad_read_request_says_what_is_wrong(client, auth, body) -> None:
    response = await client.post("/notifications/read", json=body, headers=auth)
    detail = (await assert_error(response, 400, "invalid_input"))["detail"]
    assert "ids" in detail and "all" in detail


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "before=0"])
async def test_bad_history_query_is_refused(client, auth, query) -> None:
    response = await client.get(f"/notifications?{query}", headers=auth)
    await assert_error(response, 400, "invalid_input", query.split("=")[0])


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/notifications"), ("POST", "/notifications/read")]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_notifications_need_a_token(client, merchant, method, path, headers) -> None:
    response = await client.open(path, method=method, json={"all": True}, headers=headers)
    await assert_error(response, 401, "unauthorized")
