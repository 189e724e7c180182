"""`/ws/payments/<id>`: the payer's page (HTML fragments HTMX swaps by id) and, with
`?format=json`, API clients (`{"event", "data"}` messages, the first seed's event names).

A payer's page also tells the merchant's dashboard that someone is viewing the charge
(the payment's room does, see rooms.py).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from quart import Blueprint, render_template, websocket

from pixweb.broker import Event
from pixweb.deps import get_broker, get_config, get_metrics
from pixweb.errors import NotFoundError
from pixweb.models import Payment
from pixweb.presenters import payment_dict, status_context
from pixweb.ws import rooms
from pixweb.ws.common import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    closing_as_ended,
    reading_client,
    unyielding_send,
)

blueprint = Blueprint("ws_payments", __name__)
REFUNDED_EVENTS = {"payment.partially_refunded", "payment.refunded"}  # services.refunds


@blueprint.websocket("/ws/payments/<uuid:payment_id>")
async def payment_socket(payment_id: UUID) -> None:
    """Push the payment's status on connect and on every change, until the client leaves."""
    as_json = websocket.args.get("format") == "json"
    await websocket.accept()
    with get_metrics().socket_open("payment"):
        # The room subscribes (once per payment per process), then reads the payment: a
        # change in between is pushed, not lost. A socket opening is sent the room's copy,
        # kept current by its events: 5,000 pages reconnecting after a deploy cost one
        # read per payment, not one per page.
        async with rooms.watch(payment_id, get_broker(), _message, as_json=as_json) as watcher:
            assert watcher.room is not None  # watch() puts each watcher in its room
            if (payment := watcher.room.payment) is not None:
                await websocket.send(await _message(payment, None, as_json))
            elif watcher.ended_by(NotFoundError):
                await websocket.close(CLOSE_POLICY, "payment not found")
                return
            # (a room that failed otherwise ends the socket below, as for a change it lost)
            async with closing_as_ended(), reading_client(watcher.fail):
                try:
                    await _push_changes(watcher)
                except rooms.RoomFailedError:  # logged by the room
                    await websocket.close(CLOSE_TRY_AGAIN, "could not follow the payment: retry")


async def _push_changes(watcher: rooms.Watcher) -> None:
    """Send what the room renders for each change (and for the expiry)."""
    send, metrics = unyielding_send(), get_metrics()
    while True:
        message, event = await watcher.next()
        await send(message)
        metrics.pushed(event)


async def _message(payment: Payment, event: Event | None, as_json: bool) -> str:
    """What a socket sends: the status fragment (HTMX) or a `{"event", "data"}` message."""
    if not as_json:
        context = status_context(payment, sandbox=not get_config().production, oob=True)
        return await render_template("partials/payment_status.html", **context)
    name = "payment-status"
    if event is not None and event.get("type") == "payment.paid":
        name = f"payment-confirmed-{payment.id}"  # the first seed's event name
    elif event is not None and event.get("type") in REFUNDED_EVENTS:
        name = f"payment-refunded-{payment.id}"
    message: dict[str, Any] = {"event": name, "data": to_jsonable_python(payment_dict(payment))}
    return json.dumps(message)
