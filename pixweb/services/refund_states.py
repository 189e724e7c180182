"""A refund's states: what its PSP is asked and answers, and the one path that settles it.

`settle` moves a refund in process to its final state with one conditional UPDATE on its
status; the winner alone moves money (the credit back of one not made) and tells the
charge's page, the dashboard and the notification history. The request
(`refunds.refund_payment`), reconciliation's poll (`poll_in_process`) and the PSP's webhook
(`confirm_reported`, each refund read back at the PSP) all end here, so whatever order and
however often they report a refund, it settles once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pixweb import money
from pixweb.broker import Broker
from pixweb.errors import PspError, PspNotFoundError, PspRejectedError
from pixweb.models import (
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
from pixweb.services import ledger, merchant_events
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel, payment_channel

log = logging.getLogger(__name__)

NOTICE = "devolucao"  # the `tipo` of the notifications saying how a refund ended


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


async def made_now(refund: Refund, now: datetime, outbox: Outbox) -> None:
    """A refund done when recorded (external, or an estorno): refunded at once, in the
    caller's transaction."""
    await _mark(refund, RefundStatus.REFUNDED, now, None, None)
    await _refunded(refund, now, outbox)


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
    endpoints = await merchant_events.endpoints_of(refund.merchant_id)
    await merchant_events.emit(
        outbox, refund.merchant_id, "refund.succeeded", refund_dict(refund), endpoints=endpoints
    )
    if refund.payment_id is None:
        return
    query = Payment.filter(id=refund.payment_id)
    await query.update(refunded_cents=F("refunded_cents") + refund.amount_cents)
    payment = await query.get()
    was = payment.status
    whole = payment.refunded_cents >= payment.amount_cents
    payment.status = PaymentStatus.REFUNDED if whole else PaymentStatus.PARTIALLY_REFUNDED
    await query.update(status=payment.status)
    if payment.status != was:  # a second partial refund leaves the charge as it was
        await merchant_events.charge(outbox, "charge.refunded", payment, endpoints=endpoints)
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
    await merchant_events.emit(outbox, refund.merchant_id, "refund.failed", refund_dict(refund))
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
            if not made:  # reported when already failed: it never was in process
                await merchant_events.emit(
                    outbox, record.merchant_id, "refund.failed", refund_dict(refund)
                )
    except IntegrityError:  # recorded meanwhile by the poll or another delivery
        return await Refund.get(received_pix_id=record.id, devolucao_id=answer.id)
    await outbox.publish(broker)
    return refund
