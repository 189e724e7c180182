"""GET /pix/received ("Pix a conciliar") and attaching a received Pix to a charge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pixweb.models import Movement, MovementKind, Payment, PaymentStatus, PixSource, ReceivedPix
from pixweb.services import received
from tests.api.test_accounts import balance
from tests.api.test_payments import PAST, UNKNOWN, assert_error, assert_no_event, create
from tests.conftest import bearer, make_merchant
from tests.services.test_ledger import assert_ledger_invariants

CONFIRM = "/payments/pix/confirmation"
E2E = "E12345678202405011200abcdeABCDE1"
E2E_OTHER = "E87654321202405011200ZYXWVzyxwv9"
FIELDS = [
    "end_to_end_id",
    "txid",
    "value",
    "paid_at",
    "payer_name",
    "payer_document",
    "source",
    "outcome",
    "original_outcome",
    "payment_id",
    "created_at",
]


def e2e(n: int) -> str:
    return f"E12345678202405011200{n:011d}"


async def bank_pix(client: Any, sign: Any, payment: dict[str, Any], **fields: Any) -> Any:
    """The seed's bank confirmation of a Pix for `payment`, with an end_to_end_id."""
    payload = {
        "bank_payment_id": payment["bank_payment_id"],
        "value": payment["value"],
        "end_to_end_id": E2E,
        **fields,
    }
    body, headers = sign(payload)
    return await client.post(CONFIRM, data=body, headers=headers)


