"""JSON API of PIX charges: create (with idempotency), list, fetch, cancel and QR images."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest

from pixweb.models import Payment, PaymentStatus
from pixweb.pix import brcode
from tests.conftest import bearer, make_merchant

JSON = {"Content-Type": "application/json"}
PAST = datetime(2020, 1, 1, tzinfo=UTC)
UNKNOWN = "0b8f7a4e-2c1d-4e5f-9a6b-7c8d9e0f1a2b"


async def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict:
    """Check a JSON error answer: status, `error` code, a `detail`, and the faulty field."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        assert field in body["fields"], body
    return body


async def assert_no_event(events: Any) -> None:
    """Nothing more arrives on a subscription."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(events), 0.05)


async def create(client: Any, headers: dict[str, str], **payload: Any) -> dict:
    """Create a payment through the API and return its JSON."""
    response = await client.post(
        "/payments/pix", json={"value": "100.00", **payload}, headers=headers
    )
    assert response.status_code == 201
    return await response.get_json()


async def post_raw(client: Any, body: bytes, headers: dict[str, str]) -> Any:
    return await client.post("/payments/pix", data=body, headers={**JSON, **headers})


# --- create -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expires_in"),
    [(b"100.00", None), (b'"100.00"', 60), (b"100", 604800), (b'"100"', 3600), (b"1e2", 120)],
)
async def test_create_payment(client, merchant, auth, value, expires_in) -> None:
    body = b'{"value": ' + value + b', "description": "Pedido 42"'
    body += (b', "expires_in": %d}' % expires_in) if expires_in else b"}"
    response = await post_raw(client, body, auth)
    assert response.status_code == 201
    data = await response.get_json()
    assert UUID(data["id"]).version == 4
    expected = {"value": "100.00", "description": "Pedido 42", "status": "pending", "paid_at": None}
    assert {key: data[key] for key in expected} == expected
    assert re.fullmatch(r"[A-Za-z0-9]{25}", data["bank_payment_id"])
    created = datetime.fromisoformat(data["created_at"])
    expires = datetime.fromisoformat(data["expires_at"])
    assert expires - created == timedelta(seconds=expires_in or 3600)
    decoded = brcode.decode(data["brcode"])
    assert decoded.errors == () and decoded.warnings == ()
    assert decoded.amount == "100.00"
    assert decoded.txid == data["bank_payment_id"]
    assert decoded.key == merchant.pix_key
    stored = await Payment.get(id=data["id"])
    assert (stored.amount_cents, stored.merchant_id) == (10000, merchant.id)
    assert stored.txid == data["bank_payment_id"]
    assert (await client.get(urlsplit(data["payment_url"]).path)).status_code == 200


@pytest.mark.parametrize(("value", "text"), [(b"0.01", "0.01"), (b'"1000000.00"', "1000000.00")])
async def test_value_limits_are_accepted(client, auth, value, text) -> None:
    response = await post_raw(client, b'{"value": ' + value + b"}", auth)
    assert response.status_code == 201
    assert (await response.get_json())["value"] == text


BAD_VALUES = [b"0", b"-1", b"1000000.01", b"1.001", b'"1e3"', b'"NaN"', b'"Infinity"']
BAD_VALUES += [b'"100,00"', b'" 100"', b"true", b"false", b"null", b"[]", b"{}", b'"-1.00"']
BAD_VALUES += [b"NaN", b"Infinity", b"-Infinity", b"1e309", b"1e999999999"]


@pytest.mark.parametrize("value", BAD_VALUES)
async def test_bad_value_is_refused(client, auth, value) -> None:
    response = await post_raw(client, b'{"value": ' + value + b"}", auth)
    await assert_error(response, 400, "invalid_input", "value")
    assert await Payment.all().count() == 0


BAD_FIELDS = [("expires_in", 59), ("expires_in", 604801), ("expires_in", "3600")]
BAD_FIELDS += [("expires_in", 3600.5), ("expires_in", True), ("expires_in", None)]
BAD_FIELDS += [("description", "x" * 141), ("description", 42), ("amount", "1.00")]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
async def test_bad_field_is_refused(client, auth, field, value) -> None:
    response = await client.post(
        "/payments/pix", json={"value": "1.00", field: value}, headers=auth
    )
    await assert_error(response, 400, "invalid_input", field)
    response = await client.post("/payments/pix", json={field: value}, headers=auth)
    await assert_error(response, 400, "invalid_input", "value")  # value missing: named too
    assert await Payment.all().count() == 0


@pytest.mark.parametrize("body", [b"", b"{", b"null", b'"x"', b"[]", b"1", b"1e309", b"\xff"])
async def test_body_that_is_not_an_object_is_refused(client, auth, body) -> None:
    await assert_error(await post_raw(client, body, auth), 400, "invalid_body")
    assert await Payment.all().count() == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
@pytest.mark.parametrize("body", [b'{"value": "1.00"}', b'{"value": 0}', b"{"])
async def test_create_needs_a_token_before_anything(client, merchant, headers, body) -> None:
    response = await post_raw(client, body, headers)
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await Payment.all().count() == 0


# --- idempotency --------------------------------------------------------------------------


async def test_same_idempotency_key_and_body_returns_the_first_payment(client, auth) -> None:
    headers = {**auth, "Idempotency-Key": "order-1"}
    first = await create(client, headers, description="a")
    again = await client.post(
        "/payments/pix", json={"value": "100.00", "description": "a"}, headers=headers
    )
    assert again.status_code == 200
    assert (await again.get_json())["id"] == first["id"]
    assert await Payment.all().count() == 1


@pytest.mark.parametrize(
    "other", [{"value": "100.01"}, {"value": "100.00", "description": "b"}, {"expires_in": 60}]
)
async def test_same_idempotency_key_with_another_body_conflicts(client, auth, other) -> None:
    headers = {**auth, "Idempotency-Key": "order-1"}
    await create(client, headers)
    response = await client.post(
        "/payments/pix", json={"value": "100.00", **other}, headers=headers
    )
    await assert_error(response, 409, "conflict")
    assert await Payment.all().count() == 1


async def test_idempotency_key_belongs_to_one_merchant(client, config, auth) -> None:
    other = bearer(await make_merchant("outra@example.com"), config)
    first = await create(client, {**auth, "Idempotency-Key": "k"})
    second = await create(client, {**other, "Idempotency-Key": "k"})
    assert first["id"] != second["id"]
    assert await Payment.all().count() == 2


async def test_concurrent_requests_with_one_key_create_one_payment(client, auth) -> None:
    headers = {**auth, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post("/payments/pix", json={"value": "5.00"}, headers=headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    ids = {(await r.get_json())["id"] for r in responses}
    assert len(ids) == 1
    assert await Payment.all().count() == 1


# --- list and fetch -----------------------------------------------------------------------


async def list_ids(client: Any, headers: dict[str, str], query: str = "") -> list[str]:
    response = await client.get(f"/payments?{query}", headers=headers)
    assert response.status_code == 200
    return [item["id"] for item in (await response.get_json())["items"]]


@pytest.mark.parametrize("same_time", [False, True])
async def test_pages_visit_every_payment_once_newest_first(client, auth, same_time) -> None:
    ids = [(await create(client, auth))["id"] for _ in range(7)]
    if same_time:
        await Payment.all().update(created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
        ids.sort(key=UUID)
    seen, sizes, query = [], [], "limit=3"
    while query:
        response = await client.get(f"/payments?{query}", headers=auth)
        page = await response.get_json()
        seen += [item["id"] for item in page["items"]]
        sizes.append(len(page["items"]))
        query = page["next_cursor"] and f"limit=3&cursor={page['next_cursor']}"
    assert seen == ids[::-1]
    assert sizes == [3, 3, 1]


async def test_status_filter(client, auth) -> None:
    pending, paid, cancelled, expired = [(await create(client, auth))["id"] for _ in range(4)]
    await Payment.filter(id=paid).update(status=PaymentStatus.PAID, paid_at=datetime.now(UTC))
    await Payment.filter(id=cancelled).update(status=PaymentStatus.CANCELLED)
    await Payment.filter(id=expired).update(expires_at=PAST)
    expected = {"pending": pending, "paid": paid, "cancelled": cancelled, "expired": expired}
    for status, payment_id in expected.items():
        assert await list_ids(client, auth, f"status={status}") == [payment_id]
    response = await client.get(f"/payments/{expired}", headers=auth)
    assert (await response.get_json())["status"] == "expired"


BAD_QUERIES = ["cursor=nope", "cursor=!!!!", "cursor=YXxi", "status=bogus", "status=PENDING"]
BAD_QUERIES += ["limit=0", "limit=101", "limit=abc", "limit=-1"]


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_bad_list_query_is_refused(client, auth, query) -> None:
    await create(client, auth)
    response = await client.get(f"/payments?{query}", headers=auth)
    await assert_error(response, 400, "invalid_input", query.partition("=")[0])


async def test_other_merchants_payments_are_invisible(client, config, auth) -> None:
    mine = (await create(client, auth))["id"]
    other = bearer(await make_merchant("outra@example.com"), config)
    theirs = (await create(client, other))["id"]
    assert await list_ids(client, auth) == [mine]
    assert await list_ids(client, other) == [theirs]
    ok = await client.get(f"/payments/{mine}", headers=auth)
    assert ok.status_code == 200 and (await ok.get_json())["id"] == mine
    await assert_error(await client.get(f"/payments/{theirs}", headers=auth), 404, "not_found")


@pytest.mark.parametrize("path", [f"/payments/{UNKNOWN}", "/payments/not-a-uuid", "/payments/1"])
async def test_unknown_payment_is_404_json(client, auth, path) -> None:
    await assert_error(await client.get(path, headers=auth), 404, "not_found")


# --- cancel -------------------------------------------------------------------------------


async def test_cancel_pending_payment(client, broker, auth) -> None:
    payment_id = (await create(client, auth))["id"]
    async with broker.subscribe(f"payment:{payment_id}") as events:
        response = await client.post(f"/payments/{payment_id}/cancel", headers=auth)
        assert response.status_code == 200
        assert (await response.get_json())["status"] == "cancelled"
        event = await asyncio.wait_for(anext(events), 1)
        assert event["type"] == "payment.cancelled" and event["payment_id"] == payment_id
        await assert_no_event(events)
    assert (await Payment.get(id=payment_id)).status == PaymentStatus.CANCELLED


NOT_PENDING = {
    "cancelled": {"status": PaymentStatus.CANCELLED},
    "paid": {"status": PaymentStatus.PAID, "paid_at": PAST},
    "expired": {"expires_at": PAST},
}


@pytest.mark.parametrize("change", NOT_PENDING.values(), ids=NOT_PENDING.keys())
async def test_cancel_refuses_what_is_not_pending(client, broker, auth, change) -> None:
    payment_id = (await create(client, auth))["id"]
    await Payment.filter(id=payment_id).update(**change)
    status = change.get("status", PaymentStatus.PENDING)
    async with broker.subscribe(f"payment:{payment_id}") as events:
        response = await client.post(f"/payments/{payment_id}/cancel", headers=auth)
        await assert_error(response, 409, "conflict")
        await assert_no_event(events)
    assert (await Payment.get(id=payment_id)).status == status


async def test_cancel_of_another_merchants_payment_is_404(client, broker, config, auth) -> None:
    other = bearer(await make_merchant("outra@example.com"), config)
    payment_id = (await create(client, other))["id"]
    async with broker.subscribe(f"payment:{payment_id}") as events:
        for headers, status, code in [(auth, 404, "not_found"), ({}, 401, "unauthorized")]:
            response = await client.post(f"/payments/{payment_id}/cancel", headers=headers)
            await assert_error(response, status, code)
        await assert_no_event(events)
    assert (await Payment.get(id=payment_id)).status == PaymentStatus.PENDING


# --- QR images ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extension", "media_type", "marker"),
    [("png", "image/png", b"\x89PNG"), ("svg", "image/svg+xml", b"<svg")],
)
async def test_qr_code_image(client, auth, extension, media_type, marker) -> None:
    data = await create(client, auth)
    payment_id, url = data["id"], urlsplit(data["qr_code"][extension]).path
    assert url == f"/payments/pix/qr_code/{payment_id}.{extension}"
    response = await client.get(url)
    assert response.status_code == 200
    assert response.mimetype == media_type
    image = await response.get_data()
    assert marker in image[:200]
    if extension == "svg":  # sized, and scalable by an <img> (the payer page's) without clipping
        assert re.search(rb'width="(\d+)" height="\1" viewBox="0 0 \1 \1"', image[:200])
    max_age = re.search(r"max-age=(\d+)", response.headers["Cache-Control"])
    assert max_age and int(max_age.group(1)) >= 86400
    # The UUID is read case-insensitively: the same image, not a 500.
    upper = await client.get(f"/payments/pix/qr_code/{payment_id.upper()}.{extension}")
    assert upper.status_code == 200 and await upper.get_data() == image


BAD_QR_NAMES = [f"{UNKNOWN}.png", "{id}.gif", "{id}.PNG", "{id}.png.png", "{id}", "{id}."]
BAD_QR_NAMES += [".png", "{hex}.png", "urn:uuid:{id}.png", "%7B{id}%7D.png", "{id}%2F.png"]
BAD_QR_NAMES += ["..%2F..%2Fetc%2Fpasswd", "..%2F{id}.png", "{id}.png%00", "{id}.svg.png"]


@pytest.mark.parametrize("name", BAD_QR_NAMES)
async def test_qr_code_unknown_names_are_404(client, auth, name) -> None:
    payment_id = (await create(client, auth))["id"]
    path = "/payments/pix/qr_code/" + name.format(id=payment_id, hex=UUID(payment_id).hex)
    await assert_error(await client.get(path), 404, "not_found")
