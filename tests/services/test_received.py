"""Every received Pix recorded once, credited once, and matched to its charge when it can be."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pixweb.errors import ControlCharacterError, InvalidInputError, NotFoundError
from pixweb.models import (
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
from pixweb.services import payments, received, settlement, sql
from pixweb.services.events import Outbox
from tests.api.test_accounts import balance
from tests.api.test_payments import PAST, assert_no_event
from tests.conftest import make_merchant
from tests.services.test_ledger import assert_ledger_invariants
from tests.support import sqlite_hand_offs

E2E = "E12345678202405011200abcdeABCDE1"
HORARIO = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def e2e(n: int) -> str:
    return f"E12345678202405011200{n:011d}"


async def charge(merchant: Merchant, broker: Any, value: int = 3000, **fields: Any) -> Payment:
    payment, _ = await payments.create_payment(
        merchant, amount_cents=value, description="Pedido 1042", broker=broker
    )
    if fields:
        await Payment.filter(id=payment.id).update(**fields)
        await payment.refresh_from_db()
    return payment


async def record(broker: Any, **fields: Any) -> tuple[ReceivedPix, bool]:
    values: dict[str, Any] = {
        "end_to_end_id": E2E,
        "amount_cents": 3000,
        "txid": None,
        "paid_at": HORARIO,
        "source": PixSource.WEBHOOK,
        **fields,
    }
    return await received.record_received_pix(received.incoming(**values), broker=broker)


async def drain(events: Any) -> list[dict[str, Any]]:
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(anext(events), 0.1))
        except TimeoutError:
            return got


# --- masking ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "shown"),
    [
        ("12345678909", "***.456.789-**"),
        ("123.456.789-09", "***.456.789-**"),
        ("12345678000195", "**.345.678/0001-**"),
        ("12.345.678/0001-95", "**.345.678/0001-**"),
        ("12.ABC.345/01DE-35", "**.ABC.345/01DE-**"),  # the alphanumeric CNPJ (2026)
        ("***.456.789-**", "**************"),  # masked by the PSP already: not guessed
        ("123", "***"),
        ("", None),
        (None, None),
    ],
)
def test_documents_are_masked_as_the_bcb_shows_them(document, shown) -> None:
    assert received.mask_document(document) == shown


# --- one of each outcome ------------------------------------------------------------------


async def test_a_matching_pix_pays_its_charge_once_and_credits_once(broker, merchant) -> None:
    payment = await charge(merchant, broker)
    async with (
        broker.subscribe(f"payment:{payment.id}") as payment_events,
        broker.subscribe(f"account:{merchant.id}") as account_events,
    ):
        pix, created = await record(
            broker,
            merchant_id=merchant.id,
            txid=payment.txid,
            payer_name="Fulano de Tal",
            payer_document="12345678909",
        )
        [paid] = await drain(payment_events)
        kinds = [event["type"] for event in await drain(account_events)]
    assert created and pix.outcome == PixOutcome.MATCHED and pix.payment_id == payment.id
    assert (paid["type"], paid["status"]) == ("payment.paid", "paid")
    assert kinds == ["movement", "payment.paid", "pix.received"]
    stored = await Payment.get(id=payment.id)
    assert (stored.status, stored.end_to_end_id) == (PaymentStatus.PAID, E2E)
    movement = await Movement.get(id=pix.movement_id)
    assert (movement.reference, movement.description) == (f"payment:{payment.id}", "Pedido 1042")
    assert (pix.payer_name, pix.payer_document) == ("Fulano de Tal", "***.456.789-**")
    assert (pix.paid_at, pix.source) == (HORARIO, PixSource.WEBHOOK)
    assert not await Notification.filter(tipo=received.TO_RECONCILE).exists()
    assert await balance(merchant) == 3000
    await assert_ledger_invariants()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # aiosqlite's thread
async def test_reading_the_charge_and_recording_its_pix_is_one_hand_off(
    monkeypatch: pytest.MonkeyPatch, broker: Any, merchant: Merchant
) -> None:
    """The txid's charge is read in the recording's own transaction: the intake and
    reconciliation, which name no charge, reach SQLite's thread once a Pix (issue 13)."""
    payment = await charge(merchant, broker)
    calls = sqlite_hand_offs(monkeypatch)
    pix, created = await record(broker, merchant_id=merchant.id, txid=payment.txid)
    assert len(calls) == 1
    assert created and pix.outcome == PixOutcome.MATCHED and pix.payment_id == payment.id
    assert (await Payment.get(id=payment.id)).status == PaymentStatus.PAID
    assert await balance(merchant) == 3000
    await assert_ledger_invariants()


