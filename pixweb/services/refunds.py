"""Refunds: the rules, the ledger's debit and credit-back, and each refund's states.

A refund of a received Pix goes through the merchant's PSP (`PUT /pix/{e2eid}/devolucao/{id}`)
with an id chosen and stored here first, so a retry after a timeout reuses it and the PSP
refunds once. Its amount leaves the balance when it is requested (a conditional debit in the
transaction that records it) and comes back only if the PSP answers NAO_REALIZADO. Each state
change is one conditional UPDATE on the refund's status (`settle`), the one path the request,
the PSP's webhook and reconciliation's polling all take: whatever order and however often they
report it, the money moves once.

Without a PSP (static codes confirmed through the seed's route) the merchant refunds in its
bank app and records it here (`external`): the ledger moves the same way, refunded at once. A
charge paid from a pixweb balance is reversed inside the ledger (an `estorno` pair).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pixweb import money, validation
from pixweb.broker import Broker
from pixweb.errors import (
    ConflictError,
    NotFoundError,
    PixwebError,
    PspError,
    PspNotFoundError,
    PspRejectedError,
    UnprocessableError,
)
from pixweb.models import (
    PAID_STATES,
    Movement,
    MovementKind,
    Notification,
    Payment,
    PaymentStatus,
    PixOutcome,
    ReceivedPix,
    Refund,
    RefundKind,
    RefundStatus,
)
from pixweb.psp.client import PspClient
from pixweb.psp.schemas import (
    Devolucao,
    DevolucaoNatureza,
    DevolucaoSolicitada,
    DevolucaoStatus,
    centavos,
    valor_from_centavos,
)
from pixweb.services import ledger
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel, payment_channel
from pixweb.services.psp_clients import PspClients

log = logging.getLogger(__name__)

REFUND_WINDOW = timedelta(days=90)  # the BCB's: a Pix is refunded within 90 days
NOTICE = "devolucao"  # the `tipo` of the notifications saying how a refund ended
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


def refund_dict(refund: Refund) -> dict[str, Any]:
    """The JSON shape of a refund."""
    return {
        "id": str(refund.id),
        "end_to_end_id": refund.end_to_end_id,
        "value": money.format_amount(refund.amount_cents),
        "description": refund.description,
        "status": str(refund.status),
        "reason": refund.reason,
        "requested_at": refund.requested_at.isoformat(),
        "settled_at": refund.settled_at.isoformat() if refund.settled_at else None,
        "payment_id": str(refund.payment_id) if refund.payment_id else None,
        "external": refund.kind == RefundKind.EXTERNAL,
    }


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
                await send(refund, client, broker=broker)
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
        await send(refund, client, broker=broker)
        await refund.refresh_from_db()
    return refund, True


def _psp_e2eid(record: ReceivedPix) -> bool:
    return bool(_PSP_E2EID.fullmatch(record.end_to_end_id))


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
        movement = await ledger.apply_legs(
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
        await _mark(refund, RefundStatus.REFUNDED, now, None, None)
        await _refunded(refund, now, outbox)
    return refund


# -- the PSP, and the one path of a refund's states -------------------------------------


async def send(refund: Refund, client: PspClient, *, broker: Broker) -> None:
    """Ask the PSP for the refund under its stored id (again: the PSP refunds once), and
    take what it answers. A PSP that cannot be reached leaves it processing: polling asks
    again. One that refuses it fails it (the amount comes back), unless it knows the id."""
    assert refund.end_to_end_id is not None
    body = DevolucaoSolicitada(
        valor=valor_from_centavos(refund.amount_cents),
        natureza=DevolucaoNatureza.ORIGINAL,
        descricao=refund.description,
    )
    try:
        answer = await client.put_devolucao(refund.end_to_end_id, refund.devolucao_id, body)
    except PspRejectedError as exc:
        try:  # a PSP may refuse a repeated id it already took: then it knows it
            answer = await client.get_devolucao(refund.end_to_end_id, refund.devolucao_id)
        except PspNotFoundError:
            await settle(
                refund, DevolucaoStatus.NAO_REALIZADO, f"recusada: {exc.detail}", broker=broker
            )
            return
        except PspError as again:
            log.warning("refund %s: the PSP refused it, then failed: %s", refund.id, again.detail)
            return
    except PspError as exc:
        log.warning(
            "refund %s: the PSP did not answer (%s): polling asks again", refund.id, exc.detail
        )
        return
    await take(refund, answer, broker=broker)


async def take(refund: Refund, answer: Devolucao, *, broker: Broker) -> None:
    """Bring a refund to what its PSP reports of it."""
    if answer.rtr_id and refund.rtr_id is None:
        await Refund.filter(id=refund.id, rtr_id__isnull=True).update(rtr_id=answer.rtr_id)
        refund.rtr_id = answer.rtr_id
    if answer.status != DevolucaoStatus.EM_PROCESSAMENTO:
        when = answer.horario.liquidacao
        await settle(refund, answer.status, answer.motivo, broker=broker, at=when)


async def settle(
    refund: Refund,
    status: DevolucaoStatus,
    reason: str | None,
    *,
    broker: Broker,
    at: datetime | None = None,
) -> bool:
    """Move a refund in process to its final state once: the amount comes back if it was
    not made. True for the one call that changed it."""
    assert status != DevolucaoStatus.EM_PROCESSAMENTO
    now, outbox = utcnow(), Outbox()
    final = RefundStatus.REFUNDED if status == DevolucaoStatus.DEVOLVIDO else RefundStatus.FAILED
    async with in_transaction():
        if not await _mark(refund, final, at or now, reason, RefundStatus.PROCESSING):
            return False
        if final == RefundStatus.REFUNDED:
            await _refunded(refund, now, outbox)
        else:
            await _failed(refund, now, outbox)
    await outbox.publish(broker)
    return True


async def _mark(
    refund: Refund,
    status: RefundStatus,
    at: datetime,
    reason: str | None,
    expected: RefundStatus | None,
) -> bool:
    query = Refund.filter(id=refund.id)
    if expected is not None:
        query = query.filter(status=expected)
    reason = reason[:200] if reason else None
    if not await query.update(status=status, settled_at=at, reason=reason):
        return False
    refund.status, refund.settled_at, refund.reason = status, at, reason
    return True


async def _refunded(refund: Refund, now: datetime, outbox: Outbox) -> None:
    """A refund made: its charge (if it was the charge's Pix) says how much went back."""
    text = f"Devolução de {money.format_brl(refund.amount_cents)} concluída"
    await _tell(refund, text, now, outbox)
    if refund.payment_id is None:
        return
    query = Payment.filter(id=refund.payment_id)
    await query.update(refunded_cents=F("refunded_cents") + refund.amount_cents)
    payment = await query.get()
    whole = payment.refunded_cents >= payment.amount_cents
    payment.status = PaymentStatus.REFUNDED if whole else PaymentStatus.PARTIALLY_REFUNDED
    await query.update(status=payment.status)
    # No "status" key: a room reads the charge back (its refunded amount with it) rather
    # than apply the event (payments.apply_status_event).
    event = {
        "type": f"payment.{payment.status}",
        "payment_id": str(payment.id),
        "merchant_id": payment.merchant_id,
        "refunded": money.format_amount(payment.refunded_cents),
        "refund": refund_dict(refund),
    }
    outbox.add(payment_channel(payment.id), event)
    outbox.add(account_channel(payment.merchant_id), event)


async def _failed(refund: Refund, now: datetime, outbox: Outbox) -> None:
    """A refund not made: its amount comes back to the balance (once: the caller won the
    refund's conditional UPDATE)."""
    if refund.movement_id is None:
        return  # seen only once it had failed: no money had left
    account = await ledger.get_account(refund.merchant_id)
    credit = await ledger.apply_movement(
        account,
        MovementKind.DEVOLUCAO_ESTORNADA,
        refund.amount_cents,
        outbox=outbox,
        now=now,
        reference=f"refund:{refund.id}",
        counterpart=refund.end_to_end_id,
        description=(refund.reason or "")[:140] or None,
    )
    await Refund.filter(id=refund.id).update(credit_movement_id=credit.id)
    refund.credit_movement_id = credit.id


async def _tell(refund: Refund, text: str, now: datetime, outbox: Outbox) -> None:
    notification = await Notification.create(
        merchant_id=refund.merchant_id,
        tipo=NOTICE,
        mensagem=text,
        dados={
            "valor": money.format_amount(refund.amount_cents),
            "devolucao": str(refund.id),
            "end_to_end_id": refund.end_to_end_id,
            "cobranca": str(refund.payment_id) if refund.payment_id else None,
            "status": str(refund.status),
        },
        created_at=now,
    )
    event = {
        "type": "notification",
        "merchant_id": refund.merchant_id,
        "notification": ledger.notification_dict(notification),
    }
    outbox.add(account_channel(refund.merchant_id), event)


# -- what the PSP reports: polling, and its webhook -------------------------------------


async def poll_in_process(merchant_id: int, client: PspClient, *, broker: Broker) -> int:
    """Ask the PSP about each of the merchant's refunds still in process (reconciliation
    calls this); return how many reached a final state."""
    waiting = Refund.filter(
        merchant_id=merchant_id, kind=RefundKind.PSP, status=RefundStatus.PROCESSING
    )
    settled = 0
    for refund in await waiting.order_by("requested_at"):
        assert refund.end_to_end_id is not None
        try:
            answer = await client.get_devolucao(refund.end_to_end_id, refund.devolucao_id)
        except PspNotFoundError:
            await send(refund, client, broker=broker)  # it never reached the PSP: ask now
        except PspError as exc:
            log.warning("refund %s: the PSP could not say how it is: %s", refund.id, exc.detail)
            continue
        else:
            await take(refund, answer, broker=broker)
        settled += refund.status != RefundStatus.PROCESSING
    return settled


async def confirm_reported(
    merchant_id: int, end_to_end_id: str, ids: list[str], client: PspClient, *, broker: Broker
) -> None:
    """Refunds a PSP's webhook names for a recorded Pix: each read back at the PSP (a
    webhook is never believed) and taken, or recorded when pixweb did not ask for it (MED_*
    refunds the PSP makes by itself)."""
    record = await ReceivedPix.get_or_none(merchant_id=merchant_id, end_to_end_id=end_to_end_id)
    if record is None:
        return
    final = Refund.filter(received_pix_id=record.id, devolucao_id__in=ids).exclude(
        status=RefundStatus.PROCESSING
    )
    done = {str(rid) for rid in await final.values_list("devolucao_id", flat=True)}
    for devolucao_id in dict.fromkeys(ids):
        if devolucao_id in done:
            continue  # a final state never changes: a repeated webhook calls no PSP
        try:
            answer = await client.get_devolucao(end_to_end_id, devolucao_id)
        except PspError as exc:
            log.warning(
                "refund %s of %s: not confirmed: %s", devolucao_id, end_to_end_id, exc.detail
            )
            continue
        try:
            await seen(record, answer, broker=broker)
        except ledger.InsufficientFundsError:
            # A refund the PSP made by itself (MED) beyond the balance: not recorded yet,
            # the PSP's next report of it tries again. Said loudly: the bank moved it.
            log.error(
                "merchant %s: the PSP refunded %s of %s by itself, above the balance",
                merchant_id,
                answer.valor,
                end_to_end_id,
            )


async def seen(record: ReceivedPix, answer: Devolucao, *, broker: Broker) -> Refund:
    """Take a refund of a recorded Pix as its PSP reports it: one pixweb asked for moves
    on; one it did not is recorded (its amount debited unless it was not made)."""
    refund = await Refund.get_or_none(received_pix_id=record.id, devolucao_id=answer.id)
    if refund is None:
        refund = await _record_seen(record, answer, broker)
    if refund.status == RefundStatus.PROCESSING:
        await take(refund, answer, broker=broker)
    return refund


async def _record_seen(record: ReceivedPix, answer: Devolucao, broker: Broker) -> Refund:
    now, outbox, refund_id = utcnow(), Outbox(), uuid.uuid4()
    amount = centavos(answer.valor)
    made = answer.status != DevolucaoStatus.NAO_REALIZADO
    payment_id = record.payment_id if record.outcome == PixOutcome.MATCHED else None
    try:
        async with in_transaction():
            movement = None
            if made:
                account = await ledger.get_account(record.merchant_id)
                movement = await ledger.apply_movement(
                    account,
                    MovementKind.DEVOLUCAO,
                    -amount,
                    outbox=outbox,
                    now=now,
                    reference=f"refund:{refund_id}",
                    counterpart=record.end_to_end_id,
                    description=f"Devolução feita pelo PSP ({answer.natureza or 'sem natureza'})",
                )
            refund = await Refund.create(
                id=refund_id,
                merchant_id=record.merchant_id,
                received_pix_id=record.id,
                payment_id=payment_id,
                end_to_end_id=record.end_to_end_id,
                devolucao_id=answer.id,
                rtr_id=answer.rtr_id,
                kind=RefundKind.PSP,
                natureza=str(answer.natureza or DevolucaoNatureza.ORIGINAL),
                amount_cents=amount,
                description=answer.descricao[:140] if answer.descricao else None,
                status=RefundStatus.PROCESSING if made else RefundStatus.FAILED,
                reason=answer.motivo[:200] if answer.motivo else None,
                requested_at=answer.horario.solicitacao or now,
                settled_at=None if made else (answer.horario.liquidacao or now),
                movement_id=movement.id if movement else None,
            )
    except IntegrityError:  # recorded meanwhile by the poll or another delivery
        return await Refund.get(received_pix_id=record.id, devolucao_id=answer.id)
    await outbox.publish(broker)
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
