"""The ledger under load: exactly-once credits, no overdraft, no deadlock, paying from a balance."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from pixweb.models import (
    Account,
    Movement,
    MovementKind,
    Notification,
    Payment,
    PaymentStatus,
    PixOutcome,
    ReceivedPix,
    Refund,
    RefundStatus,
)
from pixweb.pix.brcode import crc16
from pixweb.services import ledger
from pixweb.services.events import Outbox
from tests.api.test_accounts import OTHER, balance, move, moved
from tests.api.test_payments import assert_error, assert_no_event, create
from tests.conftest import bearer, make_merchant

K = MovementKind
CREDITS = {K.DEPOSITO, K.TRANSFERENCIA_RECEBIDA, K.PIX_RECEBIDO, K.DEVOLUCAO_ESTORNADA}
EXTERNAL = {K.DEPOSITO, K.SAQUE, K.PIX_RECEBIDO, K.DEVOLUCAO, K.DEVOLUCAO_ESTORNADA}
PAID = {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
NAME = "Padaria São João"
BCB_EXAMPLE = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR"
    "5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)


async def assert_ledger_invariants() -> None:
    """Check the whole ledger from the database.

    Per account: ordered by id, each balance_after is the previous one plus the amount,
    never negative, from zero up to the balance. Across accounts: a transfer is two legs
    that cancel out, a payment from a balance is a pagamento cancelled by its pix_recebido,
    so the balances add up to deposits - withdrawals + PIX received from the bank. Every
    paid payment is credited exactly once; every movement has one notification, its owner's.
    Every received Pix has exactly one pix_recebido movement, its own; every bank credit
    (a pix_recebido with no paying leg) has its received Pix.
    """
    all_accounts = await Account.all()
    moves = await Movement.all().order_by("id")
    owner = {account.id: account.merchant_id for account in all_accounts}
    by_account: dict[int, list[Movement]] = defaultdict(list)
    by_reference: dict[str, list[Movement]] = defaultdict(list)
    for m in moves:
        assert m.kind == K.ESTORNO or (m.amount_cents > 0) == (m.kind in CREDITS), m.id
        by_account[m.account_id].append(m)
        by_reference[m.reference or f"none:{m.id}"].append(m)
    for account in all_accounts:
        running = 0
        for m in by_account[account.id]:
            running += m.amount_cents
            assert m.balance_after_cents == running >= 0, (account.id, m.id)
        assert account.balance_cents == running, account.id
    for reference, legs in by_reference.items():
        kinds = sorted(m.kind for m in legs)
        if reference.startswith("transfer:"):
            assert kinds == [K.TRANSFERENCIA_ENVIADA, K.TRANSFERENCIA_RECEBIDA], reference
        if reference.startswith("payment:") and len(legs) > 1:
            assert kinds == [K.PAGAMENTO, K.PIX_RECEBIDO], reference
        if reference.startswith("refund:"):  # a debit, its credit back, or an estorno pair
            assert kinds in ([K.DEVOLUCAO], [K.DEVOLUCAO, K.DEVOLUCAO_ESTORNADA], [K.ESTORNO] * 2)
            accounts = {m.account_id for m in legs}
            assert len(legs) == 1 or sum(m.amount_cents for m in legs) == 0, reference
            assert len(accounts) == (2 if kinds[0] == K.ESTORNO else 1), reference
        elif len(legs) > 1:
            assert sum(m.amount_cents for m in legs) == 0 and len({m.account_id for m in legs}) == 2
    # From outside: deposits, withdrawals and bank-confirmed PIX (a credit with no paying leg).
    outside = [m for m in moves if m.kind in EXTERNAL and len(by_reference[m.reference or ""]) < 2]
    assert sum(a.balance_cents for a in all_accounts) == sum(m.amount_cents for m in outside)
    records = await ReceivedPix.all()
    attached = {r.payment_id: r for r in records if r.original_outcome is not None}
    for payment in await Payment.all():  # paid: credited exactly once, to its merchant
        legs = by_reference[f"payment:{payment.id}"]
        credits = [(owner[m.account_id], m.amount_cents) for m in legs if m.amount_cents > 0]
        paid = payment.status in PAID
        if payment.id in attached:  # paid by a received Pix its merchant attached: credited then
            assert paid and credits == [], payment
            continue
        assert credits == ([(payment.merchant_id, payment.amount_cents)] if paid else []), payment
    assert sum(1 for r in records if r.original_outcome is not None) == len(attached)
    by_id = {m.id: m for m in moves}
    assert len({r.movement_id for r in records}) == len(records)  # one movement each
    for r in records:
        m = by_id[r.movement_id]
        assert (m.kind, m.amount_cents, owner[m.account_id]) == (
            K.PIX_RECEBIDO,
            r.amount_cents,
            r.merchant_id,
        ), r.end_to_end_id
        paid_it = r.outcome == PixOutcome.MATCHED and r.original_outcome is None
        assert m.reference == (f"payment:{r.payment_id}" if paid_it else f"pix:{r.end_to_end_id}")
    bank = [
        m.id for m in moves if m.kind == K.PIX_RECEBIDO and len(by_reference[m.reference or ""]) < 2
    ]
    assert sorted(bank) == sorted(r.movement_id for r in records)
    # A notice that moved no money (a bank Pix for a charge already paid) has no movement.
    notes = [n for n in await Notification.all() if "movimento" in n.dados]
    assert sorted(n.dados["movimento"] for n in notes) == [m.id for m in moves]
    owner_of = {m.id: owner[m.account_id] for m in moves}
    assert all(n.merchant_id == owner_of[n.dados["movimento"]] for n in notes)
    await _assert_refund_invariants(records, by_reference)


async def _assert_refund_invariants(
    records: list[ReceivedPix], by_reference: dict[str, list[Movement]]
) -> None:
    """A refund's amount left once (unless seen only once failed), came back only if it
    failed; the refunds of a Pix never exceed it; a charge shows what its refunds gave back."""
    refunds = await Refund.all()
    for r in refunds:
        kinds = sorted(m.kind for m in by_reference[f"refund:{r.id}"])
        failed, debited = r.status == RefundStatus.FAILED, r.movement_id is not None
        assert (r.credit_movement_id is not None) == (failed and debited), r.id
        assert len(kinds) == (2 if failed and debited or r.kind == "estorno" else int(debited))
    amount = {record.id: record.amount_cents for record in records}
    for pix_id, total in amount.items():
        refunded = [r for r in refunds if r.received_pix_id == pix_id and r.status != "failed"]
        assert sum(r.amount_cents for r in refunded) <= total, pix_id
    for payment in await Payment.all():
        made = [r for r in refunds if r.payment_id == payment.id and r.status == "refunded"]
        assert payment.refunded_cents == sum(r.amount_cents for r in made), payment.id
        assert payment.refunded_cents <= payment.amount_cents, payment.id


async def state() -> tuple[Any, ...]:
    """Everything a refused operation must leave alone."""
    return (
        await Account.all().order_by("id").values_list("id", "balance_cents"),
        await Movement.all().count(),
        await Notification.all().count(),
        await Payment.all().order_by("id").values_list("id", "status", "paid_at"),
    )


@pytest.fixture
async def other(app: Any) -> Any:
    return await make_merchant(OTHER, name="Mercado Bom Preço", pix_key=OTHER)


@pytest.fixture
def other_auth(other: Any, config: Any) -> dict[str, str]:
    return bearer(other, config)


# --- transactions --------------------------------------------------------------------------


async def test_a_rolled_back_transaction_takes_its_movement_along(merchant) -> None:
    account = await ledger.get_account(merchant.id)
    with pytest.raises(RuntimeError):
        async with in_transaction():
            now = datetime.now(UTC)
            await ledger.apply_movement(account, K.DEPOSITO, 500, outbox=Outbox(), now=now)
            raise RuntimeError("after the movement")
    assert await balance(merchant) == 0
    assert (await Movement.all().count(), await Notification.all().count()) == (0, 0)


# --- concurrency --------------------------------------------------------------------------


async def at_once(calls: list[Any]) -> list[Any]:
    """Run requests concurrently; a deadlock fails the test after a minute instead of hanging."""
    return await asyncio.wait_for(asyncio.gather(*calls), 60)


async def test_concurrent_withdrawals_of_the_whole_balance_succeed_once(client, auth) -> None:
    await moved(client, auth, "deposits", value="100.00")
    responses = await at_once(
        [move(client, auth, "withdrawals", value="100.00") for _ in range(100)]
    )
    assert sorted(r.status_code for r in responses) == [201] + [422] * 99
    for response in [r for r in responses if r.status_code == 422]:
        await assert_error(response, 422, "insufficient_funds", "value")
    assert await Movement.filter(kind=K.SAQUE).count() == 1
    await assert_ledger_invariants()


@pytest.mark.parametrize(("mine", "theirs"), [("100.00", "100.00"), ("10.00", None)])
async def test_opposite_transfers_neither_deadlock_nor_lose_money(
    client, merchant, auth, other, other_auth, mine, theirs
) -> None:
    await moved(client, auth, "deposits", value=mine)
    if theirs:
        await moved(client, other_auth, "deposits", value=theirs)
    total = await balance(merchant) + await balance(other)
    back = {"to_email": "loja@example.com", "value": "1.00"}
    calls = []
    for _ in range(50):  # interleaved A->B and B->A
        calls += [move(client, auth, "transfers", value="1.00")]
        calls += [move(client, other_auth, "transfers", **back)]
    statuses = {r.status_code for r in await at_once(calls)}
    assert statuses == {201} if theirs else statuses <= {201, 422}
    assert await balance(merchant) + await balance(other) == total
    if theirs:
        assert (await balance(merchant), await balance(other)) == (10000, 10000)
    await assert_ledger_invariants()


async def test_concurrent_bank_confirmations_credit_once(client, merchant, auth, sign) -> None:
    payment = await create(client, auth, value="100.00")
    body, headers = sign({"bank_payment_id": payment["bank_payment_id"], "value": "100.00"})
    confirm = "/payments/pix/confirmation"
    responses = await at_once([client.post(confirm, data=body, headers=headers) for _ in range(50)])
    assert {r.status_code for r in responses} == {200}
    assert await balance(merchant) == 10000
    assert await Movement.filter(kind=K.PIX_RECEBIDO).count() == 1
    await assert_ledger_invariants()


async def test_a_mixed_burst_keeps_the_ledger_whole(
    client, sign, auth, other, other_auth, charge
) -> None:
    body, signature = sign({"bank_payment_id": charge["bank_payment_id"], "value": "100.00"})
    await moved(client, auth, "deposits", value="20.00")
    await moved(client, other_auth, "deposits", value="20.00")
    back = {"to_email": "loja@example.com"}
    calls = [client.post("/payments/pix/confirmation", data=body, headers=signature)]
    for n in range(10):
        value = f"{n + 1}.00"
        calls += [move(client, auth, "withdrawals", value=value)]
        calls += [move(client, auth, "transfers", value=value)]
        calls += [move(client, other_auth, "transfers", value=value, **back)]
        calls += [move(client, other_auth, "deposits", value=value)]
        calls += [pay(client, other_auth, charge["brcode"])]
    assert {r.status_code for r in await at_once(calls)} <= {200, 201, 409, 422}
    assert (await Payment.get(id=charge["id"])).status == PaymentStatus.PAID
    await assert_ledger_invariants()


# --- paying a pixweb charge from the balance ----------------------------------------------


async def pay(client: Any, headers: dict[str, str], code: str) -> Any:
    return await client.post("/accounts/me/payments", json={"brcode": code}, headers=headers)


@pytest.fixture
async def charge(client: Any, auth: dict[str, str]) -> dict[str, Any]:
    """A pending R$ 100,00 charge of `merchant`, to be paid by `other`."""
    return await create(client, auth, value="100.00", description="Pedido 7")


async def test_paying_a_charge_moves_the_money_and_marks_it_paid(
    client, broker, merchant, other, other_auth, charge
) -> None:
    await moved(client, other_auth, "deposits", value="150.00")
    async with broker.subscribe(f"payment:{charge['id']}") as events:
        response = await pay(client, other_auth, charge["brcode"])
        assert response.status_code == 201
        event = await asyncio.wait_for(anext(events), 1)
    assert (event["type"], event["payment_id"]) == ("payment.paid", charge["id"])
    debit, reference = await response.get_json(), f"payment:{charge['id']}"
    fields = ["kind", "amount", "balance_after", "reference", "counterpart", "description"]
    assert [debit[f] for f in fields] == [
        "pagamento",
        "-100.00",
        "50.00",
        reference,
        NAME,
        "Pedido 7",
    ]
    [credit] = await Movement.filter(account__merchant_id=merchant.id)
    got = [credit.kind, credit.amount_cents, credit.reference, credit.counterpart]
    assert got == [K.PIX_RECEBIDO, 10000, reference, "Mercado Bom Preço"]
    stored = await Payment.get(id=charge["id"])
    assert stored.status == PaymentStatus.PAID and stored.paid_at is not None
    assert (await balance(merchant), await balance(other)) == (10000, 5000)
    await assert_ledger_invariants()


def _altered_amount(code: str) -> str:
    body = code[:-4].replace("5406100.00", "5406099.99")
    assert body != code[:-4]
    return body + crc16(body.encode())


REFUSED = {  # case: (code from the charge's code, words of the detail, payer is its merchant)
    "crc mismatch": (lambda code: code[:-4] + ("0000" if code[-4:] != "0000" else "FFFF"), "CRC"),
    "not a BR Code": (lambda code: "pague-me", "invalid BR Code"),
    "external": (lambda code: BCB_EXAMPLE, "external payments not supported"),
    "altered amount": (_altered_amount, "external payments not supported"),
    "own charge": (lambda code: code, "own charge"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_codes_that_are_not_anothers_charge_are_refused(
    client, auth, other_auth, charge, case
) -> None:
    payer = auth if case == "own charge" else other_auth
    await moved(client, payer, "deposits", value="150.00")
    before = await state()
    altered, words = REFUSED[case]
    response = await pay(client, payer, altered(charge["brcode"]))
    assert words in (await assert_error(response, 422, "unprocessable", "brcode"))["detail"]
    assert await state() == before
    await assert_ledger_invariants()


async def test_insufficient_balance_changes_nothing(
    client, broker, merchant, other, other_auth, charge
) -> None:
    await moved(client, other_auth, "deposits", value="99.99")
    before = await state()
    channels = [f"payment:{charge['id']}", f"account:{merchant.id}", f"account:{other.id}"]
    async with (
        broker.subscribe(channels[0]) as a,
        broker.subscribe(channels[1]) as b,
        broker.subscribe(channels[2]) as c,
    ):
        response = await pay(client, other_auth, charge["brcode"])
        await assert_error(response, 422, "insufficient_funds")
        for events in (a, b, c):
            await assert_no_event(events)
    assert await state() == before
    assert (await Payment.get(id=charge["id"])).status == PaymentStatus.PENDING


@pytest.mark.parametrize("status", ["paid", "expired", "cancelled"])
async def test_a_charge_no_longer_pending_is_a_conflict(
    client, auth, other_auth, sign, charge, status
) -> None:
    await moved(client, other_auth, "deposits", value="150.00")
    if status == "paid":
        body, headers = sign({"bank_payment_id": charge["bank_payment_id"], "value": "100.00"})
        response = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    elif status == "cancelled":
        response = await client.post(f"/payments/{charge['id']}/cancel", headers=auth)
    if status == "expired":
        await Payment.filter(id=charge["id"]).update(expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    else:
        assert response.status_code == 200
    before = await state()
    body = await assert_error(await pay(client, other_auth, charge["brcode"]), 409, "conflict")
    assert status in body["detail"]
    assert await state() == before
    await assert_ledger_invariants()


async def test_concurrent_payers_of_one_charge_pay_it_once(
    client, config, merchant, other_auth, charge
) -> None:
    email = "terceira@example.com"
    third = bearer(await make_merchant(email, pix_key=email), config)
    for headers in (other_auth, third):
        await moved(client, headers, "deposits", value="500.00")
    responses = await at_once(
        [pay(client, h, charge["brcode"]) for _ in range(10) for h in (other_auth, third)]
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    assert await balance(merchant) == 10000
    assert await Movement.filter(kind=K.PAGAMENTO).count() == 1
    await assert_ledger_invariants()


async def test_payment_idempotency_key(client, auth, other_auth, charge) -> None:
    await moved(client, other_auth, "deposits", value="300.00")
    headers = {**other_auth, "Idempotency-Key": "pay-1"}
    first = await pay(client, headers, charge["brcode"])
    again = await pay(client, headers, f" {charge['brcode']} ")
    assert (first.status_code, again.status_code) == (201, 200)
    assert await first.get_json() == await again.get_json()
    second = await create(client, auth, value="100.00")
    before = await state()
    await assert_error(await pay(client, headers, second["brcode"]), 409, "conflict")
    assert await state() == before
    await assert_ledger_invariants()
