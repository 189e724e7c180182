"""Refunds: the rules, the ledger's debit and credit-back; their states in `refund_states`.

A refund of a received Pix goes through the merchant's PSP (`PUT /pix/{e2eid}/devolucao/{id}`)
with an id chosen and stored here first, so a retry after a timeout reuses it and the PSP
refunds once. Its amount leaves the balance when it is requested (a conditional debit in the
transaction that records it) and comes back only if the PSP answers NAO_REALIZADO. Each state
change is one conditional UPDATE on the refund's status (`refund_states.settle`), the one
path the request, the PSP's webhook and reconciliation's polling all take: whatever order and
however often they report it, the money moves once.

Without a PSP (static codes confirmed through the seed's route) the merchant refunds in its
bank app and records it here (`external`): the ledger moves the same way, refunded at once. A
charge paid from a pixweb balance is reversed inside the ledger (an `estorno` pair).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb import money, validation
from pixweb.broker import Broker
from pixweb.errors import ConflictError, NotFoundError, PixwebError, UnprocessableError
from pixweb.models import (
    PAID_STATES,
    Movement,
    MovementKind,
    Payment,
    PixOutcome,
    ReceivedPix,
    Refund,
    RefundKind,
    RefundStatus,
)
from pixweb.psp.schemas import DevolucaoNatureza
from pixweb.services import ledger, refund_states
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox
from pixweb.services.psp_clients import PspClients
from pixweb.services.refund_states import confirm_reported as confirm_reported
from pixweb.services.refund_states import poll_in_process as poll_in_process
from pixweb.services.refund_states import refund_dict as refund_dict

REFUND_WINDOW = timedelta(days=90)  # the BCB's: a Pix is refunded within 90 days
_PSP_E2EID = re.compile(r"[a-zA-Z0-9]{32,35}")


class RefundExceedsError(UnprocessableError):
    code = "refund_exceeds_pix"


class RefundTooLateError(UnprocessableError):
    code = "refund_too_late"


class ExternalRefundError(UnprocessableError):
    """`external` does not fit how this Pix is refunded (required without a PSP, refused
    where pixweb refunds it itself)."""

    code = "refund_external"


@dataclass(frozen=True)
class Request:
    """What the merchant asked: `value_cents` None refunds what is left."""

    value_cents: int | None = None
    description: str | None = None
    external: bool = False
    idempotency_key: str | None = None


# -- asking for a refund ----------------------------------------------------------------


async def refund_payment(
    merchant_id: int, payment_id: UUID, request: Request, *, clients: PspClients, broker: Broker
) -> tuple[Refund, bool]:
    """Refund a paid charge (its Pix, or its balance payment); return it and whether new."""
    payment = await Payment.get_or_none(id=payment_id, merchant_id=merchant_id)
    if payment is None:
        raise NotFoundError("payment not found")
    fingerprint = ledger.request_hash("refund", "payment", str(payment_id), *_parts(request))
    if replayed := await _replay(merchant_id, request, fingerprint, clients, broker):
        return replayed, False
    if payment.status not in PAID_STATES:
        raise ConflictError(f"payment is {payment.status_at(utcnow())}: nothing to refund")
    if await _paid_by(payment) is not None:
        if request.external:
            raise ExternalRefundError(
                "a charge paid from a pixweb balance is reversed inside pixweb: omit external",
                fields={"external": "not for a charge paid from a balance"},
            )
        return await _start(merchant_id, None, payment, request, fingerprint, clients, broker)
    record = await ReceivedPix.get_or_none(payment_id=payment.id, outcome=PixOutcome.MATCHED)
    if record is None:
        raise ConflictError("no received Pix paid this payment: nothing to refund")
    return await _start(merchant_id, record, payment, request, fingerprint, clients, broker)


async def refund_received(
    merchant_id: int, end_to_end_id: str, request: Request, *, clients: PspClients, broker: Broker
) -> tuple[Refund, bool]:
    """Refund a received Pix (one that paid a charge refunds that charge too)."""
    validation.check_text("end_to_end_id", end_to_end_id)
    record = await ReceivedPix.get_or_none(merchant_id=merchant_id, end_to_end_id=end_to_end_id)
    if record is None:
        raise NotFoundError("no received Pix with this end_to_end_id")
    fingerprint = ledger.request_hash("refund", "pix", end_to_end_id, *_parts(request))
    if replayed := await _replay(merchant_id, request, fingerprint, clients, broker):
        return replayed, False
    payment = None
    if record.outcome == PixOutcome.MATCHED and record.payment_id is not None:
        payment = await Payment.get(id=record.payment_id)
    return await _start(merchant_id, record, payment, request, fingerprint, clients, broker)


def _parts(request: Request) -> tuple[object, ...]:
    return (request.value_cents, request.description, request.external)


async def _replay(
    merchant_id: int, request: Request, fingerprint: str, clients: PspClients, broker: Broker
) -> Refund | None:
    """The refund an earlier request with this key made (sent again if the PSP never
    acknowledged it); ConflictError for another request under the key."""
    if not request.idempotency_key:
        return None
    refund = await Refund.get_or_none(
        merchant_id=merchant_id, idempotency_key=request.idempotency_key
    )
    if refund is None:
        return None
    if refund.request_hash != fingerprint:
        raise ConflictError("Idempotency-Key already used with a different request")
    if refund.kind == RefundKind.PSP and refund.status == RefundStatus.PROCESSING:
        if refund.rtr_id is None:  # the PSP never answered: ask again, with the same id
            client = await clients.for_merchant(merchant_id)
            if client is not None:
                await refund_states.send(refund, client, broker=broker)
        await refund.refresh_from_db()
    return refund


async def _paid_by(payment: Payment) -> Movement | None:
    """The payer's debit when the charge was paid from a pixweb balance (`pay_brcode`)."""
    query = Movement.filter(reference=f"payment:{payment.id}", kind=MovementKind.PAGAMENTO)
    return await query.first()


