"""WebSocket routes: subscribe, send the current state, then push every change.

`/ws/payments/<id>` serves the payer's page (HTML fragments that HTMX swaps by id) and,
with `?format=json`, API clients (`{"event", "data"}` messages, the first seed's names).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from quart import Blueprint, render_template, websocket

from pixweb.broker import Event, SubscriptionLaggedError
from pixweb.deps import get_broker
from pixweb.errors import NotFoundError
from pixweb.models import Payment, PaymentStatus
from pixweb.presenters import payment_dict, status_context
from pixweb.services import payments
from pixweb.services.clock import utcnow

blueprint = Blueprint("ws_payments", __name__)

CLOSE_POLICY = 1008  # unknown resource
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # htmx's ws extension reconnects on 1006, 1011, 1012 and 1013
MAX_CLIENT_MESSAGE = 4096
_EXPIRED: Event = {"type": "payment.expired"}


@blueprint.websocket("/ws/payments/<uuid:payment_id>")
async def payment_socket(payment_id: UUID) -> None:
    """Push the payment's status on connect and on every change, until the client leaves."""
    as_json = websocket.args.get("format") == "json"
    await websocket.accept()
    try:
        await payments.get_payment(payment_id)
    except NotFoundError:
        await websocket.close(CLOSE_POLICY, "payment not found")
        return
    # Subscribe before reading the state: a change in between is then pushed, not lost.
    async with get_broker().subscribe(payments.payment_channel(payment_id)) as events:
        payment = await payments.get_payment(payment_id)
        await _send(payment, None, as_json)
        pushes = asyncio.create_task(_push_changes(payment, events, as_json))
        reads = asyncio.create_task(_ignore_client_messages())
        try:
            done, _ = await asyncio.wait({pushes, reads}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        except SubscriptionLaggedError:
            await websocket.close(CLOSE_TRY_AGAIN, "fell behind: reconnect")
        finally:
            for task in (pushes, reads):
                task.cancel()
            for task in (pushes, reads):
                with contextlib.suppress(asyncio.CancelledError):
                    await task


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


def _seconds_to_expiry(payment: Payment) -> float | None:
    if payment.status_at(utcnow()) != PaymentStatus.PENDING:
        return None
    # A hair late rather than early: an early wake-up would find it still pending.
    return max((payment.expires_at - utcnow()).total_seconds(), 0.0) + 0.05


async def _ignore_client_messages() -> None:
    """Read and drop what the client sends (nothing is expected), refusing big frames."""
    while True:
        message = await websocket.receive()
        if len(message) > MAX_CLIENT_MESSAGE:
            await websocket.close(CLOSE_TOO_BIG, "message too big")
            return


async def _send(payment: Payment, event: Event | None, as_json: bool) -> None:
    if not as_json:
        context = status_context(payment, oob=True)
        await websocket.send(await render_template("partials/payment_status.html", **context))
        return
    name = "payment-status"
    if event is not None and event.get("type") == "payment.paid":
        name = f"payment-confirmed-{payment.id}"  # the first seed's event name
    message: dict[str, Any] = {"event": name, "data": to_jsonable_python(payment_dict(payment))}
    await websocket.send(json.dumps(message))
