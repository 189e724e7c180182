"""`/ws/webhooks`: the "Webhooks" page's delivery logs, kept live with HTML fragments.

Session-authenticated with the Origin checked, as the dashboard's socket. On every
(re)connect it resyncs the endpoints and their logs; then each `webhook.delivery` (a test
or a resend was queued) and `webhook.attempt` (the worker tried one) on the merchant's
account channel becomes fragments: the delivery's row when it is on screen, the whole log
of its endpoint when a delivery joins it (idempotent, whether or not the page's own answer
showed it first), the endpoint's status (the worker may have disabled it), or the whole list
for an endpoint the page has not seen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Blueprint, render_template, websocket

from pixweb import webhooks_view
from pixweb.broker import Event
from pixweb.deps import get_broker, get_metrics
from pixweb.errors import NotFoundError
from pixweb.services import webhook_endpoints, webhook_log
from pixweb.services.events import account_channel
from pixweb.ws.common import ignore_client_messages, page_merchant, serve_until_closed

blueprint = Blueprint("ws_webhooks", __name__)
EVENTS = ("webhook.delivery", "webhook.attempt")


@blueprint.websocket("/ws/webhooks")
async def webhooks_socket() -> None:
    """Resync on connect, then push each delivery's progress as it happens."""
    await websocket.accept()
    if (merchant := await page_merchant()) is None:
        return
    broker = get_broker()
    with get_metrics().socket_open("webhooks"):
        async with broker.subscribe(account_channel(merchant.id)) as events:
            live = _Live(merchant.id)
            await websocket.send(await live.sync())
            await serve_until_closed(live.push(events), ignore_client_messages())


class _Live:
    """What one page shows: its endpoints and the deliveries on each log's first page."""

    def __init__(self, merchant_id: int) -> None:
        self.merchant_id = merchant_id
        self.rows: dict[int, set[int]] = {}  # endpoint id -> delivery ids on screen

    async def sync(self) -> str:
        """The whole list of endpoints and logs, as the page renders it."""
        context = await webhooks_view.page_context(self.merchant_id)
        self.rows = {
            endpoint_id: {view.delivery.id for view in page.items}
            for endpoint_id, page in context["logs"].items()
        }
        return await render_template("partials/webhook_endpoints.html", **context, oob=True)

    async def push(self, events: AsyncIterator[Event]) -> None:
        async for event in events:
            if event.get("type") in EVENTS and (html := await self.render(event)):
                await websocket.send(html)
                get_metrics().pushed(event)

    async def render(self, event: Event) -> str | None:
        endpoint_id, delivery_id = event.get("endpoint_id"), event.get("delivery_id")
        if not isinstance(endpoint_id, int) or not isinstance(delivery_id, int):
            return None
        if endpoint_id not in self.rows:
            return await self.sync()
        try:
            endpoint = await webhook_endpoints.get(self.merchant_id, endpoint_id)
            view = await webhook_log.get_delivery(self.merchant_id, delivery_id)
        except NotFoundError:  # deleted meanwhile: the next resync drops it
            return None
        status = await render_template(
            "partials/webhook_endpoint_status.html", endpoint=endpoint, oob=True
        )
        shown = self.rows[endpoint_id]
        if delivery_id in shown:
            row = await render_template("partials/webhook_delivery.html", view=view, oob=True)
            return row + status
        if shown and delivery_id < max(shown):
            return status  # an older delivery, below the first page
        page = await webhook_log.list_deliveries(
            self.merchant_id, endpoint_id, limit=webhooks_view.LOG_SIZE
        )
        self.rows[endpoint_id] = {item.delivery.id for item in page.items}
        context = {"endpoint": endpoint, "endpoint_id": endpoint_id, "log": page, "oob": True}
        log = await render_template("partials/webhook_log.html", **context)
        more = await render_template("partials/webhook_more.html", **context)
        return log + more + status