async def test_a_batch_of_pix_in_one_plan_each_stands_alone(
    monkeypatch: pytest.MonkeyPatch, database_url: str, broker: Any, merchant: Merchant
) -> None:
    """Reconciliation's chunk: several Pix in one transaction (one hand-off on SQLite); one
    recorded before (its webhook won a race) keeps its record, and its savepoint undoes
    the second credit; the others are recorded, their events held for after the commit."""
    payment = await charge(merchant, broker)
    await record(broker, merchant_id=merchant.id, end_to_end_id=e2e(2), amount_cents=500)
    batch = [
        received.incoming(
            merchant_id=merchant.id,
            end_to_end_id=e2e(n),
            amount_cents=3000 if n == 1 else 500,
            txid=payment.txid if n == 1 else None,
            paid_at=HORARIO,
            source=PixSource.RECONCILIATION,
        )
        for n in (1, 2, 3)
    ]
    outbox = Outbox()

    def chunk() -> sql.Plan[list[tuple[str, bool]]]:
        done = []
        for pix in batch:
            item, new = yield from received.record_plan(pix, outbox)
            done.append((str(item.outcome), new))
        return done

    calls = sqlite_hand_offs(monkeypatch) if database_url.startswith("sqlite") else None
    async with broker.subscribe(f"payment:{payment.id}") as payment_events:
        recorded = await sql.run_in_transaction(chunk())
        assert await drain(payment_events) == []  # nothing published by the plan itself
        await outbox.publish(broker)
        [paid] = await drain(payment_events)
    assert calls is None or len(calls) == 1
    assert recorded == [("matched", True), ("no_txid", False), ("no_txid", True)]
    assert paid["status"] == "paid"
    assert await ReceivedPix.all().count() == 3
    assert await balance(merchant) == 3000 + 500 + 500  # the repeat credited once
    await assert_ledger_invariants()


LATE_EXPIRED = "Pix de R$ 30,00 recebido após o vencimento da cobrança Pedido 1042"
LATE_CANCELLED = "Pix de R$ 30,00 recebido após o cancelamento da cobrança Pedido 1042"
DUPLICATE = "Pix de R$ 30,00 recebido para a cobrança Pedido 1042, que já estava paga"
MISMATCH = "Pix de R$ 10,00 recebido para a cobrança Pedido 1042, de R$ 30,00"


@pytest.mark.parametrize(
    ("state", "amount", "outcome", "message"),
    [
        ({"expires_at": PAST}, 3000, PixOutcome.LATE, LATE_EXPIRED),
        ({"status": PaymentStatus.CANCELLED}, 3000, PixOutcome.LATE, LATE_CANCELLED),
        ("paid", 3000, PixOutcome.DUPLICATE, DUPLICATE),
        ({}, 1000, PixOutcome.AMOUNT_MISMATCH, MISMATCH),
    ],
)
async def test_a_pix_its_charge_cannot_take_is_credited_and_waits(
    broker, merchant, state, amount, outcome, message
) -> None:
    payment = await charge(merchant, broker, **({} if state == "paid" else state))
    if state == "paid":  # by another Pix
        await record(broker, end_to_end_id=e2e(7), txid=payment.txid)
        await payment.refresh_from_db()
    before = await balance(merchant)
    async with (
        broker.subscribe(f"payment:{payment.id}") as payment_events,
        broker.subscribe(f"account:{merchant.id}") as account_events,
    ):
        pix, created = await record(broker, txid=payment.txid, amount_cents=amount)
        await assert_no_event(payment_events)  # the charge did not change
        events = await drain(account_events)
    assert created and (pix.outcome, pix.payment_id) == (outcome, payment.id)
    assert pix.merchant_id == merchant.id  # the txid's charge names the merchant
    after = await Payment.get(id=payment.id)
    assert (after.status, after.paid_at) == (payment.status, payment.paid_at)
    movement = await Movement.get(id=pix.movement_id)
    assert (movement.kind, movement.amount_cents) == (MovementKind.PIX_RECEBIDO, amount)
    assert movement.reference == f"pix:{E2E}"
    assert movement.description == "A conciliar: Pix " + message.split(" recebido ", 1)[1]
    [note] = await Notification.filter(tipo=received.TO_RECONCILE)
    assert note.mensagem == message
    assert note.dados == {
        "valor": f"{amount / 100:.2f}",
        "end_to_end_id": E2E,
        "resultado": str(outcome),
        "cobranca": str(payment.id),
    }
    assert [e["type"] for e in events] == ["movement", "notification", "pix.received"]
    assert events[2]["pix"] == received.received_dict(pix)
    assert await balance(merchant) == before + amount
    await assert_ledger_invariants()


async def test_a_pix_without_txid_or_with_an_unknown_one_credits_the_known_merchant(
    broker, merchant
) -> None:
    other = await make_merchant("outra@example.com", name="Outra Loja")
    theirs = await charge(other, broker)
    cases = [
        (e2e(1), None, PixOutcome.NO_TXID, "direto na chave Pix, sem cobrança"),
        (e2e(2), "x" * 35, PixOutcome.UNKNOWN_TXID, "com um identificador de cobrança"),
        # Another merchant's txid is not this account's charge: it stays pending.
        (e2e(3), theirs.txid, PixOutcome.UNKNOWN_TXID, "com um identificador de cobrança"),
    ]
    for key, txid, outcome, words in cases:
        pix, created = await record(broker, merchant_id=merchant.id, end_to_end_id=key, txid=txid)
        assert created and (pix.outcome, pix.payment_id, pix.txid) == (outcome, None, txid)
        note = await Notification.filter(tipo=received.TO_RECONCILE).order_by("-id").first()
        assert note is not None and words in note.mensagem and note.merchant_id == merchant.id
    assert (await Payment.get(id=theirs.id)).status == PaymentStatus.PENDING
    assert (await balance(merchant), await balance(other)) == (9000, 0)
    await assert_ledger_invariants()


