"""`/ws/payments/<id>`: the payer's page (HTML fragments HTMX swaps by id) and, with
`?format=json`, API clients (`{"event", "data"}` messages, the first seed's event names).

A payer's socket also tells the merchant's dashboard that someone is viewing the charge.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from quart import Blueprint, render_template, websocket

from pixweb.broker import Broker, Event
from pixweb.deps import get_broker, get_config, get_metrics
from pixweb.errors import NotFoundError
from pixweb.models import Payment
from pixweb.presenters import payment_dict, status_context
from pixweb.services import payments
from pixweb.services.events import account_channel
from pixweb.ws import rooms
from pixweb.ws.common import CLOSE_POLICY, ignore_client_messages, serve_until_closed

blueprint = Blueprint("ws_payments", __name__)


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
        # The room subscribes (once per payment per process) before the state is read:
        # a change in between is pushed, not lost.
        async with rooms.watch(payment_id, broker, _message, as_json=as_json) as watcher:
            try:
                payment = await payments.get_payment(payment_id)
            except NotFoundError:
                await websocket.close(CLOSE_POLICY, "payment not found")
                return
            await websocket.send(await _message(payment, None, as_json))
            work = [_push_changes(watcher), ignore_client_messages()]
            if not as_json:
                work.append(_announce_presence(broker, payment))
            await serve_until_closed(*work)


async def _push_changes(watcher: rooms.Watcher) -> None:
    """Send what the room renders for each change (and for the expiry)."""
    while True:
        message, event = await watcher.next()
        await websocket.send(message)
        get_metrics().pushed(event)


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
