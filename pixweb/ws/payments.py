"""`/ws/payments/<id>`: the payer's page (HTML fragments HTMX swaps by id) and, with
`?format=json`, API clients (`{"event", "data"}` messages, the first seed's event names).

A payer's socket also tells the merchant's dashboard that someone is viewing the charge.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from functools import partial
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from quart import Blueprint, current_app, render_template, websocket

from pixweb.broker import Broker, Event
from pixweb.deps import get_broker, get_config, get_metrics
from pixweb.errors import NotFoundError
from pixweb.models import Payment, PaymentStatus
from pixweb.presenters import payment_dict, status_context
from pixweb.services import payments
from pixweb.services.clock import utcnow
from pixweb.services.events import account_channel, payment_channel
from pixweb.ws.common import CLOSE_POLICY, ignore_client_messages, serve_until_closed

blueprint = Blueprint("ws_payments", __name__)
_EXPIRED: Event = {"type": "payment.expired"}


def presence_channel(merchant_id: int) -> str:
    """Where a dashboard asks the payer pages of its merchant to say they are open."""
    return f"presence:{merchant_id}"


@blueprint.websocket("/ws/payments/<uuid:payment_id>")
async def payment_socket(payment_id: UUID) -> None:
    """Push the payment's status on connect and on every change, until the client leaves."""
    as_json = websocket.args.get("format") == "json"
    await websocket.accept()
    broker = get_broker()
    with get_metrics().socket_open("payment"):
        async with broker.subscribe(payment_channel(payment_id)) as events:
            try:  # read after subscribing: a change in between is pushed, not lost
                payment = await payments.get_payment(payment_id)
            except NotFoundError:
                await websocket.close(CLOSE_POLICY, "payment not found")
                return
            await websocket.send(await _message(payment, None, as_json))
            work = [_push_changes(payment, events, as_json), ignore_client_messages()]
            if not as_json:
                work.append(_announce_presence(broker, payment))
            await serve_until_closed(*work)


async def _push_changes(payment: Payment, events: AsyncIterator[Event], as_json: bool) -> None:
    """Re-read and send the payment on each event, and once more the moment it expires."""
    while True:
        timeout = _seconds_to_expiry(payment)
        try:
            event = await asyncio.wait_for(anext(events), timeout)
        except TimeoutError:
            event = {**_EXPIRED, "at": payment.expires_at.timestamp()}
        # Every socket of this process watching the payment gets the same bytes for the
        # same change: read and render once, not once per socket (5,000 watchers, one query).
        key = (payment.id, event.get("type"), event.get("at"), as_json)
        payment, message = await _shared(key, partial(_read_and_render, payment.id, event, as_json))
        await websocket.send(message)
        get_metrics().pushed(event)


Rendered = tuple[Payment, str]
FRAGMENTS_KEY = "pixweb.ws.fragments"
FRAGMENTS_KEPT = 256


async def _shared(key: Hashable, render: Callable[[], Awaitable[Rendered]]) -> Rendered:
    """Run `render` once per key in this process; concurrent callers await the same task."""
    cache: OrderedDict[Hashable, asyncio.Task[Rendered]]
    cache = current_app.extensions.setdefault(FRAGMENTS_KEY, OrderedDict())
    task = cache.get(key)
    if task is None:
        task = cache[key] = asyncio.ensure_future(render())
        while len(cache) > FRAGMENTS_KEPT:
            cache.popitem(last=False)
    # Shielded: one watcher leaving must not cancel the render the others wait for.
    return await asyncio.shield(task)


async def _read_and_render(payment_id: UUID, event: Event, as_json: bool) -> Rendered:
    payment = await payments.get_payment(payment_id)
    return payment, await _message(payment, event, as_json)


def _seconds_to_expiry(payment: Payment) -> float | None:
    if payment.status_at(utcnow()) != PaymentStatus.PENDING:
        return None
    # A hair late rather than early: an early wake-up would find it still pending.
    return max((payment.expires_at - utcnow()).total_seconds(), 0.0) + 0.05


async def _announce_presence(broker: Broker, payment: Payment) -> None:
    """Say "viewing" now and whenever the dashboard asks, and "left" when the page goes."""
    viewer = uuid.uuid4().hex
    channel = account_channel(payment.merchant_id)
    event = {"type": "presence", "payment_id": str(payment.id), "viewer": viewer}
    async with broker.subscribe(presence_channel(payment.merchant_id)) as pings:
        try:
            await broker.publish(channel, {**event, "state": "viewing"})
            async for _ in pings:
                await broker.publish(channel, {**event, "state": "viewing"})
        finally:
            await asyncio.shield(broker.publish(channel, {**event, "state": "left"}))


async def _message(payment: Payment, event: Event | None, as_json: bool) -> str:
    """What a socket sends: the status fragment (HTMX) or a `{"event", "data"}` message."""
    if not as_json:
        context = status_context(payment, sandbox=not get_config().production, oob=True)
        return await render_template("partials/payment_status.html", **context)
    name = "payment-status"
    if event is not None and event.get("type") == "payment.paid":
        name = f"payment-confirmed-{payment.id}"  # the first seed's event name
    message: dict[str, Any] = {"event": name, "data": to_jsonable_python(payment_dict(payment))}
    return json.dumps(message)
