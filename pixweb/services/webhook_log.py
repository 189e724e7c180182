"""A webhook endpoint's delivery log, and what the merchant asks of it by hand: a test
event, and "Reenviar" one event.

A resend is a new manual delivery of the same event, so the receiver sees the same
`webhook-id` (and can tell it has it already). Both are refused for a disabled endpoint:
the worker would not send them. After commit the account channel hears of the new delivery
(`webhook.delivery`), as it hears of each attempt from the worker (`webhook.attempt`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.transactions import in_transaction

from pixweb.broker import Broker
from pixweb.errors import ConflictError, NotFoundError
from pixweb.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from pixweb.services import outbox as event_outbox
from pixweb.services import payments
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel
from pixweb.services.webhook_endpoints import get


@dataclass(frozen=True)
class DeliveryView:
    """A delivery with its event's type and its attempts, first to last."""

    delivery: WebhookDelivery
    event_type: str
    attempts: list[WebhookAttempt]

    @property
    def last(self) -> WebhookAttempt | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True)
class DeliveryPage:
    items: list[DeliveryView]
    next_cursor: str | None


async def _views(deliveries: list[WebhookDelivery]) -> list[DeliveryView]:
    """Views of deliveries fetched with their event, their attempts in one query."""
    by_delivery: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    rows = await WebhookAttempt.filter(delivery_id__in=list(by_delivery)).order_by("number")
    for attempt in rows:
        by_delivery[attempt.delivery_id].append(attempt)
    return [DeliveryView(d, d.event.type, by_delivery[d.id]) for d in deliveries]


def delivery_event(type_: str, delivery: WebhookDelivery) -> dict[str, object]:
    """What the account channel hears of a delivery (the worker sends `webhook.attempt`)."""
    return {
        "type": type_,
        "endpoint_id": delivery.endpoint_id,
        "delivery_id": delivery.id,
        "event_id": delivery.event_id,
        "status": str(delivery.status),
    }


def _usable(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise ConflictError("the webhook endpoint is disabled: enable it first")


async def send_test(merchant_id: int, endpoint_id: int, *, broker: Broker) -> DeliveryView:
    """Send a `webhook.test` event to this endpoint alone, whatever events it asked for."""
    endpoint = await get(merchant_id, endpoint_id)
    _usable(endpoint)
    outbox = Outbox()
    async with in_transaction():
        event = await event_outbox.record(
            outbox,
            merchant_id,
            event_outbox.TEST_EVENT,
            {"endpoint_id": endpoint.id, "message": "Evento de teste enviado pelo pixweb"},
            endpoints=[endpoint],
            manual=True,
        )
        assert event is not None  # an endpoint was named
        delivery = await WebhookDelivery.get(event_id=event.id, endpoint_id=endpoint.id)
    outbox.add(account_channel(merchant_id), delivery_event("webhook.delivery", delivery))
    await outbox.publish(broker)
    return await _loaded(delivery.id)


async def resend(
    merchant_id: int, endpoint_id: int, delivery_id: int, *, broker: Broker
) -> DeliveryView:
    """Deliver one delivery's event again to its endpoint: a new manual delivery, same id."""
    endpoint = await get(merchant_id, endpoint_id)
    original = await WebhookDelivery.get_or_none(id=delivery_id, endpoint_id=endpoint.id)
    if original is None:
        raise NotFoundError("no delivery with this id for this webhook endpoint")
    _usable(endpoint)
    now = utcnow()
    delivery = await WebhookDelivery.create(
        event_id=original.event_id,
        endpoint_id=endpoint.id,
        next_attempt_at=now,
        created_at=now,
        manual=True,
    )
    outbox = Outbox()
    outbox.add(event_outbox.WEBHOOKS_CHANNEL, {"type": "webhook.due", "merchant_id": merchant_id})
    outbox.add(account_channel(merchant_id), delivery_event("webhook.delivery", delivery))
    await outbox.publish(broker)
    return await _loaded(delivery.id)


async def _loaded(delivery_id: int) -> DeliveryView:
    delivery = await WebhookDelivery.get(id=delivery_id).select_related("event")
    return (await _views([delivery]))[0]


async def get_delivery(merchant_id: int, delivery_id: int) -> DeliveryView:
    """One delivery of the merchant's with its attempts (deleted endpoints' too)."""
    delivery = await WebhookDelivery.get_or_none(
        id=delivery_id, endpoint__merchant_id=merchant_id
    ).select_related("event")
    if delivery is None:
        raise NotFoundError("no delivery with this id")
    return (await _views([delivery]))[0]


async def list_deliveries(
    merchant_id: int, endpoint_id: int, *, limit: int = 20, cursor: str | None = None
) -> DeliveryPage:
    """An endpoint's deliveries newest first, a page at a time, with their attempts."""
    endpoint = await get(merchant_id, endpoint_id)
    query = WebhookDelivery.filter(endpoint_id=endpoint.id)
    if cursor:
        query = query.filter(payments.decode_cursor(cursor, int))
    items = await query.order_by("-created_at", "-id").limit(limit + 1).select_related("event")
    more = len(items) > limit
    items = items[:limit]
    return DeliveryPage(await _views(items), payments.encode_cursor(items[-1]) if more else None)
