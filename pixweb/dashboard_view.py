"""What the dashboard shows of received Pix waiting to be reconciled and of the PSP connection.

Shared by the page (`web/dashboard.py`) and its socket's resync and pushes
(`ws/dashboard.py`), which never import each other. Read-only: every change goes through
`services.received`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pixweb.models import Payment, PaymentStatus, PixOutcome, PspConnection, ReceivedPix
from pixweb.services import received
from pixweb.services.clock import utcnow
from pixweb.services.psp_connections import EXPIRING_SOON

SHOWN = 20  # the newest Pix to reconcile listed; the counter says how many in all
CHARGES_OFFERED = 50  # the newest pending or expired charges a Pix can be attached to
OUTCOME_LABELS = {
    "matched": "conciliado",
    "late": "após o vencimento",
    "duplicate": "cobrança já paga",
    "amount_mismatch": "valor diferente",
    "unknown_txid": "txid desconhecido",
    "no_txid": "sem txid",
}


def outcome_label(record: ReceivedPix) -> str:
    """Why a Pix waits, in a few words ("após o vencimento", "sem txid"...)."""
    payment = record.payment if record.payment_id else None
    cancelled = isinstance(payment, Payment) and payment.status == PaymentStatus.CANCELLED
    if record.outcome == PixOutcome.LATE and cancelled:
        return "após o cancelamento"
    return OUTCOME_LABELS.get(str(record.outcome), str(record.outcome))


async def reconcile_context(merchant_id: int) -> dict[str, Any]:
    """Variables of `partials/to_reconcile.html`: the newest Pix to reconcile and the count."""
    query = ReceivedPix.filter(merchant_id=merchant_id).exclude(outcome=PixOutcome.MATCHED)
    items = await query.order_by("-created_at", "-id").limit(SHOWN).prefetch_related("payment")
    return {
        "to_reconcile": items,
        "to_reconcile_count": await received.count_to_reconcile(merchant_id),
        "outcome_label": outcome_label,
    }


async def dashboard_extras(merchant_id: int) -> dict[str, Any]:
    """What the page and every socket resync show besides `presenters.dashboard_context`."""
    return {**await reconcile_context(merchant_id), "psp": await psp_status(merchant_id)}


async def waiting_pix(merchant_id: int, end_to_end_id: str) -> ReceivedPix | None:
    """One of the merchant's received Pix if it still waits to be reconciled."""
    record = await ReceivedPix.get_or_none(merchant_id=merchant_id, end_to_end_id=end_to_end_id)
    if record is None or record.outcome == PixOutcome.MATCHED:
        return None
    await record.fetch_related("payment")
    return record


async def is_to_reconcile(movement_id: int) -> bool:
    """Whether a movement credited a Pix that paid no charge when it arrived."""
    record = await ReceivedPix.get_or_none(movement_id=movement_id)
    return record is not None and (
        record.outcome != PixOutcome.MATCHED or record.original_outcome is not None
    )


async def attachable_charges(merchant_id: int) -> list[Payment]:
    """The charges a waiting Pix may pay: pending or expired (never paid or cancelled)."""
    query = Payment.filter(merchant_id=merchant_id, status=PaymentStatus.PENDING)
    return await query.order_by("-created_at").limit(CHARGES_OFFERED)


@dataclass(frozen=True)
class PspStatus:
    """The dashboard's PSP line."""

    connected: bool
    sandbox: bool = False
    host: str = ""
    reconciled: str = "nunca"  # "há 3 min"
    found: str | None = None  # what the last reconciliation found
    warning: str | None = None  # the client certificate expires soon (or did)


async def psp_status(merchant_id: int) -> PspStatus:
    """Whether the merchant's PSP is connected, its last reconciliation, its certificate."""
    row = await PspConnection.get_or_none(merchant_id=merchant_id)
    if row is None:
        return PspStatus(connected=False)
    now = utcnow()
    warning = None
    if not row.sandbox and row.certificate_not_after - now <= EXPIRING_SOON:
        warning = certificate_warning(row.certificate_not_after, now)
    at = row.last_reconciliation_at
    return PspStatus(
        connected=True,
        sandbox=row.sandbox,
        host=urlsplit(row.base_url).netloc or row.base_url,
        reconciled=ago(at, now) if at else "nunca",
        found=found_text(row.last_reconciliation) if at else None,
        warning=warning,
    )


def certificate_warning(not_after: datetime, now: datetime) -> str:
    """ "O certificado do PSP vence em 12 dias", or that it expired."""
    if not_after <= now:
        return (
            f"O certificado do PSP venceu em {not_after:%d/%m/%Y}: conecte o PSP de novo "
            "com um certificado válido."
        )
    days = (not_after - now).days
    when = "hoje" if days == 0 else "em 1 dia" if days == 1 else f"em {days} dias"
    return f"O certificado do PSP vence {when}: peça um novo ao PSP e conecte-o de novo."


def ago(moment: datetime, now: datetime) -> str:
    """Relative time in Brazilian Portuguese: "agora há pouco", "há 3 min", "há 2 horas"."""
    seconds = max((now - moment).total_seconds(), 0)
    if seconds < 60:
        return "agora há pouco"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"há {minutes} min"
    hours = minutes // 60
    if hours < 24:
        return "há 1 hora" if hours == 1 else f"há {hours} horas"
    days = hours // 24
    return "há 1 dia" if days == 1 else f"há {days} dias"


def found_text(summary: dict[str, Any] | None) -> str | None:
    """What a reconciliation run found, from its summary (`reconcile.Run.summary`)."""
    if not summary:
        return None
    if summary.get("status") == "failed":
        return "falhou; a próxima continua de onde parou"
    if summary.get("status") == "busy":
        return "em andamento em outro servidor"
    recorded = {k: int(v) for k, v in (summary.get("recorded") or {}).items() if int(v) > 0}
    total = sum(recorded.values())
    if total == 0:
        return "nenhum Pix novo"
    parts = ", ".join(f"{n} {OUTCOME_LABELS.get(k, k)}" for k, n in sorted(recorded.items()))
    return f"{total} Pix {'novo' if total == 1 else 'novos'} ({parts})"
