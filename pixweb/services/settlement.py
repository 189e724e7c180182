"""Settling a charge: the bank's confirmation, or a merchant paying it from its balance.

Both mark the payment paid with one conditional UPDATE and move the money in the same
transaction, so a charge is settled, and its merchant credited, exactly once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb import money, validation
from pixweb.broker import Broker
from pixweb.errors import ConflictError, NotFoundError, UnprocessableError
from pixweb.models import Merchant, Movement, MovementKind, Notification, Payment, PaymentStatus
from pixweb.pix import brcode
from pixweb.services import ledger
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel
from pixweb.services.payments import status_event


class Confirmation(StrEnum):
    """What a bank confirmation did to its charge."""

    SETTLED = "settled"  # it paid the charge and credited the merchant
    REPLAYED = "replayed"  # the bank repeated the confirmation that paid it: nothing changed
    # Paid from a pixweb balance before the bank's Pix arrived: that Pix is money of its
    # own (recorded as a received Pix by the PSP work); here the merchant is told, not paid.
    ALREADY_SETTLED_BY_BALANCE = "already_settled_by_balance"


PIX_ON_PAID_CHARGE = "pix_cobranca_ja_paga"  # the notification's `tipo`
PIX_ON_PAID_CHARGE_MESSAGE = (
    "O banco confirmou um Pix de {valor} para uma cobrança já paga com saldo. "
    "Esse valor não foi creditado: confira com o banco."
)


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
) -> tuple[Payment, Confirmation]:
    """Mark a payment paid by its txid and credit its merchant, exactly once; say how.

    Any number of concurrent confirmations change the row once (a conditional UPDATE in
    the same transaction as the credit); the others read it back as paid.
    """
    validation.check_text("bank_payment_id", txid)
    if end_to_end_id is not None:
        validation.check_text("end_to_end_id", end_to_end_id)
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
        return payment, Confirmation.SETTLED
    await payment.refresh_from_db()  # someone else settled or changed it: what is it now?
    if payment.status != PaymentStatus.PAID:
        raise ConflictError(f"payment is {payment.status_at(now)} and cannot be confirmed")
    if await _paid_from_a_balance(payment):
        await _tell_of_pix_on_paid_charge(payment, end_to_end_id, broker=broker)
        return payment, Confirmation.ALREADY_SETTLED_BY_BALANCE
    if end_to_end_id and payment.end_to_end_id and end_to_end_id != payment.end_to_end_id:
        raise ConflictError("payment already settled by another end_to_end_id")
    return payment, Confirmation.REPLAYED


async def _paid_from_a_balance(payment: Payment) -> bool:
    """Whether a paid charge was settled by `pay_brcode` (its payer's debit says so)."""
    if payment.end_to_end_id is not None:
        return False  # only the bank's confirmation records one
    reference = f"payment:{payment.id}"
    return await Movement.exists(reference=reference, kind=MovementKind.PAGAMENTO)


async def _tell_of_pix_on_paid_charge(
    payment: Payment, end_to_end_id: str | None, *, broker: Broker
) -> None:
    """Notify the merchant, once per charge and end_to_end_id, that the bank confirmed a
    Pix for a charge already paid from a balance: not credited, but not forgotten."""
    reference, outbox = f"payment:{payment.id}", Outbox()
    async with in_transaction():
        # The payment's row lock makes concurrent repeats wait (PostgreSQL; SQLite
        # runs one transaction at a time), so the check below sees the first one's notice.
        await Payment.filter(id=payment.id).select_for_update().first()
        told = await Notification.filter(merchant_id=payment.merchant_id, tipo=PIX_ON_PAID_CHARGE)
        seen = {(n.dados.get("referencia"), n.dados.get("end_to_end_id")) for n in told}
        if (reference, end_to_end_id) in seen:
            return
        notification = await Notification.create(
            merchant_id=payment.merchant_id,
            tipo=PIX_ON_PAID_CHARGE,
            mensagem=PIX_ON_PAID_CHARGE_MESSAGE.format(
                valor=money.format_brl(payment.amount_cents)
            ),
            dados={
                "valor": money.format_amount(payment.amount_cents),
                "referencia": reference,
                "cobranca": str(payment.id),
                "end_to_end_id": end_to_end_id,
            },
            created_at=utcnow(),
        )
        event = {
            "type": "notification",
            "merchant_id": payment.merchant_id,
            "notification": ledger.notification_dict(notification),
        }
        outbox.add(account_channel(payment.merchant_id), event)
    await outbox.publish(broker)


async def pay_brcode(
    payer: Merchant, code: str, *, broker: Broker, idempotency_key: str | None = None
) -> tuple[Movement, bool]:
    """Pay a pixweb charge from the payer's balance: debit, credit and mark paid at once.

    Returns the payer's movement and whether it is new (False: an idempotent replay).
    """
    validation.check_text("brcode", code)
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
