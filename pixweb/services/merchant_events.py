"""The merchant-webhook events state changes report: their data, shaped as the API shows it.

Each state change calls `emit` (or `charge`) inside its own transaction; `outbox.record`
writes the event there. A change that reports two events (a Pix that pays its charge:
charge.paid and pix.received) reads the merchant's endpoints once (`endpoints_of`) and
hands them to both. A charge's links (QR codes, payer's page) need the app's routes: the
event keeps `payment_data`, and `presenters.webhook_body` adds them when it is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pixweb import money
from pixweb.models import Payment, WebhookEndpoint
from pixweb.services import outbox as webhook_outbox
from pixweb.services import sql
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox


def payment_data(payment: Payment) -> dict[str, Any]:
    """A payment as `GET /payments/<id>` shows it, but for its links (the app adds them)."""
    return {
        "id": payment.id,
        "value": money.format_amount(payment.amount_cents),
        "description": payment.description,
        "status": payment.status_at(utcnow()),
        "bank_payment_id": payment.txid,
        "brcode": payment.brcode,
        "created_at": payment.created_at,
        "expires_at": payment.expires_at,
        "paid_at": payment.paid_at,
    }


endpoints_of = webhook_outbox.enabled_endpoints  # one SELECT, for a change's every event
endpoints_plan = webhook_outbox.endpoints_plan  # the same, as a step of the change's plan


async def emit(
    outbox: Outbox,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    endpoints: list[WebhookEndpoint] | None = None,
) -> None:
    """Record one event in the caller's transaction for the endpoints that asked for it.

    `endpoints` (from `endpoints_of`, for this merchant) saves reading them again.
    """
    if endpoints is None:
        endpoints = await endpoints_of(merchant_id)
    await sql.run(emit_plan(outbox, merchant_id, type_, data, endpoints))


def emit_plan(
    outbox: Outbox,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    endpoints: list[WebhookEndpoint],
) -> sql.Plan[None]:
    """`emit` to these endpoints of the merchant, as a step of the change's plan."""
    wanting = webhook_outbox.subscribed(endpoints, type_)
    yield from webhook_outbox.record_plan(outbox, merchant_id, type_, _as_api(data), wanting)


async def charge(
    outbox: Outbox,
    type_: str,
    payment: Payment,
    *,
    endpoints: list[WebhookEndpoint] | None = None,
) -> None:
    """Record a charge.* event: the payment as it stands in the caller's transaction."""
    await emit(outbox, payment.merchant_id, type_, payment_data(payment), endpoints=endpoints)


def charge_plan(
    outbox: Outbox, type_: str, payment: Payment, endpoints: list[WebhookEndpoint]
) -> sql.Plan[None]:
    """`charge`, as a step of the change's plan."""
    data = payment_data(payment)
    yield from emit_plan(outbox, payment.merchant_id, type_, data, endpoints)


def _as_api(data: dict[str, Any]) -> dict[str, Any]:
    """Timestamps (`*_at`) as the API writes them: pydantic's RFC 3339, `Z` for UTC.

    The services' dicts carry datetimes or `isoformat()` strings (`+00:00`); a receiver
    comparing an event with the API's answer for the same object finds the same text."""
    return {
        key: _timestamp(value) if key.endswith("_at") and value is not None else value
        for key, value in data.items()
    }


def _timestamp(value: datetime | str) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
