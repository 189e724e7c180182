"""What every broker backend shares: the protocol, its errors, counters and local queues.

Events are small JSON objects on per-entity channels (`payment:<id>`, `account:<id>`);
no HTML crosses the broker. Subscribers of one process may receive the same decoded
event object: treat events as read-only.

Slow consumers: every subscription has a bounded queue. When a publish finds it
full, the subscription is *dropped*: its iterator raises `SubscriptionLaggedError` and
the socket behind it closes, so the client reconnects and resyncs the current state
from the database. Dropping the oldest message instead would silently lose a state
change; disconnecting makes the loss visible and self-healing. A backend that may have
missed events for another reason (a lost or stalled Redis) raises the subclass
`SubscriptionInterruptedError`, so callers handle both with one `except`.

Publishing happens after the database commit: the state change stands whatever the
broker does, so a backend outage is logged and counted (`publish_failures`), never
raised into the service. Each backend counts for metrics: `published` events,
`delivered` (event, subscriber) pairs, subscriptions `dropped` for lagging and
`interrupted` by a lost connection, and `publish_failures`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Event = dict[str, Any]
QUEUE_SIZE = 64


class SubscriptionLaggedError(Exception):
    """The subscriber fell QUEUE_SIZE events behind and was dropped."""


class SubscriptionInterruptedError(SubscriptionLaggedError):
    """The backend lost (or never got) its connection: events may have been missed."""


class Broker(Protocol):
    """What services publish to and sockets subscribe from."""

    published: int
    delivered: int
    dropped: int
    interrupted: int
    publish_failures: int

    @property
    def channel_count(self) -> int:
        """Count the channels that have local subscribers now."""

    async def publish(self, channel: str, event: Event) -> None:
        """Send `event` to every current subscriber of `channel`; never blocks on them.

        Raises TypeError for an event that is not JSON; never raises for a backend outage.
        """

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Listen to `channel` until the context exits."""

    async def ping(self) -> bool:
        """Tell whether the backend answers now (for a readiness probe)."""

    async def close(self) -> None:
        """Release the backend's resources."""


class Counters:
    """The counters every backend exposes as attributes, for a /metrics endpoint."""

    published = 0
    delivered = 0
    dropped = 0
    interrupted = 0
    publish_failures = 0

    def counters(self) -> dict[str, int]:
        """Return the counters by name."""
        names = ("published", "delivered", "dropped", "interrupted", "publish_failures")
        return {name: getattr(self, name) for name in names}


class Subscriber:
    """One subscription's bounded queue, and the iterator its reader awaits."""

    __slots__ = ("queue", "error", "counters")

    def __init__(self, counters: Counters) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.error: SubscriptionLaggedError | None = None
        self.counters = counters

    def offer(self, event: Event) -> None:
        if self.error is not None:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.counters.dropped += 1
            self.fail(SubscriptionLaggedError("subscriber too slow: dropped"))
        else:
            self.counters.delivered += 1

    def fail(self, error: SubscriptionLaggedError) -> None:
        """Make the iterator raise `error`, at once if a reader is waiting."""
        if self.error is not None:
            return
        self.error = error
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait({})  # wakes a reader blocked in get()

    # An iterator object rather than an async generator: cancelling a pending
    # __anext__ (asyncio.wait_for timing out) leaves it usable, a generator would close.
    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Event:
        if self.error is None:
            event = await self.queue.get()
            if self.error is None:
                return event
        raise self.error.with_traceback(None)
