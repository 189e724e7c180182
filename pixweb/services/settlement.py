"""Settling a charge: the bank's confirmation, or a merchant paying it from its balance.

The bank's Pix is recorded through `received` (the one path for a received Pix), which
credits it once and marks its charge paid if it matches; this module says what that did
to the charge. Paying from a balance marks the charge paid (`received.mark_paid`, one
conditional UPDATE) and moves the money in the same transaction. Either way a charge is
settled, and its merchant credited for it, exactly once.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise.transactions import in_transaction

from pixweb import money, validation
from pixweb.broker import Broker
from pixweb.errors import ConflictError, NotFoundError, UnprocessableError
from pixweb.models import (
    PAID_STATES,
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
from pixweb.pix import brcode
from pixweb.services import ledger, received, sql
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel
from pixweb.services.payments import status_event


class Confirmation(StrEnum):
    """What a bank confirmation did to its charge."""

    SETTLED = "settled"  # it paid the charge and credited the merchant
    REPLAYED = "replayed"  # the bank repeated the confirmation that paid it: nothing changed
    # Paid from a pixweb balance before the bank's Pix arrived: that Pix is money of its
    # own, recorded and credited as a `duplicate` received Pix when it names its
    # end_to_end_id; without one it cannot be told from a repeat: the merchant is told.
    ALREADY_SETTLED_BY_BALANCE = "already_settled_by_balance"


class PixToReconcileError(ConflictError):
    """The charge could not take this Pix (expired, cancelled, paid by another): the Pix
    was recorded and credited as a received Pix to reconcile."""

    def __init__(self, detail: str, *, received: ReceivedPix) -> None:
        super().__init__(f"{detail}: recorded as a received Pix to reconcile ({received.outcome})")
        self.received = received


class AmountToReconcileError(UnprocessableError):
    """A Pix of another amount than its charge's: recorded and credited, to reconcile."""

    def __init__(self, *, received: ReceivedPix) -> None:
        super().__init__(
            "value differs from the payment's amount: recorded as a received Pix to reconcile"
            f" ({received.outcome})",
            fields={"value": "does not match"},
        )
        self.received = received


PIX_ON_PAID_CHARGE = "pix_cobranca_ja_paga"  # the notification's `tipo`
PIX_ON_PAID_CHARGE_MESSAGE = (
    "O banco confirmou um Pix de {valor} para uma cobrança já paga com saldo. "
    "Esse valor não foi creditado: confira com o banco."
)


async def confirm_payment(
    *, txid: str, amount_cents: int, end_to_end_id: str | None, broker: Broker
) -> tuple[Payment, Confirmation]:
    """Record the bank's Pix for a charge through `received` (the one path), and say what
    it did to the charge; a Pix the charge cannot take raises an error carrying its record.

    Any number of concurrent confirmations record, credit and settle once: the others read
    the record back. Without an end_to_end_id a Pix cannot be told from a repeat, so only
    one that pays its charge is recorded (keyed by the txid); the others answer as before,
    recording nothing. A txid naming no charge is a 404: there is no merchant to credit.
    """
    validation.check_text("bank_payment_id", txid)
    if end_to_end_id is not None:
        validation.check_text("end_to_end_id", end_to_end_id)
    payment = await sql.get_or_none(Payment, txid=txid)
    if payment is None:
        raise NotFoundError("no payment with this bank_payment_id")
    if end_to_end_id is None or await _settled_unnamed(payment):
        # Unnamed, or the Pix that settled the charge named no end_to_end_id: this one may
        # be that Pix told again, so it is answered as before and never credited twice.
        return await _confirm_unnamed(payment, amount_cents, end_to_end_id, broker=broker)
    record, created = await received.record_received_pix(
        received.incoming(
            end_to_end_id=end_to_end_id,
            amount_cents=amount_cents,
            txid=txid,
            paid_at=utcnow(),
            source=PixSource.CONFIRMATION,
        ),
        broker=broker,
        payment=payment,
    )
    return await _answer(payment, record, created, amount_cents)


async def _settled_unnamed(payment: Payment) -> bool:
    """Whether a bank confirmation without end_to_end_id paid this charge."""
    if payment.status == PaymentStatus.PENDING:
        # A matched record marks its charge paid in its own transaction, and a paid charge
        # never turns pending again: read pending, none had settled it (no SELECT).
        return False
    key = received.txid_key(payment.txid)
    query = ReceivedPix.filter(end_to_end_id=key, payment_id=payment.id)
    return await query.filter(outcome=PixOutcome.MATCHED).exists()


