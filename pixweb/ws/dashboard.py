"""`/ws/dashboard`: the merchant's dashboard, kept live with HTML fragments.

Session-authenticated (the dashboard's cookie) with the Origin checked, since browsers
send cookies on cross-site WebSocket handshakes. On every (re)connect it resyncs the
whole state; then each event on the merchant's channel becomes a few OOB fragments.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

from quart import Blueprint, render_template, websocket

from pixweb import dashboard_view
from pixweb.broker import Event
from pixweb.deps import get_broker, get_metrics
from pixweb.models import (
    Merchant,
    Movement,
    MovementKind,
    Notification,
    PaymentStatus,
    ReceivedPix,
)
from pixweb.presenters import chart_context, dashboard_context
from pixweb.services import notifications, payments, received
from pixweb.services.clock import utcnow
from pixweb.services.events import account_channel, presence_channel
from pixweb.ws.common import (
    ignore_client_messages,
    page_merchant,
    seconds_until,
    serve_until_closed,
)

blueprint = Blueprint("ws_dashboard", __name__)


@blueprint.websocket("/ws/dashboard")
async def dashboard_socket() -> None:
    """Resync on connect, then push balance, movements, charges and notices as they happen."""
    await websocket.accept()
    if (merchant := await page_merchant()) is None:
        return
    broker = get_broker()
    with get_metrics().socket_open("dashboard"):
        async with broker.subscribe(account_channel(merchant.id)) as events:
            context = await dashboard_context(merchant)
            extras = await dashboard_view.dashboard_extras(merchant.id)
            sync = await render_template(
                "partials/dashboard_sync.html", **context, **extras, oob=True
            )
            await websocket.send(sync)
            await broker.publish(presence_channel(merchant.id), {"type": "presence.ping"})
            live = _Live(merchant, {**context, **extras})
            await serve_until_closed(live.push(events), ignore_client_messages())


class _Live:
    """One dashboard's view: who is viewing which charge, and when pending ones expire."""

    def __init__(self, merchant: Merchant, context: dict[str, Any]) -> None:
        self.merchant = merchant
        self.viewers: defaultdict[str, set[str]] = defaultdict(set)
        # Rows on screen: a fragment for a row the page lacks would be an htmx error.
        self.shown = {str(p.id) for p in context["charges"]}
        self.waiting = {str(pix.id) for pix in context["to_reconcile"]}  # "Pix a conciliar"
        self.psp: dashboard_view.PspStatus = context["psp"]
        self.expiries: dict[str, datetime] = {
            str(p.id): p.expires_at
            for p in context["charges"]
            if p.status_at(context["now"]) == PaymentStatus.PENDING
        }

    async def push(self, events: AsyncIterator[Event]) -> None:
        while True:
            due = min(self.expiries.items(), key=lambda item: item[1], default=None)
            timeout = None if due is None else seconds_until(due[1])
            try:
                event = await asyncio.wait_for(anext(events), timeout)
            except TimeoutError:
                assert due is not None
                event = {"type": "payment.expired", "payment_id": due[0]}
            if html := await self.render(event):
                await websocket.send(html)
                get_metrics().pushed(event)

    async def render(self, event: Event) -> str | None:
        kind = event.get("type", "")
        if kind == "movement":
            return await self.movement(event)
        if kind == "notification":
            return await self.notification(event)
        if kind in ("pix.received", "pix.attached"):
            return await self.to_reconcile(event)
        payment_id = event.get("payment_id", "")
        if kind == "presence":
            viewers = self.viewers[payment_id]
            (viewers.add if event["state"] == "viewing" else viewers.discard)(event["viewer"])
        elif kind == "payment.created":
            self.shown.add(payment_id)
            self.expiries[payment_id] = datetime.fromisoformat(event["expires_at"])
            return await self.charge(payment_id, new=True) + await self.psp_line()
        elif kind.startswith("payment."):
            self.expiries.pop(payment_id, None)
        return await self.charge(payment_id) if payment_id in self.shown else None

    async def charge(self, payment_id: str, *, new: bool = False) -> str:
        payment = await payments.get_payment(UUID(payment_id), merchant_id=self.merchant.id)
        context = {"payment": payment, "now": utcnow(), "viewers": self.viewers.get(payment_id)}
        return await render_template("partials/dashboard_charge.html", new=new, **context)

    async def psp_line(self) -> str:
        """The PSP status line when it changed (development connects the sandbox PSP on a
        merchant's first charge; the last reconciliation ages)."""
        status = await dashboard_view.psp_status(self.merchant.id)
        if status == self.psp:
            return ""
        self.psp = status
        return await render_template("partials/psp_status.html", psp=status, oob=True)

    async def movement(self, event: Event) -> str:
        # Read back from the database: the same objects the page renders, one template.
        movement = await Movement.get(id=event["movement"]["id"])
        notification = await Notification.get(id=event["notification"]["id"])
        context: dict[str, Any] = {
            "movement": movement,
            "notification": notification,
            "balance_cents": event["balance_cents"],
            "unread": (await notifications.history(self.merchant.id, limit=1)).unread,
            "spoken": None,
            # A Pix that paid no charge is told once, by its own "Pix a conciliar" notice
            # (which says why): its credit's notice is listed, without a second toast.
            "toast": not await dashboard_view.is_to_reconcile(movement.id),
        }
        if movement.kind == MovementKind.PIX_RECEBIDO:
            context["spoken"] = spoken_amount(movement.amount_cents)
            context.update(await chart_context(self.merchant.id))
        return await render_template("partials/dashboard_movement.html", **context)

    async def notification(self, event: Event) -> str | None:
        """A notice that came without a movement (a Pix to reconcile, a refund...)."""
        notification = await Notification.get_or_none(
            id=event["notification"]["id"], merchant_id=self.merchant.id
        )
        if notification is None:
            return None
        unread = (await notifications.history(self.merchant.id, limit=1)).unread
        context = {"notification": notification, "unread": unread}
        return await render_template("partials/dashboard_notification.html", **context)

    async def to_reconcile(self, event: Event) -> str | None:
        """A Pix joins "Pix a conciliar" (recorded without paying a charge) or leaves it."""
        e2e = event["pix"]["end_to_end_id"]
        record = await dashboard_view.waiting_pix(self.merchant.id, e2e)
        if event["type"] == "pix.received" and record is None:
            return None  # it paid its charge: nothing to reconcile
        new = record is not None and str(record.id) not in self.waiting
        gone = None
        if record is None:
            gone = await ReceivedPix.get_or_none(merchant_id=self.merchant.id, end_to_end_id=e2e)
        # Only rows on screen are removed (a fragment for a missing row is an htmx error).
        if gone is not None and str(gone.id) in self.waiting:
            self.waiting.discard(str(gone.id))
        else:
            gone = None
        if new:
            assert record is not None
            self.waiting.add(str(record.id))
        context = {
            "pix": record if new else None,
            "gone": gone,
            "to_reconcile_count": await received.count_to_reconcile(self.merchant.id),
            "outcome_label": dashboard_view.outcome_label,
        }
        return await render_template("partials/dashboard_to_reconcile.html", **context)


def spoken_amount(cents: int) -> str:
    """What the counter-top speaker says: "Pix recebido: 12 reais e 50 centavos"."""
    reais, centavos = divmod(cents, 100)
    words = f"{reais} {'real' if reais == 1 else 'reais'}"
    if centavos:
        words += f" e {centavos} {'centavo' if centavos == 1 else 'centavos'}"
    return f"Pix recebido: {words}"