async def _start(
    merchant_id: int,
    record: ReceivedPix | None,
    payment: Payment | None,
    request: Request,
    fingerprint: str,
    clients: PspClients,
    broker: Broker,
) -> tuple[Refund, bool]:
    """Check the rules, debit and record the refund in one transaction; then ask the PSP."""
    if request.description is not None:
        validation.check_text("description", request.description)
    kind, client = RefundKind.ESTORNO, None
    if record is not None:
        client = await clients.for_merchant(merchant_id) if _psp_e2eid(record) else None
        kind = RefundKind.PSP if client is not None else RefundKind.EXTERNAL
        if kind == RefundKind.EXTERNAL and not request.external:
            raise ExternalRefundError(
                "no PSP can refund this Pix: refund it in your bank app, then record it here"
                " with external: true",
                fields={"external": "required without a connected PSP"},
            )
        if kind == RefundKind.PSP and request.external:
            raise ExternalRefundError(
                "this Pix is refunded through your PSP: omit external",
                fields={"external": "not with a connected PSP"},
            )
    outbox = Outbox()
    try:
        async with in_transaction():
            refund = await _record(merchant_id, record, payment, kind, request, fingerprint, outbox)
    except (IntegrityError, PixwebError):
        # A concurrent request with this key won (its key, or the funds or the Pix first).
        if replayed := await _replay(merchant_id, request, fingerprint, clients, broker):
            return replayed, False
        raise
    await outbox.publish(broker)
    if client is not None:
        await refund_states.send(refund, client, broker=broker)
        await refund.refresh_from_db()
    return refund, True


def _psp_e2eid(record: ReceivedPix) -> bool:
    return bool(_PSP_E2EID.fullmatch(record.end_to_end_id))


def refundable_at_psp(record: ReceivedPix) -> bool:
    """Whether a PSP can refund this Pix (it carries a PSP's end_to_end_id, not a txid key)."""
    return _psp_e2eid(record)


