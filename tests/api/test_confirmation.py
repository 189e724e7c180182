"""The bank's signed PIX confirmation: signature first, then exactly-once settlement."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pixweb.models import Payment, PaymentStatus
from pixweb.services import webhooks
from tests.api.test_payments import JSON, PAST, assert_error, assert_no_event, create
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
    client, sign, broker, payment, change, status
) -> None:
    await Payment.filter(id=payment["id"]).update(**change)
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
        await assert_error(response, 409, "conflict")
        await assert_no_event(events)
    await assert_untouched(payment, PaymentStatus(status))


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
        event = await next_event(events)
        expected = {"type": "payment.paid", "payment_id": payment["id"], "status": "paid"}
        assert {key: event.get(key) for key in expected} == expected
        again = await confirm(client, sign, confirmation(payment, **extra))
        assert again.status_code == 200
        assert (await again.get_json())["paid_at"] == body["paid_at"]
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


async def test_paid_payment_refuses_another_end_to_end_id(client, sign, broker, payment) -> None:
    first = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E))
    paid_at = (await first.get_json())["paid_at"]
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await confirm(client, sign, confirmation(payment, end_to_end_id=E2E_OTHER))
        await assert_error(response, 409, "conflict")
        await assert_no_event(events)
    stored = await Payment.get(id=payment["id"])
    assert stored.end_to_end_id == E2E
    assert stored.paid_at == datetime.fromisoformat(paid_at)


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
        paid_at = {(await r.get_json())["paid_at"] for r in responses}
        assert len(paid_at) == 1 and None not in paid_at
        assert (await next_event(events))["type"] == "payment.paid"
        await assert_no_event(events)
    stored = await Payment.get(id=payment["id"])
    assert stored.status == PaymentStatus.PAID
    assert stored.paid_at == datetime.fromisoformat(paid_at.pop())