async def _confirm_unnamed(
    payment: Payment, amount_cents: int, end_to_end_id: str | None, *, broker: Broker
) -> tuple[Payment, Confirmation]:
    if amount_cents != payment.amount_cents:
        raise UnprocessableError(
            "value differs from the payment's amount", fields={"value": "does not match"}
        )
    if payment.status_at(utcnow()) == PaymentStatus.PENDING:
        record, created = await received.record_received_pix(
            received.incoming(
                end_to_end_id=None,
                amount_cents=amount_cents,
                txid=payment.txid,
                paid_at=utcnow(),
                source=PixSource.CONFIRMATION,
            ),
            broker=broker,
            payment=payment,
        )
        return await _answer(payment, record, created, amount_cents)
    await payment.refresh_from_db()
    if payment.status not in PAID_STATES:  # refunds since do not make it unpaid
        raise ConflictError(f"payment is {payment.status_at(utcnow())} and cannot be confirmed")
    if await _paid_from_a_balance(payment):
        await _tell_of_pix_on_paid_charge(payment, end_to_end_id, broker=broker)
        return payment, Confirmation.ALREADY_SETTLED_BY_BALANCE
    return payment, Confirmation.REPLAYED


async def _answer(
    payment: Payment, record: ReceivedPix, created: bool, amount_cents: int
) -> tuple[Payment, Confirmation]:
    """What a recorded Pix did to the confirmation's charge: a new one and its repeats
    answer alike."""
    if record.txid != payment.txid:
        raise ConflictError("end_to_end_id already recorded for another payment")
    if record.amount_cents != amount_cents:
        raise UnprocessableError(
            "value differs from the Pix recorded with this end_to_end_id",
            fields={"value": "does not match"},
        )
    if created and record.outcome == PixOutcome.MATCHED and record.payment_id == payment.id:
        # `received` settled this very object (`mark_paid` keeps what it wrote): no re-read.
        return payment, Confirmation.SETTLED
    await payment.refresh_from_db()
    if record.outcome == PixOutcome.MATCHED:
        if record.payment_id != payment.id:
            raise PixToReconcileError("this Pix was attached to another payment", received=record)
        return payment, Confirmation.SETTLED if created else Confirmation.REPLAYED
    if record.outcome == PixOutcome.AMOUNT_MISMATCH:
        raise AmountToReconcileError(received=record)
    if record.outcome == PixOutcome.DUPLICATE and await _paid_from_a_balance(payment):
        return payment, Confirmation.ALREADY_SETTLED_BY_BALANCE
    if record.outcome == PixOutcome.DUPLICATE:
        raise PixToReconcileError("payment already settled by another Pix", received=record)
    status = payment.status_at(utcnow())
    raise PixToReconcileError(f"payment is {status} and cannot be confirmed", received=record)


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
        payment = await pixweb_charge(code)
        if payment.merchant_id == payer.id:
            raise UnprocessableError("cannot pay your own charge", fields={"brcode": "your own"})
        now = utcnow()
        # Row order: the payment, then accounts by id (as transfers), so no deadlock.
        if not await received.mark_paid(payment, now, None, outbox=outbox):
            await payment.refresh_from_db()
            raise ConflictError(f"payment is {payment.status_at(now)} and cannot be paid")
        target = await ledger.get_account(payment.merchant_id)
        legs: list[ledger.Leg] = [
            (source, MovementKind.PAGAMENTO, -payment.amount_cents, payment.merchant.name),
            (target, MovementKind.PIX_RECEBIDO, payment.amount_cents, payer.name),
        ]
        movement, _ = await ledger.apply_legs(
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


async def pixweb_charge(code: str) -> Payment:
    """The pixweb charge a pasted code stands for; UnprocessableError for anything else."""
    decoded = brcode.decode(code)
    if decoded.errors:
        problems = "; ".join(issue.message for issue in decoded.errors)
        raise UnprocessableError(f"invalid BR Code: {problems}", fields={"brcode": problems})
    charges = Payment.all().select_related("merchant")
    if decoded.txid in (None, "***"):
        # A dynamic code (a charge made at a PSP) names its txid only behind its location
        # URL: the code itself, as the PSP gave it, is what pixweb stored.
        payment = await charges.get_or_none(brcode=decoded.payload)
    else:
        payment = await charges.get_or_none(txid=decoded.txid)
    # The whole code must be ours: a valid code that merely reuses a txid is someone else's.
    if payment is None or payment.brcode != decoded.payload:
        raise UnprocessableError(
            "external payments not supported: this code is not a pixweb charge",
            fields={"brcode": "not a pixweb charge"},
        )
    return payment
