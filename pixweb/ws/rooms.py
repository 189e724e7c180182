"""Payment rooms: one per watched payment per process, shared by all its sockets here.

A room holds its payment's one broker subscription in this process. On a change it reads
the payment once and renders each format once, then hands the same message to every
socket: 5,000 payers watching one charge cost one query and one render, not 5,000. It
also runs the payment's expiry timer and, while a person has the page open here, tells
the merchant's dashboard so. A room ends with its last socket.

Sockets are many and rooms few, so the per-socket state is kept small (make bench, idle
sockets): a socket is its handler task, one task reading what the client sends and a
`Watcher` mailbox (a list and a future, not an asyncio.Queue: a Queue is 3 KB). Whatever
ends a socket (falling behind, a frame too big, a graceful shutdown) arrives in its
mailbox as an exception, so the handler needs no task to watch for each of them.

A room that cannot render a change (or loses its payment) logs why and ends the sockets
concerned with `RoomFailedError`, which their handler closes with 1013: htmx's ws
extension and API clients reconnect and are sent the current state. A socket is never
left open on a state it was not told has changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Protocol
from uuid import UUID

from quart import current_app

from pixweb.broker import Broker, Event, SubscriptionLaggedError
from pixweb.deps import get_shutdown
from pixweb.errors import NotFoundError
from pixweb.models import Payment, PaymentStatus
from pixweb.services import payments
from pixweb.services.clock import utcnow
from pixweb.services.events import account_channel, payment_channel, presence_channel
from pixweb.ws.common import ServerClosingError, cancelled, seconds_until

ROOMS_KEY = "pixweb.ws.rooms"
INBOX_SIZE = 16
SUBSCRIBE_TIMEOUT = 10.0
FIRST_READS = 4  # rooms reading their payment at once (see Rooms)

log = logging.getLogger(__name__)


class RoomFailedError(Exception):
    """The room could not tell a socket about a change: it reconnects and resyncs."""


class Renderer(Protocol):
    async def __call__(self, payment: Payment, event: Event | None, as_json: bool) -> str: ...


class Watcher:
    """One socket in a room: its format, its room and the messages waiting to be sent."""

    __slots__ = ("as_json", "room", "_pending", "_wakeup")

    def __init__(self, as_json: bool, room: Room | None = None) -> None:
        self.as_json = as_json
        self.room = room
        self._pending: list[tuple[str, Event] | BaseException] = []
        self._wakeup: asyncio.Future[None] | None = None

    def offer(self, item: tuple[str, Event]) -> None:
        """Queue a message; a socket this far behind is closed, and resyncs on reconnect."""
        if self._pending and isinstance(self._pending[-1], BaseException):
            return
        if len(self._pending) >= INBOX_SIZE:
            self.fail(SubscriptionLaggedError("socket fell behind"))
            return
        self._pending.append(item)
        self._wake()

    def fail(self, error: BaseException) -> None:
        """End the socket: `next()` raises `error` now, whatever was still waiting."""
        self._pending = [error]
        self._wake()

    def ended_by(self, kind: type[BaseException]) -> bool:
        """Whether the socket has been ended, by an exception of this kind."""
        return bool(self._pending) and isinstance(self._pending[-1], kind)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def next(self) -> tuple[str, Event]:
        """The next message to send; raises what ended the socket."""
        while not self._pending:
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        item = self._pending[0]
        if isinstance(item, BaseException):
            raise item  # and stays: the socket has ended
        del self._pending[0]
        return item


class Room:
    """The watchers of one payment in this process, the task that feeds them, and the
    presence announcement while some of them are people on the page."""

    def __init__(
        self,
        payment_id: UUID,
        broker: Broker,
        render: Renderer,
        first_reads: asyncio.Semaphore,
    ) -> None:
        self.payment_id = payment_id
        self.watchers: set[Watcher] = set()
        self.subscribed = asyncio.Event()
        # The payment as the room's events left it, read once after subscribing: what a
        # socket opening is sent first. None until then, or when there is no such payment.
        self.payment: Payment | None = None
        self._broker = broker
        self._render = render
        self._first_reads = first_reads  # shared by the process's rooms (see Rooms)
        self._task = asyncio.create_task(self._run())
        self._people = 0  # HTML watchers: a person has the page open
        self._presence: asyncio.Task[None] | None = None

    def join(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)
        if not watcher.as_json:
            self._people += 1
            if self._presence is None:
                self._presence = asyncio.create_task(self._announce_presence())

    async def leave(self, watcher: Watcher) -> None:
        self.watchers.remove(watcher)
        if not watcher.as_json:
            self._people -= 1
            if not self._people and self._presence is not None:
                presence, self._presence = self._presence, None
                await cancelled(presence)

    async def _run(self) -> None:
        try:
            async with self._broker.subscribe(payment_channel(self.payment_id)) as events:
                # Read after subscribing: a change in between is pushed, not lost.
                async with self._first_reads:
                    payment = self.payment = await payments.get_payment(self.payment_id)
                self.subscribed.set()
                while True:
                    try:
                        event = await asyncio.wait_for(anext(events), _seconds_to_expiry(payment))
                    except TimeoutError:
                        event = {"type": "payment.expired", "at": payment.expires_at.timestamp()}
                    if not payments.apply_status_event(payment, event):
                        payment = self.payment = await payments.get_payment(self.payment_id)
                    if not await self._deliver(payment, event):
                        # What failed may be the payment as the event left it: read it back.
                        payment = self.payment = await payments.get_payment(self.payment_id)
        except asyncio.CancelledError:
            raise
        except (SubscriptionLaggedError, NotFoundError) as error:
            # Lagged: the handler closes 1013 and the client resyncs. Not found: the
            # handler, finding no payment either, closes 1008.
            self._fail_all(error)
        except Exception as error:  # the broker or the database gone...
            log.exception("payment room %s failed; its sockets reconnect", self.payment_id)
            failure = RoomFailedError("could not follow the payment")
            failure.__cause__ = error
            self._fail_all(failure)

    def _fail_all(self, error: BaseException) -> None:
        for watcher in self.watchers:
            watcher.fail(error)
        self.subscribed.set()

    async def _deliver(self, payment: Payment, event: Event) -> bool:
        """Render the change once per format and hand it to each socket; False when a
        format failed to render: its sockets are ended (they resync), the others served."""
        rendered: dict[bool, str | RoomFailedError] = {}
        for watcher in list(self.watchers):
            if (as_json := watcher.as_json) not in rendered:
                rendered[as_json] = await self._render_or_failure(payment, event, as_json)
            if isinstance(message := rendered[as_json], str):
                watcher.offer((message, event))
            else:
                watcher.fail(message)
        return all(isinstance(message, str) for message in rendered.values())

    async def _render_or_failure(
        self, payment: Payment, event: Event, as_json: bool
    ) -> str | RoomFailedError:
        try:
            return await self._render(payment, event, as_json)
        except Exception as error:
            what = f"{event.get('type')} ({'json' if as_json else 'html'})"
            log.exception("payment room %s could not render %s", self.payment_id, what)
            failure = RoomFailedError("could not render the change")
            failure.__cause__ = error
            return failure

    async def _announce_presence(self) -> None:
        """Say "viewing" now and whenever the dashboard asks, and "left" when the last
        person here leaves (API clients are not people on the page)."""
        await self.subscribed.wait()
        if self.payment is None:
            return  # no such payment (or the room failed): the handler closes the socket
        merchant_id = self.payment.merchant_id
        broker, channel = self._broker, account_channel(merchant_id)
        event = {"type": "presence", "payment_id": str(self.payment_id)}
        event["viewer"] = uuid.uuid4().hex  # this room; other processes have their own
        try:
            while True:  # a subscription interrupted (a broker outage) may have missed pings
                async with broker.subscribe(presence_channel(merchant_id)) as pings:
                    with contextlib.suppress(SubscriptionLaggedError):
                        await broker.publish(channel, {**event, "state": "viewing"})
                        async for _ in pings:
                            await broker.publish(channel, {**event, "state": "viewing"})
                await asyncio.sleep(1.0)  # then subscribe and say "viewing" again
        finally:
            await asyncio.shield(broker.publish(channel, {**event, "state": "left"}))

    async def close(self) -> None:
        for task in (self._presence, self._task):
            if task is not None:
                await cancelled(task)


def _seconds_to_expiry(payment: Payment) -> float | None:
    if payment.status_at(utcnow()) != PaymentStatus.PENDING:
        return None
    return seconds_until(payment.expires_at)


class Rooms:
    """This process's rooms, and the one task that ends their sockets on a graceful
    shutdown (it runs while any room exists)."""

    def __init__(self, shutdown: asyncio.Event) -> None:
        self.by_payment: dict[UUID, Room] = {}
        # Rooms starting at once (5,000 pages reconnecting after a deploy) read their payment
        # FIRST_READS at a time: the others wait here, not in the database's queue, where
        # every statement of a confirmation arriving meanwhile would wait behind them all.
        self.first_reads = asyncio.Semaphore(FIRST_READS)
        self._shutdown = shutdown
        self._closer: asyncio.Task[None] | None = None

    def room(self, payment_id: UUID, broker: Broker, render: Renderer) -> Room:
        room = self.by_payment.get(payment_id)
        if room is None or room._task.done():
            room = Room(payment_id, broker, render, self.first_reads)
            self.by_payment[payment_id] = room
        if self._closer is None:
            self._closer = asyncio.create_task(self._close_on_shutdown())
        return room

    async def release(self, room: Room) -> None:
        if room.watchers or self.by_payment.get(room.payment_id) is not room:
            return
        del self.by_payment[room.payment_id]
        await room.close()
        if not self.by_payment and self._closer is not None:
            closer, self._closer = self._closer, None
            await cancelled(closer)

    async def _close_on_shutdown(self) -> None:
        await self._shutdown.wait()
        for room in self.by_payment.values():
            for watcher in room.watchers:
                watcher.fail(ServerClosingError("server shutting down"))


class watch:  # noqa: N801 (used as a function: `async with watch(...) as watcher`)
    """Join the payment's room (made on first use); subscribed once entered.

    A class, not a generator-based context manager: every open socket holds one for its
    whole life (the per-socket cost, see the module's docstring)."""

    __slots__ = ("_args", "_joined")

    def __init__(
        self, payment_id: UUID, broker: Broker, render: Renderer, *, as_json: bool
    ) -> None:
        self._args = (payment_id, broker, render, as_json)
        self._joined: tuple[Rooms, Room, Watcher] | None = None

    async def __aenter__(self) -> Watcher:
        payment_id, broker, render, as_json = self._args
        rooms: Rooms | None = current_app.extensions.get(ROOMS_KEY)
        if rooms is None:
            rooms = current_app.extensions[ROOMS_KEY] = Rooms(get_shutdown())
        room = rooms.room(payment_id, broker, render)
        watcher = Watcher(as_json, room)
        room.join(watcher)
        self._joined = (rooms, room, watcher)
        if get_shutdown().is_set():
            watcher.fail(ServerClosingError("server shutting down"))
        try:
            await asyncio.wait_for(room.subscribed.wait(), SUBSCRIBE_TIMEOUT)
        except BaseException:
            await self._leave()
            raise
        return watcher

    async def __aexit__(
        self, kind: type[BaseException] | None, error: object, trace: object
    ) -> None:
        await self._leave()

    async def _leave(self) -> None:
        if self._joined is not None:
            (rooms, room, watcher), self._joined = self._joined, None
            await room.leave(watcher)
            await rooms.release(room)
