"""The bank's signed PIX confirmation: signature first, then exactly-once settlement."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pixweb.deps import CONFIG_KEY
from pixweb.models import Account, Movement, Notification, Payment, PaymentStatus, ReceivedPix
from pixweb.services import accounts, ledger, received, webhooks
from tests.api.test_accounts import balance
from tests.api.test_payments import JSON, PAST, assert_error, assert_no_event, create
from tests.conftest import bearer, make_merchant
from tests.services.test_ledger import assert_ledger_invariants
from tests.support import signed

URL = "/payments/pix/confirmation"
E2E = "E12345678202405011200abcdeABCDE1"
E2E_OTHER = "E87654321202405011200ZYXWVzyxwv9"


@pytest.fixture
async def payment(client, auth) -> dict[str, Any]:
    return await create(client, auth, value="100.00")


def confirmation(payment: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"bank_payment_id": payment["bank_payment_id"], "value": "100.00", **fields}


async def confirm(client: Any, sign: Any, payload: Any) -> Any:
    body, headers = sign(payload)
    return await client.post(URL, data=body, headers=headers)


async def assert_untouched(payment: dict[str, Any], status: PaymentStatus) -> None:
    stored = await Payment.get(id=payment["id"])
    assert stored.status == status
    assert stored.paid_at is None and stored.end_to_end_id is None


async def next_event(events: Any) -> dict[str, Any]:
    event: dict[str, Any] = await asyncio.wait_for(anext(events), 1)
    return event


# --- signature ----------------------------------------------------------------------------


def _bad_signatures(body: bytes, secret: str) -> dict[str, dict[str, str]]:
    good = webhooks.sign(body, secret)
    return {
        "missing": {},
        "empty": {webhooks.SIGNATURE_HEADER: ""},
        "wrong": {webhooks.SIGNATURE_HEADER: "sha256=" + "0" * 64},
        "of another body": {webhooks.SIGNATURE_HEADER: webhooks.sign(body + b" ", secret)},
        "another secret": {webhooks.SIGNATURE_HEADER: webhooks.sign(body, secret + "x")},
        "without prefix": {webhooks.SIGNATURE_HEADER: good.removeprefix("sha256=")},
        "other algorithm": {webhooks.SIGNATURE_HEADER: good.replace("sha256=", "sha1=")},
        "truncated": {webhooks.SIGNATURE_HEADER: good[:-2]},
    }


@pytest.mark.parametrize("case", list(_bad_signatures(b"", "s")))
async def test_bad_signature_is_refused(client, config, broker, payment, case) -> None:
    body = json.dumps(confirmation(payment)).encode()
    headers = {**JSON, **_bad_signatures(body, config.webhook_secret)[case]}
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        await assert_error(
            await client.post(URL, data=body, headers=headers), 401, "invalid_signature"
        )
        await assert_no_event(events)
    await assert_untouched(payment, PaymentStatus.PENDING)


@pytest.mark.parametrize("body", [b"{", b"", b"null", b"[]", b'"x"', b"\xff", b'{"value": 1,}'])
async def test_signature_is_checked_before_the_body(client, config, body) -> None:
    forged = signed(body, config.webhook_secret + "x")[1]
    await assert_error(await client.post(URL, data=body, headers=forged), 401, "invalid_signature")
    good = signed(body, config.webhook_secret)[1]
    await assert_error(await client.post(URL, data=body, headers=good), 400, "invalid_body")


# --- refusals -----------------------------------------------------------------------------


async def test_unknown_bank_payment_id_is_404(client, sign, payment) -> None:
    response = await confirm(client, sign, {"bank_payment_id": "x" * 25, "value": "100.00"})
    await assert_error(response, 404, "not_found")
    await assert_untouched(payment, PaymentStatus.PENDING)


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"value": "100.01"}, 422, "unprocessable", "value"),
        ({"value": "99.99"}, 422, "unprocessable", "value"),
        ({"value": "0.00"}, 400, "invalid_input", "value"),
        ({"value": "abc"}, 400, "invalid_input", "value"),
        ({"value": None}, 400, "invalid_input", "value"),
        ({"bank_payment_id": ""}, 400, "invalid_input", "bank_payment_id"),
        ({"bank_payment_id": 42}, 400, "invalid_input", "bank_payment_id"),
        ({"end_to_end_id": "E123"}, 400, "invalid_input", "end_to_end_id"),
        ({"end_to_end_id": E2E + "X"}, 400, "invalid_input", "end_to_end_id"),
        ({"end_to_end_id": "X" + E2E[1:]}, 400, "invalid_input", "end_to_end_id"),
        ({"end_to_end_id": E2E + "\n"}, 400, "invalid_input", "end_to_end_id"),
    ],
)
async def test_bad_confirmation_is_refused(
    client, sign, broker, payment, change, status, code, field
) -> None:
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await confirm(client, sign, confirmation(payment, **change))
        await assert_error(response, status, code, field)
        await assert_no_event(events)
    await assert_untouched(payment, PaymentStatus.PENDING)


@pytest.mark.parametrize(
    ("change", "status"),
    [({"expires_at": PAST}, PaymentStatus.PENDING), ({"status": "cancelled"}, "cancelled")],
)
async def test_expired_or_cancelled_payment_cannot_be_paid(
    client, sign, broker, merchant, payment, change, status
) -> None:
    await Payment.filter(id=payment["id"]).update(**change)
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
        body = await assert_error(response, 409, "conflict")
        await assert_no_event(events)
        # The bank repeats itself: the same answer, nothing more recorded or credited.
        again = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
        assert (again.status_code, await again.get_json()) == (409, body)
    await assert_untouched(payment, PaymentStatus(status))
    # Issue 10: the Pix is money in the merchant's account, recorded and credited once.
    assert "recorded as a received Pix to reconcile (late)" in body["detail"]
    recorded = body["received_pix"]
    assert (recorded["end_to_end_id"], recorded["outcome"]) == (E2E, "late")
    assert (recorded["payment_id"], recorded["value"]) == (payment["id"], "100.00")
    assert await balance(merchant) == 10000
    await assert_ledger_invariants()


async def test_an_unnamed_confirmation_for_an_expired_payment_records_nothing(
    client, sign, merchant, payment
) -> None:
    """Without an end_to_end_id a Pix cannot be told from a repeat: answered as before."""
    await Payment.filter(id=payment["id"]).update(expires_at=PAST)
    body = await assert_error(await confirm(client, sign, confirmation(payment)), 409, "conflict")
    assert "received_pix" not in body
    assert await balance(merchant) == 0
    assert not await ReceivedPix.exists()
    await assert_ledger_invariants()


# --- settlement ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra", [{}, {"end_to_end_id": E2E}, {"horario": "2024-05-01T12:00:00Z", "infoPagador": "x"}]
)
async def test_confirmation_pays_once(client, sign, broker, auth, payment, extra) -> None:
    before = datetime.now(UTC)
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await confirm(client, sign, confirmation(payment, **extra))
        assert response.status_code == 200
        body = await response.get_json()
        assert body["id"] == payment["id"] and body["status"] == "paid"
        assert before <= datetime.fromisoformat(body["paid_at"]) <= datetime.now(UTC)
        assert body["confirmation"] == "settled" and body["detail"]
        event = await next_event(events)
        expected = {"type": "payment.paid", "payment_id": payment["id"], "status": "paid"}
        assert {key: event.get(key) for key in expected} == expected
        again = await confirm(client, sign, confirmation(payment, **extra))
        assert again.status_code == 200
        replayed = await again.get_json()
        assert replayed["paid_at"] == body["paid_at"]
        assert replayed["confirmation"] == "replayed" and "nothing changed" in replayed["detail"]
        shape = {k: v for k, v in replayed.items() if k not in ("confirmation", "detail")}
        assert shape == {k: v for k, v in body.items() if k not in ("confirmation", "detail")}
        await assert_no_event(events)
    stored = await Payment.get(id=payment["id"])
    assert stored.status == PaymentStatus.PAID
    assert stored.end_to_end_id == extra.get("end_to_end_id")
    fetched = await (await client.get(f"/payments/{payment['id']}", headers=auth)).get_json()
    assert (fetched["status"], fetched["paid_at"]) == ("paid", body["paid_at"])


async def test_value_may_be_a_json_number(client, sign, payment) -> None:
    body = b'{"bank_payment_id": "%s", "value": 100.00}' % payment["bank_payment_id"].encode()
    response = await confirm(client, sign, body)
    assert response.status_code == 200
    assert (await response.get_json())["status"] == "paid"


async def test_paid_payment_refuses_another_end_to_end_id(
    client, sign, broker, merchant, payment
) -> None:
    first = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
    paid_at = (await first.get_json())["paid_at"]
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E_OTHER))
        body = await assert_error(response, 409, "conflict")
        await assert_no_event(events)
    stored = await Payment.get(id=payment["id"])
    assert stored.end_to_end_id == E2E
    assert stored.paid_at == datetime.fromisoformat(paid_at)
    # Issue 10: the second Pix is recorded as a duplicate and credited, once.
    assert body["received_pix"]["outcome"] == "duplicate"
    assert body["received_pix"]["end_to_end_id"] == E2E_OTHER
    assert await balance(merchant) == 20000
    await assert_ledger_invariants()


async def test_a_mismatched_named_pix_is_recorded_and_credited(
    client, sign, broker, merchant, payment
) -> None:
    changed = confirmation(payment, end_to_end_id=E2E, value="30.00")
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        body = await assert_error(
            await confirm(client, sign, changed), 422, "unprocessable", "value"
        )
        await assert_no_event(events)
    await assert_untouched(payment, PaymentStatus.PENDING)
    assert body["received_pix"]["outcome"] == "amount_mismatch"
    assert "amount_mismatch" in body["detail"]
    assert await balance(merchant) == 3000
    # The same e2eid with another value is not that Pix: refused, nothing more credited.
    other = confirmation(payment, end_to_end_id=E2E, value="100.00")
    await assert_error(await confirm(client, sign, other), 422, "unprocessable", "value")
    assert await balance(merchant) == 3000
    await assert_ledger_invariants()


async def test_end_to_end_id_settles_one_payment_only(client, sign, broker, auth, payment) -> None:
    assert (
        await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
    ).status_code == 200
    second = await create(client, auth, value="100.00")
    async with broker.subscribe(f"payment:{second['id']}") as events:
        response = await confirm(client, sign, confirmation(second, end_to_end_id=E2E))
        await assert_error(response, 409, "conflict")
        await assert_no_event(events)
    await assert_untouched(second, PaymentStatus.PENDING)
    # The second payment can still be settled by its own transfer.
    response = await confirm(client, sign, confirmation(second, end_to_end_id=E2E_OTHER))
    assert response.status_code == 200


async def test_concurrent_confirmations_pay_once(client, sign, broker, payment) -> None:
    body, headers = sign(confirmation(payment, end_to_end_id=E2E))
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        responses = await asyncio.gather(
            *(client.post(URL, data=body, headers=headers) for _ in range(50))
        )
        assert [r.status_code for r in responses] == [200] * 50
        answers = [(await r.get_json())["confirmation"] for r in responses]
        assert sorted(answers) == ["replayed"] * 49 + ["settled"]
        paid_at = {(await r.get_json())["paid_at"] for r in responses}
        assert len(paid_at) == 1 and None not in paid_at
        assert (await next_event(events))["type"] == "payment.paid"
        await assert_no_event(events)
    stored = await Payment.get(id=payment["id"])
    assert stored.status == PaymentStatus.PAID
    assert stored.paid_at == datetime.fromisoformat(paid_at.pop())


# --- a charge already paid from a pixweb balance -----------------------------------------

TOLD = "pix_cobranca_ja_paga"


@pytest.fixture
async def paid_from_a_balance(app, client, broker, payment) -> Any:
    """`payment` paid by another merchant from its R$ 150,00; returns that merchant."""
    payer = await make_merchant("pagador@example.com", name="Mercado Bom Preço")
    await accounts.deposit(payer, 15000, broker=broker)
    headers = bearer(payer, app.extensions[CONFIG_KEY])
    body = {"brcode": payment["brcode"]}
    response = await client.post("/accounts/me/payments", json=body, headers=headers)
    assert response.status_code == 201, await response.get_json()
    return payer


async def money_state() -> list[tuple[Any, ...]]:
    accounts_ = await Account.all().order_by("id").values_list("id", "balance_cents")
    moves = await Movement.all().order_by("id").values_list("id", "account_id", "amount_cents")
    return [tuple(accounts_), tuple(moves)]


async def test_a_named_pix_for_a_charge_paid_from_a_balance_is_recorded_and_credited(
    client, sign, broker, merchant, auth, payment, paid_from_a_balance
) -> None:
    """Issue 10 replaces the notice alone: with its end_to_end_id, the bank's Pix is a
    `duplicate` received Pix, recorded and credited once (the money is in the bank)."""
    payer = paid_from_a_balance
    stored = await Payment.get(id=payment["id"])
    async with (
        broker.subscribe(f"payment:{payment['id']}") as payment_events,
        broker.subscribe(f"account:{merchant.id}") as account_events,
    ):
        response = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
        assert response.status_code == 200
        body = await response.get_json()
        assert (body["id"], body["status"]) == (payment["id"], "paid")
        assert datetime.fromisoformat(body["paid_at"]) == stored.paid_at
        assert body["confirmation"] == "already_settled_by_balance"
        assert "recorded" in body["detail"] and "credited" in body["detail"]
        kinds = [(await next_event(account_events))["type"] for _ in range(3)]
        assert kinds == ["movement", "notification", "pix.received"]
        await assert_no_event(payment_events)  # the charge did not change
        again = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
        assert (again.status_code, await again.get_json()) == (200, body)
        await assert_no_event(account_events)
    assert (await balance(merchant), await balance(payer)) == (20000, 5000)
    after = await Payment.get(id=payment["id"])
    assert (after.status, after.paid_at, after.end_to_end_id) == ("paid", stored.paid_at, None)
    record = await ReceivedPix.get(end_to_end_id=E2E)
    assert (record.outcome, record.payment_id, record.source) == (
        "duplicate",
        after.id,
        "confirmation",
    )
    [note] = await Notification.filter(merchant_id=merchant.id, tipo=received.TO_RECONCILE)
    charge = f"#{payment['id'][:8]}"  # a charge without description, by its id
    assert (
        note.mensagem == f"Pix de R$ 100,00 recebido para a cobrança {charge}, que já estava paga"
    )
    assert not await Notification.filter(tipo=TOLD).exists()
    await assert_ledger_invariants()


async def test_an_unnamed_pix_for_a_charge_paid_from_a_balance_only_notifies(
    client, sign, broker, merchant, auth, payment, paid_from_a_balance
) -> None:
    """Without an end_to_end_id the bank's Pix cannot be told from a repeat: told, not
    credited (as before issue 10)."""
    extra: dict[str, Any] = {}
    payer = paid_from_a_balance
    stored = await Payment.get(id=payment["id"])
    before = await money_state()
    assert (await balance(merchant), await balance(payer)) == (10000, 5000)
    async with (
        broker.subscribe(f"payment:{payment['id']}") as payment_events,
        broker.subscribe(f"account:{merchant.id}") as account_events,
    ):
        response = await confirm(client, sign, confirmation(payment, **extra))
        assert response.status_code == 200
        body = await response.get_json()
        assert (body["id"], body["status"]) == (payment["id"], "paid")
        assert datetime.fromisoformat(body["paid_at"]) == stored.paid_at
        assert body["confirmation"] == "already_settled_by_balance"
        assert "balance" in body["detail"] and "not credited" in body["detail"]
        event = await next_event(account_events)
        await assert_no_event(payment_events)  # the charge did not change
        # The bank repeats itself: the same answer, no second notice.
        again = await confirm(client, sign, confirmation(payment, **extra))
        assert (again.status_code, await again.get_json()) == (200, body)
        await assert_no_event(account_events)
    assert await money_state() == before  # nothing credited, nothing moved
    assert (await balance(merchant), await balance(payer)) == (10000, 5000)
    assert not await ReceivedPix.exists()
    after = await Payment.get(id=payment["id"])
    assert (after.status, after.paid_at, after.end_to_end_id) == ("paid", stored.paid_at, None)
    [note] = await Notification.filter(merchant_id=merchant.id, tipo=TOLD)
    assert event["type"] == "notification" and event["merchant_id"] == merchant.id
    assert event["notification"] == ledger.notification_dict(note)
    assert "R$ 100,00" in note.mensagem and "já paga com saldo" in note.mensagem
    assert note.dados["cobranca"] == payment["id"]
    assert note.dados["end_to_end_id"] == extra.get("end_to_end_id")
    assert not await Notification.filter(merchant_id=payer.id, tipo=TOLD).exists()
    listed = await (await client.get("/notifications", headers=auth)).get_json()
    assert listed["items"][0]["tipo"] == TOLD and listed["items"][0]["lida"] is False
    await assert_ledger_invariants()


async def test_each_bank_pix_for_a_charge_paid_from_a_balance_is_credited_once(
    client, sign, merchant, payment, paid_from_a_balance
) -> None:
    """Issue 10: each named Pix is recorded and credited once (was: told once, not credited)."""
    bodies = [sign(confirmation(payment, end_to_end_id=e2e)) for e2e in (E2E, E2E_OTHER)]
    responses = await asyncio.gather(
        *(client.post(URL, data=body, headers=headers) for body, headers in bodies * 20)
    )
    assert {r.status_code for r in responses} == {200}
    answers = {(await r.get_json())["confirmation"] for r in responses}
    assert answers == {"already_settled_by_balance"}
    notes = await Notification.filter(merchant_id=merchant.id, tipo=received.TO_RECONCILE)
    assert sorted(n.dados["end_to_end_id"] for n in notes) == sorted([E2E, E2E_OTHER])
    records = await ReceivedPix.all()
    assert sorted(r.end_to_end_id for r in records) == sorted([E2E, E2E_OTHER])
    assert {r.outcome for r in records} == {"duplicate"}
    assert await balance(merchant) == 30000
    await assert_ledger_invariants()
