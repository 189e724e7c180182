"""Payment rooms: one per watched payment per process, shared by all its sockets here.

A room holds the one broker subscription of its payment in this process. On a change it
reads the payment once and renders each format once, then hands the same message to every
socket: 5,000 payers watching one charge cost one query and one render, not 5,000. It also
runs the payment's expiry timer. A room ends with its last socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from quart import current_app

from pixweb.broker import Broker, Event, SubscriptionLaggedError
from pixweb.models import Payment, PaymentStatus
from pixweb.services import payments
from pixweb.services.clock import utcnow
from pixweb.services.events import payment_channel
from pixweb.ws.common import seconds_until

ROOMS_KEY = "pixweb.ws.rooms"
INBOX_SIZE = 16
SUBSCRIBE_TIMEOUT = 10.0


class Renderer(Protocol):
    async def __call__(self, payment: Payment, event: Event | None, as_json: bool) -> str: ...


@dataclass(eq=False)
class Watcher:
    """One socket in a room: its format and the messages waiting to be sent."""

    as_json: bool
    inbox: asyncio.Queue[tuple[str, Event] | BaseException] = field(
        default_factory=lambda: asyncio.Queue(INBOX_SIZE)
    )

    def offer(self, item: tuple[str, Event] | BaseException) -> None:
        try:
            self.inbox.put_nowait(item)
        except asyncio.QueueFull:  # too slow: close it, the page reconnects and resyncs
            self.inbox.get_nowait()
            self.inbox.put_nowait(SubscriptionLaggedError("socket fell behind"))

    async def next(self) -> tuple[str, Event]:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item


class Room:
    """The watchers of one payment in this process, and the task that feeds them."""

    def __init__(self, payment_id: UUID, broker: Broker, render: Renderer) -> None:
        self.payment_id = payment_id
        self.watchers: set[Watcher] = set()
        self.subscribed = asyncio.Event()
        self._render = render
        self._task = asyncio.create_task(self._run(broker))

    async def _run(self, broker: Broker) -> None:
        try:
            async with broker.subscribe(payment_channel(self.payment_id)) as events:
                self.subscribed.set()
                payment = await payments.get_payment(self.payment_id)
                while True:
                    try:
                        event = await asyncio.wait_for(anext(events), _seconds_to_expiry(payment))
                    except TimeoutError:
                        event = {"type": "payment.expired", "at": payment.expires_at.timestamp()}
                    payment = await payments.get_payment(self.payment_id)
                    await self._deliver(payment, event)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # lagged, database gone...: every socket closes
            for watcher in self.watchers:
                watcher.offer(error)
            self.subscribed.set()

    async def _deliver(self, payment: Payment, event: Event) -> None:
        rendered: dict[bool, str] = {}
        for watcher in list(self.watchers):
            if watcher.as_json not in rendered:
                rendered[watcher.as_json] = await self._render(payment, event, watcher.as_json)
            watcher.offer((rendered[watcher.as_json], event))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _seconds_to_expiry(payment: Payment) -> float | None:
    if payment.status_at(utcnow()) != PaymentStatus.PENDING:
        return None
    return seconds_until(payment.expires_at)


@contextlib.asynccontextmanager
async def watch(
    payment_id: UUID, broker: Broker, render: Renderer, *, as_json: bool
) -> AsyncIterator[Watcher]:
    """Join the payment's room (made on first use); subscribed when this yields."""
    rooms: dict[UUID, Room] = current_app.extensions.setdefault(ROOMS_KEY, {})
    room = rooms.get(payment_id)
    if room is None or room._task.done():
        room = rooms[payment_id] = Room(payment_id, broker, render)
    watcher = Watcher(as_json)
    room.watchers.add(watcher)
    try:
        await asyncio.wait_for(room.subscribed.wait(), SUBSCRIBE_TIMEOUT)
        yield watcher
    finally:
        room.watchers.discard(watcher)
        if not room.watchers and rooms.get(payment_id) is room:
            del rooms[payment_id]
            await room.close()
