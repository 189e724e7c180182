"""The merchant-webhook outbox: each event is written in the transaction of the change it
reports, so a crash can neither lose it nor send one for a change that rolled back.

`record` is the one way an event enters it; `services/delivery.py` sends what it holds.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pixweb.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from pixweb.services import sql
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox

EVENT_TYPES = (
    "charge.created",
    "charge.paid",
    "charge.expired",
    "charge.cancelled",
    "charge.refunded",
    "refund.succeeded",
    "refund.failed",
    "pix.received",
    "transfer.received",
)
TEST_EVENT = "webhook.test"  # "Enviar evento de teste": sent to one endpoint, whatever it asked
WEBHOOKS_CHANNEL = "webhooks"  # wakes every process's delivery worker after a commit


def new_event_id() -> str:
    """An event id, the `webhook-id` of every attempt to deliver it."""
    return f"evt_{uuid4().hex}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def endpoints_plan(merchant_id: int) -> sql.Plan[list[WebhookEndpoint]]:
    """The merchant's endpoints that receive events, whatever events they asked for."""
    return sql.select_plan(WebhookEndpoint, merchant_id=merchant_id, enabled=True, deleted_at=None)


async def enabled_endpoints(merchant_id: int) -> list[WebhookEndpoint]:
    """`endpoints_plan` on its own."""
    return await sql.run(endpoints_plan(merchant_id))


def subscribed(endpoints: list[WebhookEndpoint], type_: str) -> list[WebhookEndpoint]:
    """Those of `endpoints` that asked for events of this type."""
    return [endpoint for endpoint in endpoints if type_ in endpoint.events]


async def record(
    outbox: Outbox,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    endpoints: list[WebhookEndpoint] | None = None,
    manual: bool = False,
) -> WebhookEvent | None:
    """Write the event and one due delivery per enabled endpoint that asked for it.

    Call it inside the transaction of the change it reports. Nothing is written when no
    endpoint wants the event. `endpoints` names them instead (a test event, a resend).
    """
    if endpoints is None:
        endpoints = subscribed(await enabled_endpoints(merchant_id), type_)
    return await sql.run(record_plan(outbox, merchant_id, type_, data, endpoints, manual=manual))


def record_plan(
    outbox: Outbox,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    endpoints: list[WebhookEndpoint],
    *,
    manual: bool = False,
) -> sql.Plan[WebhookEvent | None]:
    """`record` for these endpoints, as a step of the change's plan."""
    if not endpoints:
        return None
    now = utcnow()
    event = yield from sql.insert_plan(
        WebhookEvent,
        id=new_event_id(),
        merchant_id=merchant_id,
        type=type_,
        data=json.loads(json.dumps(data, default=_plain)),
        created_at=now,
    )
    for endpoint in endpoints:
        yield from sql.insert_plan(
            WebhookDelivery,
            event_id=event.id,
            endpoint_id=endpoint.id,
            next_attempt_at=now,
            created_at=now,
            manual=manual,
        )
    outbox.add(WEBHOOKS_CHANNEL, {"type": "webhook.due", "merchant_id": merchant_id})
    return event
