"""The hand-built statements of `services.sql` answer what Tortoise's QuerySets answer, on
SQLite and PostgreSQL, inside and outside a transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb.models import Merchant, Payment, PaymentStatus
from pixweb.services import sql
from pixweb.services.clock import utcnow
from tests.conftest import make_merchant


def _fields(payment: Payment) -> dict[str, Any]:
    return {name: getattr(payment, name) for name in Payment._meta.fields_db_projection}


async def _payments(merchant: Merchant, count: int) -> list[Payment]:
    now = utcnow()
    return [
        await Payment.create(
            merchant=merchant,
            amount_cents=100 * (n + 1),
            description=None if n % 2 else f"charge {n}",
            txid=f"TXID{merchant.id:03d}{n:018d}",
            brcode="000201",
            created_at=now,
            expires_at=now + timedelta(minutes=n, seconds=-30),  # the first one has expired
        )
        for n in range(count)
    ]


@pytest.mark.usefixtures("app")
async def test_reads_return_what_the_queryset_returns() -> None:
    merchant, other = await make_merchant(), await make_merchant("outra@example.com")
    ours = await _payments(merchant, 4)
    await _payments(other, 2)
    now = utcnow()
    cases: list[dict[str, Any]] = [
        {"merchant_id": merchant.id},
        {"merchant_id": merchant.id, "description": None},  # IS NULL
        {"merchant_id": merchant.id, "status": PaymentStatus.PENDING, "expires_at__gt": now},
        {"txid__in": [ours[0].txid, ours[2].txid, "NOSUCHTXID"]},
        {"txid__in": []},  # nothing, not an SQL error
        {"id": ours[3].id},
    ]
    for conditions in cases:
        expected = await Payment.filter(**conditions).order_by("txid")
        found = sorted(await sql.select(Payment, **conditions), key=lambda p: p.txid)
        assert [_fields(p) for p in found] == [_fields(p) for p in expected], conditions
        assert all(p._saved_in_db for p in found)  # instances Tortoise can save again
    assert len(await Payment.filter(merchant_id=merchant.id, expires_at__gt=now)) == 3

    one = await sql.get_or_none(Payment, txid=ours[1].txid)
    assert one is not None and _fields(one) == _fields(await Payment.get(txid=ours[1].txid))
    assert await sql.get_or_none(Payment, txid="NOSUCHTXID") is None
    txids = await sql.values(Payment, "txid", merchant_id=other.id)
    assert sorted(txids) == sorted(
        await Payment.filter(merchant_id=other.id).values_list("txid", flat=True)
    )


@pytest.mark.usefixtures("app")
async def test_a_conditional_update_changes_only_the_rows_still_meeting_it() -> None:
    merchant = await make_merchant()
    expired, pending, *_ = await _payments(merchant, 3)
    now = utcnow()
    paid = {"status": PaymentStatus.PAID, "paid_at": now, "end_to_end_id": "E" * 32}
    still = {"status": PaymentStatus.PENDING, "expires_at__gt": now}

    assert await sql.update(Payment, paid, id=expired.id, **still) == 0
    assert await sql.update(Payment, paid, id=pending.id, **still) == 1
    assert await sql.update(Payment, paid, id=pending.id, **still) == 0  # no longer pending
    assert (await Payment.get(id=expired.id)).status == PaymentStatus.PENDING
    stored = await Payment.get(id=pending.id)
    assert (stored.status, stored.paid_at, stored.end_to_end_id) == (
        PaymentStatus.PAID,
        now,
        "E" * 32,
    )
    # Tortoise's own filters read back what was written (the dialect's datetime form).
    assert await Payment.filter(paid_at=now).count() == 1


@pytest.mark.usefixtures("app")
async def test_a_unique_key_clash_is_tortoises_integrity_error_and_changes_nothing() -> None:
    merchant = await make_merchant()
    first, second, _ = await _payments(merchant, 3)
    await sql.update(Payment, {"end_to_end_id": "E" * 32}, id=first.id)
    with pytest.raises(IntegrityError):
        await sql.update(Payment, {"end_to_end_id": "E" * 32}, id=second.id)
    assert (await Payment.get(id=second.id)).end_to_end_id is None


@pytest.mark.usefixtures("app")
async def test_inside_a_transaction_they_use_its_connection() -> None:
    merchant = await make_merchant()
    _, payment, _ = await _payments(merchant, 3)
    with pytest.raises(RuntimeError):
        async with in_transaction():
            changed = {"status": PaymentStatus.CANCELLED}
            assert await sql.update(Payment, changed, id=payment.id) == 1
            seen = await sql.get_or_none(Payment, id=payment.id)
            assert seen is not None and seen.status == PaymentStatus.CANCELLED  # its own write
            raise RuntimeError("roll back")
    stored = await sql.get_or_none(Payment, id=payment.id)
    assert stored is not None and stored.status == PaymentStatus.PENDING  # rolled back


@pytest.mark.usefixtures("app")
async def test_a_condition_it_cannot_write_is_refused_not_read_as_an_equality() -> None:
    merchant = await make_merchant()
    await _payments(merchant, 2)
    with pytest.raises(ValueError, match="unsupported condition: expires_at__lt"):
        await sql.select(Payment, merchant_id=merchant.id, expires_at__lt=utcnow())
    with pytest.raises(ValueError, match="unsupported condition"):
        await sql.update(Payment, {"description": "x"}, expires_at__lte=utcnow())
    assert await Payment.filter(description="x").count() == 0


def test_postgres_marks_are_numbered_in_order() -> None:
    statement = 'UPDATE "t" SET "a" = ? WHERE "b" = ? AND "c" IN (?, ?)'
    assert sql.for_dialect(statement, postgres=True) == (
        'UPDATE "t" SET "a" = $1 WHERE "b" = $2 AND "c" IN ($3, $4)'
    )
    assert sql.for_dialect(statement, postgres=False) == statement