async def _record(
    merchant_id: int,
    record: ReceivedPix | None,
    payment: Payment | None,
    kind: RefundKind,
    request: Request,
    fingerprint: str,
    outbox: Outbox,
) -> Refund:
    now, refund_id = utcnow(), uuid.uuid4()
    if record is not None:
        # The Pix's row lock makes concurrent refunds of it wait (PostgreSQL; SQLite runs
        # one transaction at a time), so each sees the others' amounts.
        await ReceivedPix.filter(id=record.id).select_for_update().first()
        refunds = Refund.filter(received_pix_id=record.id)
        total, paid_at = record.amount_cents, record.paid_at
    else:
        assert payment is not None and payment.paid_at is not None
        await Payment.filter(id=payment.id).select_for_update().first()
        refunds = Refund.filter(payment_id=payment.id, kind=RefundKind.ESTORNO)
        total, paid_at = payment.amount_cents, payment.paid_at
    if now - paid_at > REFUND_WINDOW:
        raise RefundTooLateError(
            f"a Pix is refunded within {REFUND_WINDOW.days} days: this one was paid"
            f" {paid_at.date().isoformat()}",
            fields={"value": f"more than {REFUND_WINDOW.days} days after the Pix"},
        )
    done = sum(r.amount_cents for r in await refunds.exclude(status=RefundStatus.FAILED))
    amount = request.value_cents if request.value_cents is not None else total - done
    if amount <= 0 or done + amount > total:
        left = money.format_amount(total - done)
        raise RefundExceedsError(
            f"the refunds of a Pix never exceed it: {left} left to refund",
            fields={"value": f"at most {left}"},
        )
    account = await ledger.get_account(merchant_id)
    reference, description = f"refund:{refund_id}", request.description
    if kind == RefundKind.ESTORNO:
        assert payment is not None
        payer = await _paid_by(payment)
        assert payer is not None
        payer_account = await payer.account
        legs: list[ledger.Leg] = [
            (account, MovementKind.ESTORNO, -amount, None),
            (payer_account, MovementKind.ESTORNO, amount, None),
        ]
        movement, _ = await ledger.apply_legs(
            legs,
            outbox=outbox,
            now=now,
            reference=reference,
            description=description,
            idempotency=None,
        )
    else:
        movement = await ledger.apply_movement(
            account,
            MovementKind.DEVOLUCAO,
            -amount,
            outbox=outbox,
            now=now,
            reference=reference,
            counterpart=record.end_to_end_id if record is not None else None,
            description=description,
        )
    refund = await Refund.create(
        id=refund_id,
        merchant_id=merchant_id,
        received_pix_id=record.id if record is not None else None,
        payment_id=payment.id if payment is not None else None,
        end_to_end_id=record.end_to_end_id if record is not None else None,
        devolucao_id=refund_id.hex,
        kind=kind,
        natureza=DevolucaoNatureza.ORIGINAL.value,
        amount_cents=amount,
        description=description,
        status=RefundStatus.PROCESSING,
        requested_at=now,
        movement_id=movement.id,
        idempotency_key=request.idempotency_key,
        request_hash=fingerprint,
    )
    if kind != RefundKind.PSP:  # made outside pixweb, or inside the ledger: done now
        await refund_states.made_now(refund, now, outbox)
    return refund


# -- lists ------------------------------------------------------------------------------


async def list_for_payment(merchant_id: int, payment_id: UUID) -> list[Refund]:
    """A charge's refunds, oldest first; NotFoundError for another merchant's charge."""
    if not await Payment.exists(id=payment_id, merchant_id=merchant_id):
        raise NotFoundError("payment not found")
    query = Refund.filter(merchant_id=merchant_id, payment_id=payment_id)
    return await query.order_by("requested_at", "id")


async def list_for_received(merchant_id: int, end_to_end_id: str) -> list[Refund]:
    """A received Pix's refunds, oldest first."""
    validation.check_text("end_to_end_id", end_to_end_id)
    record = await ReceivedPix.get_or_none(merchant_id=merchant_id, end_to_end_id=end_to_end_id)
    if record is None:
        raise NotFoundError("no received Pix with this end_to_end_id")
    return await Refund.filter(received_pix_id=record.id).order_by("requested_at", "id")
