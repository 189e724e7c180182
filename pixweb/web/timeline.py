"""One charge's story for its dashboard page, oldest first, built from its records: created,
first opened by the payer, each received Pix, paid, refunds and their states, cancelled,
expired. Each event's kind is also its CSS class and `data-event` (charge_timeline.html)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pixweb import dashboard_view, money
from pixweb.models import Payment, PaymentStatus, PixOutcome, ReceivedPix, Refund, RefundStatus
from pixweb.services import received, refunds
from pixweb.services.clock import utcnow

REFUND_STATES = {
    RefundStatus.PROCESSING: "em processamento",
    RefundStatus.REFUNDED: "devolvida",
    RefundStatus.FAILED: "não realizada",
}


@dataclass(frozen=True)
class Event:
    """One line of the timeline."""

    at: datetime | None
    kind: str  # created, viewed, pix, paid, refund <status>, cancelled, expired
    title: str
    details: tuple[str, ...] = ()


def is_e2eid(key: str) -> bool:
    """A Pix's own end_to_end_id (a seed confirmation is keyed by its txid: not one)."""
    return not key.startswith(received.TXID_KEY)


def _pix_event(record: ReceivedPix) -> Event:
    matched = record.outcome == PixOutcome.MATCHED
    outcome = "pagou esta cobrança" if matched else dashboard_view.outcome_label(record)
    details = (
        f"Pagador: {record.payer_name or 'não informado'}",
        *([f"Documento: {record.payer_document}"] if record.payer_document else []),
        *([f"E2EID: {record.end_to_end_id}"] if is_e2eid(record.end_to_end_id) else []),
        f"Resultado: {outcome}",
    )
    return Event(
        record.paid_at, "pix", f"Pix recebido: {money.format_brl(record.amount_cents)}", details
    )


def _refund_event(refund: Refund) -> Event:
    state = REFUND_STATES.get(refund.status, str(refund.status))
    details = [f"Situação: {state}"]
    if refund.kind == "external":
        details.append("Feita pelo app do banco")
    if refund.end_to_end_id and is_e2eid(refund.end_to_end_id):
        details.append(f"E2EID: {refund.end_to_end_id}")
    if refund.reason:
        details.append(f"Motivo: {refund.reason}")
    if refund.description:
        details.append(f"Descrição: {refund.description}")
    title = f"Devolução de {money.format_brl(refund.amount_cents)}"
    return Event(refund.requested_at, f"refund {refund.status}", title, tuple(details))


async def build(payment: Payment, merchant_id: int) -> list[Event]:
    """The charge's story from its records, oldest first."""
    now = utcnow()
    events = [Event(payment.created_at, "created", "Cobrança criada")]
    if payment.first_viewed_at is not None:
        events.append(Event(payment.first_viewed_at, "viewed", "Pagador abriu a página"))
    query = ReceivedPix.filter(merchant_id=merchant_id, payment_id=payment.id)
    events += [_pix_event(record) for record in await query.order_by("paid_at", "id")]
    if payment.paid_at is not None:
        events.append(Event(payment.paid_at, "paid", "Paga"))
    events += [_refund_event(r) for r in await refunds.list_for_payment(merchant_id, payment.id)]
    status = payment.status_at(now)
    if status == PaymentStatus.EXPIRED:
        events.append(Event(payment.expires_at, "expired", "Expirada", ("Venceu sem pagamento",)))
    if status == PaymentStatus.CANCELLED and payment.cancelled_at is not None:
        events.append(Event(payment.cancelled_at, "cancelled", "Cancelada"))
    ordered = sorted(events, key=lambda event: event.at or now)
    if status == PaymentStatus.CANCELLED and payment.cancelled_at is None:
        # Cancelled before its time was kept: it closes the story, without a time.
        ordered.append(Event(None, "cancelled", "Cancelada"))
    return ordered
