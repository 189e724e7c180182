"""GET /payments filters: status, period, search, cursor pages, and totals for the filter."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from pixweb.models import Merchant, Payment, PaymentStatus
from pixweb.services.clock import utcnow
from tests.conftest import bearer, make_merchant

DAY1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def charge(
    merchant: Merchant,
    cents: int,
    description: str | None = None,
    *,
    created_at: datetime = DAY1,
    status: PaymentStatus = PaymentStatus.PENDING,
    expires_at: datetime | None = None,
) -> Payment:
    """A charge row as it was recorded at `created_at` (pending ones still open)."""
    return await Payment.create(
        merchant=merchant,
        amount_cents=cents,
        description=description,
        txid=secrets.token_hex(12),
        brcode="x",
        status=status,
        created_at=created_at,
        expires_at=expires_at or utcnow() + timedelta(hours=1),
    )


async def listing(client: Any, headers: dict[str, str], **params: Any) -> dict:
    response = await client.get(f"/payments?{urlencode(params)}", headers=headers)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def all_pages(client: Any, headers: dict[str, str], **params: Any) -> list[dict]:
    """Every item across cursor pages; totals are the same on each page."""
    items: list[dict] = []
    cursor = None
    totals = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = await listing(client, headers, limit=2, **params, **extra)
        assert totals in (None, page["totals"])
        totals = page["totals"]
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@pytest.fixture
async def charges(merchant: Merchant) -> dict[str, Payment]:
    return {
        "pao": await charge(merchant, 1050, "Pão de queijo", created_at=DAY1),
        "cafe": await charge(
            merchant, 700, "Café 100% arábica", created_at=DAY1 + timedelta(days=1)
        ),
        "bolo": await charge(
            merchant,
            4590,
            "Bolo_de_fubá",
            created_at=DAY1 + timedelta(days=2),
            status=PaymentStatus.PAID,
        ),
        "torta": await charge(
            merchant,
            12000,
            "Torta grande",
            created_at=DAY1 + timedelta(days=3),
            status=PaymentStatus.PARTIALLY_REFUNDED,
        ),
        "velho": await charge(
            merchant,
            300,
            "Pão velho",
            created_at=DAY1 - timedelta(days=1),
            expires_at=DAY1,
        ),
        "nada": await charge(merchant, 1, None, created_at=DAY1 + timedelta(days=4)),
    }


def ids(items: list[dict]) -> set[str]:
    return {item["id"] for item in items}


def of(charges: dict[str, Payment], *names: str) -> set[str]:
    return {str(charges[name].id) for name in names}


async def test_no_filter_lists_all_with_totals(client, auth, charges) -> None:
    page = await listing(client, auth)
    assert ids(page["items"]) == of(charges, *charges)
    assert page["totals"] == {"count": 6, "value": "186.41"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, ("pao", "cafe", "nada")),
        ({"status": "expired"}, ("velho",)),
        ({"status": "paid"}, ("bolo",)),
        ({"status": "partially_refunded"}, ("torta",)),
        ({"status": "refunded"}, ()),
        ({"since": "2026-03-02T12:00:00Z"}, ("cafe", "bolo", "torta", "nada")),
        ({"until": "2026-03-02T12:00:00Z"}, ("pao", "velho")),
        (
            {"since": "2026-03-01T12:00:00Z", "until": "2026-03-03T12:00:00-00:00"},
            ("pao", "cafe"),
        ),
        ({"since": "2026-03-02T09:00:00-03:00"}, ("cafe", "bolo", "torta", "nada")),
        ({"q": "pão"}, ("pao", "velho")),
        ({"q": "TORTA"}, ("torta",)),
        ({"q": "queijo", "status": "pending"}, ("pao",)),
        ({"q": "pão", "status": "expired"}, ("velho",)),
        ({"q": "pão", "until": "2026-03-01T00:00:00Z"}, ("velho",)),
        ({"status": "pending", "since": "2026-03-02T00:00:00Z"}, ("cafe", "nada")),
    ],
)
async def test_filters(client, auth, charges, params, expected) -> None:
    items = await all_pages(client, auth, **params)
    assert ids(items) == of(charges, *expected)
    page = await listing(client, auth, **params)
    total = sum((Decimal(item["value"]) for item in items), Decimal("0"))
    assert page["totals"] == {"count": len(expected), "value": f"{total:.2f}"}


async def test_search_by_exact_txid(client, auth, charges) -> None:
    txid = charges["nada"].txid
    assert ids((await listing(client, auth, q=txid))["items"]) == of(charges, "nada")
    assert (await listing(client, auth, q=txid[:-1]))["items"] == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [("%", ("cafe",)), ("_", ("bolo",)), ("0%", ("cafe",)), ("o_d", ("bolo",)), ("\\", ())],
)
async def test_like_wildcards_are_literal(client, auth, charges, q, expected) -> None:
    page = await listing(client, auth, q=q)
    assert ids(page["items"]) == of(charges, *expected)
    assert page["totals"]["count"] == len(expected)


async def test_totals_equal_the_sum_across_pages(client, auth, merchant) -> None:
    for n in range(7):
        await charge(merchant, 1000 + n * 11, f"item {n}", created_at=DAY1)  # same instant
    items = await all_pages(client, auth, q="item")
    assert len(items) == len(ids(items)) == 7
    page = await listing(client, auth, q="item", limit=2)
    total = sum((Decimal(item["value"]) for item in items), Decimal("0"))
    assert page["totals"] == {"count": 7, "value": f"{total:.2f}"}
    assert len(page["items"]) == 2


async def test_other_merchants_charges_are_never_listed(client, auth, config, charges) -> None:
    other = await make_merchant("outra@example.com")
    await charge(other, 999, "Pão de queijo", created_at=DAY1)
    mine = await listing(client, auth, q="queijo")
    assert ids(mine["items"]) == of(charges, "pao")
    assert mine["totals"] == {"count": 1, "value": "10.50"}
    theirs = await listing(client, bearer(other, config))
    assert theirs["totals"] == {"count": 1, "value": "9.99"}
    assert len(theirs["items"]) == 1


async def test_empty_filter_totals_are_zero(client, auth) -> None:
    page = await listing(client, auth, status="refunded")
    assert page == {"items": [], "next_cursor": None, "totals": {"count": 0, "value": "0.00"}}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2026-03-01", "since"),
        ("since=yesterday", "since"),
        ("until=2026-03-01T12:00:00", "until"),  # no offset
        ("until=2026-13-01T00:00:00Z", "until"),
        ("q=", "q"),
        ("q=" + "x" * 141, "q"),
        ("q=%C2%84", "q"),
        ("q=a%00b", "q"),
        ("status=estornado", "status"),
    ],
)
async def test_bad_filter_values_are_refused(client, auth, query, field) -> None:
    response = await client.get(f"/payments?{query}", headers=auth)
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"] and body["detail"]
    assert field in body["fields"], body
