"""`/ws/payments/<id>`: the payer's page (HTML fragments HTMX swaps by id) and, with
`?format=json`, API clients (`{"event", "data"}` messages, the first seed's event names).

A payer's socket also tells the merchant's dashboard that someone is viewing the charge.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from quart import Blueprint, render_template, websocket

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
    try:
        payment = await payments.get_payment(payment_id)
    except NotFoundError:
        await websocket.close(CLOSE_POLICY, "payment not found")
        return
    broker = get_broker()
    with get_metrics().socket_open("payment"):
        async with broker.subscribe(payment_channel(payment_id)) as events:
            payment = await payments.get_payment(payment_id)  # read after subscribing
            await _send(payment, None, as_json)
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
            event = _EXPIRED
        payment = await payments.get_payment(payment.id)
        await _send(payment, event, as_json)
        get_metrics().pushed(event)


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


async def _send(payment: Payment, event: Event | None, as_json: bool) -> None:
    if not as_json:
        context = status_context(payment, sandbox=not get_config().production, oob=True)
        await websocket.send(await render_template("partials/payment_status.html", **context))
        return
    name = "payment-status"
    if event is not None and event.get("type") == "payment.paid":
        name = f"payment-confirmed-{payment.id}"  # the first seed's event name
    message: dict[str, Any] = {"event": name, "data": to_jsonable_python(payment_dict(payment))}
    await websocket.send(json.dumps(message))
