"""Settling a charge: the bank's confirmation, or a merchant paying it from its balance.

Both mark the payment paid with one conditional UPDATE and move the money in the same
transaction, so a charge is settled, and its merchant credited, exactly once.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb.broker import Broker
from pixweb.errors import ConflictError, NotFoundError, UnprocessableError
from pixweb.models import Merchant, Movement, MovementKind, Payment, PaymentStatus
from pixweb.pix import brcode
from pixweb.services import ledger
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox
from pixweb.services.payments import status_event


async def _mark_paid(payment: Payment, now: datetime, end_to_end_id: str | None) -> bool:
    """Pending and unexpired -> paid, as one conditional UPDATE: true for the one winner.

    The winner's `payment` then holds what it wrote, so the paid announcement built from
    it (`status_event`) carries the state a page renders, whichever path settled it.
    """
    try:
        updated = await Payment.filter(
            id=payment.id, status=PaymentStatus.PENDING, expires_at__gt=now
        ).update(status=PaymentStatus.PAID, paid_at=now, end_to_end_id=end_to_end_id)
    except IntegrityError as exc:
        raise ConflictError("end_to_end_id already settled another payment") from exc
    if updated:
        payment.status, payment.paid_at = PaymentStatus.PAID, now
        payment.end_to_end_id = end_to_end_id
    return bool(updated)


async def confirm_payment(
    *, txid: str, amount_cents: int, end_to_end_id: str | None, broker: Broker
) -> Payment:
    """Mark a payment paid by its txid and credit its merchant, exactly once.

    Any number of concurrent confirmations change the row once (a conditional UPDATE in
    the same transaction as the credit); the others read it back as paid.
    """
    payment = await Payment.get_or_none(txid=txid)
    if payment is None:
        raise NotFoundError("no payment with this bank_payment_id")
    if amount_cents != payment.amount_cents:
        raise UnprocessableError(
            "value differs from the payment's amount", fields={"value": "does not match"}
        )
    now, outbox = utcnow(), Outbox()
    async with in_transaction():
        if settled := await _mark_paid(payment, now, end_to_end_id):
            receiver = await ledger.get_account(payment.merchant_id)
            await ledger.apply_movement(
                receiver,
                MovementKind.PIX_RECEBIDO,
                payment.amount_cents,
                outbox=outbox,
                now=now,
                reference=f"payment:{payment.id}",
                counterpart=end_to_end_id,
                description=payment.description,
            )
            status_event(payment, outbox)
    if settled:
        await outbox.publish(broker)
        return payment
    await payment.refresh_from_db()  # someone else settled or changed it: what is it now?
    if payment.status == PaymentStatus.PAID:
        if end_to_end_id and payment.end_to_end_id and end_to_end_id != payment.end_to_end_id:
            raise ConflictError("payment already settled by another end_to_end_id")
        return payment
    raise ConflictError(f"payment is {payment.status_at(now)} and cannot be confirmed")


async def pay_brcode(
    payer: Merchant, code: str, *, broker: Broker, idempotency_key: str | None = None
) -> tuple[Movement, bool]:
    """Pay a pixweb charge from the payer's balance: debit, credit and mark paid at once.

    Returns the payer's movement and whether it is new (False: an idempotent replay).
    """
    source = await ledger.get_account(payer.id)

    async def work(outbox: Outbox, idempotency: ledger.Idempotency) -> Movement:
        payment = await _pixweb_charge(code)
        if payment.merchant_id == payer.id:
            raise UnprocessableError("cannot pay your own charge", fields={"brcode": "your own"})
        now = utcnow()
        # Row order: the payment, then accounts by id (as transfers), so no deadlock.
        if not await _mark_paid(payment, now, None):
            await payment.refresh_from_db()
            raise ConflictError(f"payment is {payment.status_at(now)} and cannot be paid")
        target = await ledger.get_account(payment.merchant_id)
        legs: list[ledger.Leg] = [
            (source, MovementKind.PAGAMENTO, -payment.amount_cents, payment.merchant.name),
            (target, MovementKind.PIX_RECEBIDO, payment.amount_cents, payer.name),
        ]
        movement = await ledger.apply_legs(
            legs,
            outbox=outbox,
            now=now,
            reference=f"payment:{payment.id}",
            description=payment.description,
            idempotency=idempotency,
        )
        status_event(payment, outbox)
        return movement

    fingerprint = ledger.request_hash("pay", code.strip())
    return await ledger.once(source, idempotency_key, fingerprint, work, broker=broker)


async def _pixweb_charge(code: str) -> Payment:
    """The pixweb charge a pasted code stands for; UnprocessableError for anything else."""
    decoded = brcode.decode(code)
    if decoded.errors:
        problems = "; ".join(issue.message for issue in decoded.errors)
        raise UnprocessableError(f"invalid BR Code: {problems}", fields={"brcode": problems})
    payment = await Payment.get_or_none(txid=decoded.txid or "").select_related("merchant")
    # The whole code must be ours: a valid code that merely reuses a txid is someone else's.
    if payment is None or payment.brcode != decoded.payload:
        raise UnprocessableError(
            "external payments not supported: this code is not a pixweb charge",
            fields={"brcode": "not a pixweb charge"},
        )
    return payment
