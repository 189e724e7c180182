"""The hand-built statements of `services.sql` answer what Tortoise's QuerySets answer, on
SQLite and PostgreSQL, inside and outside a transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tortoise.exceptions import IntegrityError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from pixweb.models import (
    Account,
    Merchant,
    Movement,
    MovementKind,
    Notification,
    Payment,
    PaymentStatus,
    PixOutcome,
    PixSource,
    ReceivedPix,
)
from pixweb.services import sql
from pixweb.services.clock import utcnow
from tests.conftest import make_merchant
from tests.support import sqlite_hand_offs


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


def _row(instance: Model) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in type(instance)._meta.fields_db_projection}


@pytest.mark.usefixtures("app")
async def test_an_insert_writes_and_returns_what_create_does() -> None:
    """Generated keys (movement, notification), a default one (received Pix's UUID),
    enums, JSON, datetimes and nullable columns: the row read back and the instance
    returned are what `Model.create` writes and returns."""
    merchant = await make_merchant()
    account = await Account.get(merchant_id=merchant.id)
    now = utcnow()
    kinds: list[tuple[type[Model], dict[str, Any]]] = [
        (
            Movement,
            {
                "account_id": account.id,
                "kind": MovementKind.PIX_RECEBIDO,
                "amount_cents": 1234,
                "balance_after_cents": 1234,
                "reference": "payment:x",
                "counterpart": None,
                "created_at": now,
            },
        ),
        (
            Notification,
            {
                "merchant_id": merchant.id,
                "tipo": "t",
                "mensagem": "Você",
                "created_at": now,
                "dados": {"valor": "12.34", "nada": None, "lista": [1, "dois"]},
            },
        ),
        (
            ReceivedPix,
            {
                "merchant_id": merchant.id,
                "amount_cents": 5,
                "txid": None,
                "paid_at": now,
                "source": PixSource.RECONCILIATION,
                "outcome": PixOutcome.NO_TXID,
                "created_at": now,
            },
        ),
    ]
    movements: list[Any] = []  # a received Pix's movement is its own: the two made here
    for model, given in kinds:
        own = [{}, {}]
        if model is ReceivedPix:
            own = [{"end_to_end_id": f"E{n}", "movement_id": m.id} for n, m in enumerate(movements)]
        created = await model.create(**given, **own[0])
        inserted = await sql.run(sql.insert_plan(model, **given, **own[1]))
        if model is Movement:
            movements = [created, inserted]
        assert inserted.pk is not None and inserted.pk != created.pk
        stored = await model.get(pk=inserted.pk)
        own_keys = {"id", "end_to_end_id", "movement_id"}
        expected = {k: v for k, v in _row(created).items() if k not in own_keys}
        assert {k: v for k, v in _row(stored).items() if k not in own_keys} == expected
        assert _row(inserted) == _row(stored), model
    with pytest.raises(ValueError, match="no field"):
        await sql.run(sql.insert_plan(Notification, merchant_id=merchant.id, nosuch=1))


def _paid_with(e2e: str, *charges: Payment) -> sql.Plan[list[str]]:
    """Pay the charges with one end_to_end_id (a unique key): a second one clashes."""
    done = []
    for payment in charges:
        try:
            yield from sql.update_plan(Payment, {"end_to_end_id": e2e}, id=payment.id)
            done.append("paid")
        except IntegrityError:
            done.append("clash")
    return done


@pytest.mark.usefixtures("app")
async def test_a_plan_runs_in_the_callers_transaction_and_sees_its_errors() -> None:
    merchant = await make_merchant()
    first, second, third = await _payments(merchant, 3)
    # A statement's error is raised where the plan yielded it: the plan may carry on (here
    # each statement is its own transaction: inside one, PostgreSQL would refuse the rest).
    assert await sql.run(_paid_with("E" * 32, first, second)) == ["paid", "clash"]
    # Not caught, it leaves `run` as Tortoise's own error.
    with pytest.raises(IntegrityError):
        await sql.update(Payment, {"end_to_end_id": "E" * 32}, id=third.id)
    with pytest.raises(RuntimeError):
        async with in_transaction():
            assert await sql.run(_paid_with("F" * 32, third)) == ["paid"]
            assert (await Payment.get(id=third.id)).end_to_end_id == "F" * 32  # its own
            raise RuntimeError("roll back")
    assert (await Payment.get(id=third.id)).end_to_end_id is None  # rolled back with it
    assert (await Payment.get(id=first.id)).end_to_end_id == "E" * 32
    assert (await Payment.get(id=second.id)).end_to_end_id is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # aiosqlite's thread
@pytest.mark.usefixtures("app")
async def test_on_sqlite_a_plan_is_one_hand_off_to_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = await make_merchant()
    payments = await _payments(merchant, 3)
    calls = sqlite_hand_offs(monkeypatch)

    def plan() -> sql.Plan[int]:
        changed = 0
        for payment in payments:  # three UPDATEs and their SELECTs
            changed += yield from sql.update_plan(Payment, {"description": "x"}, id=payment.id)
            yield from sql.select_plan(Payment, id=payment.id)
        return changed

    async with in_transaction():
        calls.clear()
        assert await sql.run(plan()) == 3
        assert len(calls) == 1  # six statements, one call to the thread
    calls.clear()
    assert await sql.run_in_transaction(plan()) == 3
    assert len(calls) == 1  # with its BEGIN and COMMIT
    assert await Payment.filter(description="x").count() == 3


def _described(charges: list[Payment], text: str, *, fail: bool = False) -> sql.Plan[int]:
    for payment in charges:
        yield from sql.update_plan(Payment, {"description": text}, id=payment.id)
    if fail:
        raise RuntimeError("undo")
    return len(charges)


@pytest.mark.usefixtures("app")
async def test_a_plan_in_a_transaction_of_its_own_is_all_or_nothing() -> None:
    merchant = await make_merchant()
    charges = await _payments(merchant, 3)
    assert await sql.run_in_transaction(_described(charges, "a")) == 3
    with pytest.raises(RuntimeError):
        await sql.run_in_transaction(_described(charges, "b", fail=True))
    assert await Payment.filter(description="a").count() == 3  # none of "b" stayed
    # In the caller's transaction it is a savepoint: failing, it undoes only its own.
    async with in_transaction():
        await sql.update(Payment, {"description": "c"}, id=charges[0].id)
        with pytest.raises(RuntimeError):
            await sql.run_in_transaction(_described(charges[1:], "d", fail=True))
        assert await sql.run_in_transaction(_described(charges[2:], "e")) == 1
    stored = [(await Payment.get(id=payment.id)).description for payment in charges]
    assert stored == ["c", "a", "e"]


@pytest.mark.usefixtures("app")
async def test_a_savepoint_step_that_fails_undoes_only_itself_and_the_plan_goes_on() -> None:
    charges = await _payments(await make_merchant(), 3)

    def each_alone() -> sql.Plan[list[str]]:
        outcomes = []
        for n, payment in enumerate(charges):
            try:  # the second one fails after writing: its savepoint undoes its write
                yield from sql.savepoint_plan(_described([payment], "kept", fail=n == 1))
            except RuntimeError:
                outcomes.append("undone")
            else:
                outcomes.append("kept")
        return outcomes

    assert await sql.run_in_transaction(each_alone()) == ["kept", "undone", "kept"]
    stored = [(await Payment.get(id=payment.id)).description for payment in charges]
    assert stored == ["kept", charges[1].description, "kept"]
    # A unique key's clash inside the step is undone the same way (PostgreSQL's aborted
    # transaction included), and the plan's later statements still run.
    clash = sql.update_plan(Payment, {"txid": charges[0].txid}, id=charges[2].id)

    def clashing() -> sql.Plan[int]:
        with pytest.raises(IntegrityError):
            yield from sql.savepoint_plan(clash)
        return (yield from sql.update_plan(Payment, {"description": "after"}, id=charges[1].id))

    assert await sql.run_in_transaction(clashing()) == 1
    assert (await Payment.get(id=charges[2].id)).txid != charges[0].txid
    assert (await Payment.get(id=charges[1].id)).description == "after"