async def test_an_unknown_txid_without_a_known_merchant_records_nothing(broker, merchant) -> None:
    with pytest.raises(NotFoundError, match="no merchant to credit"):
        await record(broker, txid="x" * 25)
    with pytest.raises(NotFoundError):
        await record(broker, txid=None)
    assert not await ReceivedPix.exists() and await balance(merchant) == 0


async def test_refused_input_records_nothing(broker, merchant) -> None:
    bad: list[dict[str, Any]] = [
        {"end_to_end_id": None, "txid": None},  # no key at all
        {"end_to_end_id": None, "txid": "x" * 26},  # a txid key is for pixweb's own txids
        {"txid": "x" * 36},
        {"txid": ""},
        {"end_to_end_id": "txid:abc"},  # the derived keys' namespace
        {"end_to_end_id": "E" * 36},
        {"end_to_end_id": E2E, "amount_cents": 0},
    ]
    for fields in bad:
        with pytest.raises(InvalidInputError):
            await record(broker, merchant_id=merchant.id, **fields)
    with pytest.raises(ControlCharacterError):
        await record(broker, merchant_id=merchant.id, payer_name="a\x00b")
    assert not await ReceivedPix.exists()


# --- exactly once -------------------------------------------------------------------------


async def test_a_repeat_returns_the_record_and_changes_nothing(broker, merchant) -> None:
    payment = await charge(merchant, broker, expires_at=PAST)
    first, created = await record(broker, txid=payment.txid)
    assert created
    async with broker.subscribe(f"account:{merchant.id}") as events:
        # A PSP repeating itself, even with other details, changes nothing.
        again, created = await record(broker, txid=payment.txid, amount_cents=1, paid_at=PAST)
        await assert_no_event(events)
    assert not created and again.id == first.id and again.amount_cents == 3000
    assert await ReceivedPix.all().count() == 1 and await balance(merchant) == 3000
    await assert_ledger_invariants()


@pytest.mark.parametrize("kind", ["matched", "late", "no_txid"])
async def test_fifty_concurrent_recordings_record_and_credit_once(broker, merchant, kind) -> None:
    payment = await charge(merchant, broker, **({"expires_at": PAST} if kind == "late" else {}))
    txid = None if kind == "no_txid" else payment.txid
    async with broker.subscribe(f"payment:{payment.id}") as payment_events:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(record(broker, merchant_id=merchant.id, txid=txid) for _ in range(50))
            ),
            60,
        )
        paid_events = await drain(payment_events)
    assert sorted(created for _, created in results) == [False] * 49 + [True]
    assert {pix.id for pix, _ in results} == {(await ReceivedPix.get()).id}
    assert await Movement.filter(kind=MovementKind.PIX_RECEBIDO).count() == 1
    assert await balance(merchant) == 3000
    assert len(paid_events) == (1 if kind == "matched" else 0)
    await assert_ledger_invariants()


async def test_the_seed_confirmation_without_e2eid_is_keyed_by_its_txid(broker, merchant) -> None:
    payment = await charge(merchant, broker)
    paid, how = await settlement.confirm_payment(
        txid=payment.txid, amount_cents=3000, end_to_end_id=None, broker=broker
    )
    assert how == settlement.Confirmation.SETTLED and paid.end_to_end_id is None
    pix = await ReceivedPix.get()
    assert pix.end_to_end_id == received.txid_key(payment.txid) == f"txid:{payment.txid}"
    assert (pix.outcome, pix.source, pix.payment_id) == ("matched", "confirmation", payment.id)
    # The bank names the Pix afterwards: it may be the same one, so it is not credited twice.
    _, how = await settlement.confirm_payment(
        txid=payment.txid, amount_cents=3000, end_to_end_id=E2E, broker=broker
    )
    assert how == settlement.Confirmation.REPLAYED
    assert await ReceivedPix.all().count() == 1 and await balance(merchant) == 3000
    await assert_ledger_invariants()


async def test_list_is_newest_first_and_pages(broker, merchant) -> None:
    for n in range(5):
        await record(broker, merchant_id=merchant.id, end_to_end_id=e2e(n))
    other = await make_merchant("outra@example.com", name="Outra Loja")
    await record(broker, merchant_id=other.id, end_to_end_id=e2e(9))
    seen, cursor = [], None
    while True:
        page = await received.list_received(merchant.id, limit=2, cursor=cursor)
        seen += [pix.end_to_end_id for pix in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == [e2e(n) for n in reversed(range(5))]
    assert await received.count_to_reconcile(merchant.id) == 5
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert (await received.list_received(merchant.id, since=future)).items == []