async def late_pix(client: Any, sign: Any, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """A charge that expired before its Pix arrived: the 409's received_pix."""
    payment = await create(client, auth, value="30.00", description="Pedido 1042")
    await Payment.filter(id=payment["id"]).update(expires_at=PAST)
    response = await bank_pix(client, sign, payment, **fields)
    body = await assert_error(response, 409, "conflict")
    assert "recorded as a received Pix to reconcile (late)" in body["detail"]
    assert set(body) == {"error", "detail", "received_pix"}, body
    return dict(body["received_pix"])


async def listed(client: Any, auth: dict[str, str], **query: Any) -> dict[str, Any]:
    response = await client.get("/pix/received", headers=auth, query_string=query)
    assert response.status_code == 200, await response.get_json()
    return dict(await response.get_json())


async def attach(
    client: Any, auth: dict[str, str], key: str, payment_id: str, **headers: str
) -> Any:
    body = {"payment_id": payment_id}
    url = f"/pix/received/{key}/attach"
    return await client.post(url, json=body, headers={**auth, **headers})


# --- the list -----------------------------------------------------------------------------


async def test_the_list_needs_a_token(client) -> None:
    await assert_error(await client.get("/pix/received"), 401, "unauthorized")


async def test_a_late_pix_is_listed_with_its_outcome(client, sign, merchant, auth) -> None:
    before = datetime.now(UTC)
    pix = await late_pix(client, sign, auth)
    page = await listed(client, auth)
    assert page["items"] == [pix] and page["next_cursor"] is None
    assert sorted(pix) == sorted(FIELDS)
    assert (pix["end_to_end_id"], pix["value"], pix["outcome"]) == (E2E, "30.00", "late")
    assert (pix["source"], pix["original_outcome"], pix["payer_document"]) == (
        "confirmation",
        None,
        None,
    )
    assert before <= datetime.fromisoformat(pix["paid_at"]) <= datetime.now(UTC)
    assert await balance(merchant) == 3000  # the money is in the merchant's account
    await assert_ledger_invariants()


async def test_the_list_filters_pages_and_shows_only_ones_own(
    client, broker, merchant, auth, config
) -> None:
    other = await make_merchant("outra@example.com", name="Outra Loja", pix_key="o@example.com")
    for n in range(5):
        await received.record_received_pix(
            received.incoming(
                merchant_id=merchant.id,
                end_to_end_id=e2e(n),
                amount_cents=1000 + n,
                txid=None,
                paid_at=datetime(2024, 5, 1, 12, n, tzinfo=UTC),
                payer_name="Fulano de Tal",
                payer_document="123.456.789-09",
                source=PixSource.WEBHOOK,
            ),
            broker=broker,
        )
    await received.record_received_pix(
        received.incoming(
            merchant_id=other.id,
            end_to_end_id=e2e(9),
            amount_cents=500,
            txid=None,
            paid_at=datetime(2024, 5, 1, tzinfo=UTC),
            source=PixSource.RECONCILIATION,
        ),
        broker=broker,
    )
    keys, cursor = [], None
    while True:
        page = await listed(client, auth, limit=2, **({"cursor": cursor} if cursor else {}))
        keys += [item["end_to_end_id"] for item in page["items"]]
        assert all(item["payer_document"] == "***.456.789-**" for item in page["items"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert keys == [e2e(n) for n in reversed(range(5))]
    assert len((await listed(client, auth, outcome="no_txid"))["items"]) == 5
    assert (await listed(client, auth, outcome="late"))["items"] == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert (await listed(client, auth, since=later))["items"] == []
    theirs = await listed(client, bearer(other, config))
    assert [item["end_to_end_id"] for item in theirs["items"]] == [e2e(9)]


@pytest.mark.parametrize(
    "query",
    [
        {"outcome": "lost"},
        {"since": "yesterday"},
        {"since": "2024-05-01T12:00:00"},  # no time zone
        {"limit": "0"},
        {"limit": "101"},
        {"cursor": "not-a-cursor"},
    ],
)
async def test_a_bad_query_is_a_400(client, auth, query) -> None:
    response = await client.get("/pix/received", headers=auth, query_string=query)
    await assert_error(response, 400, "invalid_input")


# --- attach -------------------------------------------------------------------------------


async def test_attaching_pays_the_charge_once_without_a_second_credit(
    client, sign, broker, merchant, auth
) -> None:
    pix = await late_pix(client, sign, auth)
    target = await create(client, auth, value="40.00", description="Pedido 1043")
    before = await Movement.all().count()
    async with (
        broker.subscribe(f"payment:{target['id']}") as events,
        broker.subscribe(f"payment:{pix['payment_id']}") as late_events,
    ):
        response = await attach(client, auth, E2E, target["id"])
        assert response.status_code == 200, await response.get_json()
        body = await response.get_json()
        event = await asyncio.wait_for(anext(events), 1)
        assert (event["type"], event["status"]) == ("payment.paid", "paid")
        # A repeat (a double click) answers the same and changes nothing.
        again = await attach(client, auth, E2E, target["id"])
        assert (again.status_code, await again.get_json()) == (200, body)
        await assert_no_event(events)
        await assert_no_event(late_events)
    assert (body["outcome"], body["original_outcome"]) == ("matched", "late")
    assert body["payment_id"] == target["id"] and body["value"] == "30.00"
    fetched = await (await client.get(f"/payments/{target['id']}", headers=auth)).get_json()
    assert fetched["status"] == "paid"
    late = await Payment.get(id=pix["payment_id"])
    assert late.status == PaymentStatus.PENDING  # the expired charge stays as it was
    assert await Movement.all().count() == before  # no second credit
    assert await balance(merchant) == 3000
    assert await Movement.filter(kind=MovementKind.PIX_RECEBIDO).count() == 1
    page = await listed(client, auth, outcome="matched")
    assert [item["end_to_end_id"] for item in page["items"]] == [E2E]
    await assert_ledger_invariants()


async def test_an_expired_charge_can_take_its_late_pix(client, sign, merchant, auth) -> None:
    pix = await late_pix(client, sign, auth)
    response = await attach(client, auth, E2E, pix["payment_id"])
    assert response.status_code == 200
    stored = await Payment.get(id=pix["payment_id"])
    assert (stored.status, stored.end_to_end_id) == (PaymentStatus.PAID, E2E)
    # The bank repeating its confirmation now finds the charge paid by that Pix.
    replay = await bank_pix(client, sign, {"bank_payment_id": stored.txid, "value": "30.00"})
    assert replay.status_code == 200
    assert (await replay.get_json())["confirmation"] == "replayed"
    assert await balance(merchant) == 3000
    await assert_ledger_invariants()


async def test_attaching_is_refused_for_what_is_not_pending_or_not_ones_own(
    client, sign, broker, merchant, auth, config
) -> None:
    await late_pix(client, sign, auth)
    other = await make_merchant("outra@example.com", name="Outra Loja", pix_key="o@example.com")
    theirs = await create(client, bearer(other, config), value="30.00")
    paid = await create(client, auth, value="30.00")
    assert (await bank_pix(client, sign, paid, end_to_end_id=E2E_OTHER)).status_code == 200
    cancelled = await create(client, auth, value="30.00")
    await client.post(f"/payments/{cancelled['id']}/cancel", headers=auth)
    pending = await create(client, auth, value="30.00")
    cases = [
        (E2E, theirs["id"], 404, "not_found"),  # another merchant's charge
        (E2E, UNKNOWN, 404, "not_found"),
        ("E" + "0" * 31, pending["id"], 404, "not_found"),  # no such Pix
        (E2E, paid["id"], 409, "conflict"),
        (E2E, cancelled["id"], 409, "conflict"),
        (E2E_OTHER, pending["id"], 409, "conflict"),  # that Pix already paid a charge
    ]
    for key, payment_id, status, code in cases:
        await assert_error(await attach(client, auth, key, payment_id), status, code)
    # Another merchant cannot see, let alone attach, this merchant's Pix.
    response = await attach(client, bearer(other, config), E2E, theirs["id"])
    await assert_error(response, 404, "not_found")
    for payment in (theirs, pending):
        assert (await Payment.get(id=payment["id"])).status == PaymentStatus.PENDING
    record = await ReceivedPix.get(end_to_end_id=E2E)
    assert (record.outcome, record.original_outcome) == ("late", None)
    await assert_ledger_invariants()


@pytest.mark.parametrize(
    "body", [{}, {"payment_id": "nope"}, {"payment_id": 7}, {"payment_id": UNKNOWN, "x": 1}]
)
async def test_a_bad_attach_body_is_a_400(client, auth, body) -> None:
    response = await client.post(f"/pix/received/{E2E}/attach", json=body, headers=auth)
    await assert_error(response, 400, "invalid_input")


async def test_an_idempotency_key_names_one_attachment(client, sign, merchant, auth) -> None:
    await late_pix(client, sign, auth)
    first, second = [await create(client, auth, value="30.00") for _ in range(2)]
    key = {"Idempotency-Key": "attach-1"}
    assert (await attach(client, auth, E2E, first["id"], **key)).status_code == 200
    assert (await attach(client, auth, E2E, first["id"], **key)).status_code == 200
    response = await attach(client, auth, E2E, second["id"], **key)
    await assert_error(response, 409, "conflict")
    assert (await Payment.get(id=second["id"])).status == PaymentStatus.PENDING


async def test_concurrent_attachments_pay_one_charge_once(
    client, sign, broker, merchant, auth
) -> None:
    await late_pix(client, sign, auth)
    targets = [await create(client, auth, value="30.00") for _ in range(3)]
    calls = [attach(client, auth, E2E, target["id"]) for target in targets * 10]
    responses = await asyncio.wait_for(asyncio.gather(*calls), 60)
    winners = {(await r.get_json())["payment_id"] for r in responses if r.status_code == 200}
    assert len(winners) == 1
    assert {r.status_code for r in responses} <= {200, 409}
    statuses = [(await Payment.get(id=t["id"])).status for t in targets]
    assert sorted(statuses) == ["paid", "pending", "pending"]
    assert await balance(merchant) == 3000
    await assert_ledger_invariants()


# --- the document -------------------------------------------------------------------------


async def test_the_routes_and_the_confirmations_409_are_documented(client) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    listing = document["paths"]["/pix/received"]["get"]
    assert {"200", "400", "401"} <= set(listing["responses"])
    attaching = document["paths"]["/pix/received/{end_to_end_id}/attach"]["post"]
    assert {"200", "400", "401", "404", "409"} <= set(attaching["responses"])
    confirmation = document["paths"]["/payments/pix/confirmation"]["post"]["responses"]
    for status in ("409", "422"):
        schema = confirmation[status]["content"]["application/json"]["schema"]
        assert {"error", "detail", "received_pix"} <= set(schema["properties"])


async def test_one_idempotency_key_sent_at_once_for_two_pix_attaches_one(
    client, broker, merchant, auth
) -> None:
    for n in range(2):
        await received.record_received_pix(
            received.incoming(
                merchant_id=merchant.id,
                end_to_end_id=e2e(n),
                amount_cents=3000,
                txid=None,
                paid_at=datetime.now(UTC),
                source=PixSource.WEBHOOK,
            ),
            broker=broker,
        )
    targets = [await create(client, auth, value="30.00") for _ in range(2)]
    key = {"Idempotency-Key": "attach-once"}
    calls = [attach(client, auth, e2e(n), targets[n]["id"], **key) for n in range(2)]
    responses = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert sorted(r.status_code for r in responses) == [200, 409]
    statuses = sorted([(await Payment.get(id=t["id"])).status for t in targets])
    assert statuses == ["paid", "pending"]
    await assert_ledger_invariants()
