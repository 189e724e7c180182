"""Pub/sub between the services that change state and the sockets that show it.

Events are small JSON objects on per-entity channels (`payment:<id>`, `account:<id>`);
no HTML crosses the broker. Subscribers of one process may receive the same decoded
event object: treat events as read-only. `make_broker(url)` picks the backend by URL scheme.

Slow consumers: every subscription has a bounded queue. When a publish finds it
full, the subscription is *dropped*: its iterator raises `SubscriptionLaggedError` and
the socket behind it closes, so the client reconnects and resyncs the current state
from the database. Dropping the oldest message instead would silently lose a state
change; disconnecting makes the loss visible and self-healing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

Event = dict[str, Any]
QUEUE_SIZE = 64


class SubscriptionLaggedError(Exception):
    """The subscriber fell QUEUE_SIZE events behind and was dropped."""


class Broker(Protocol):
    """What services publish to and sockets subscribe from."""

    async def publish(self, channel: str, event: Event) -> None:
        """Send `event` to every current subscriber of `channel`; never blocks on them."""

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Listen to `channel` until the context exits."""

    async def close(self) -> None:
        """Release the backend's resources."""


class _Subscriber:
    __slots__ = ("queue", "lagged")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.lagged = False

    def offer(self, event: Event) -> None:
        if self.lagged:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            # Wake a reader blocked in get() so it notices at once.
            self.queue.get_nowait()
            self.queue.put_nowait({})

    # An iterator object rather than an async generator: cancelling a pending
    # __anext__ (asyncio.wait_for timing out) leaves it usable, a generator would close.
    def __aiter__(self) -> _Subscriber:
        return self

    async def __anext__(self) -> Event:
        event = await self.queue.get()
        if self.lagged:
            raise SubscriptionLaggedError("subscriber too slow: dropped")
        return event


class MemoryBroker:
    """In-process broker: channel -> subscribers; publishing costs O(that channel's subscribers)."""

    def __init__(self) -> None:
        self._channels: dict[str, set[_Subscriber]] = {}

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    async def publish(self, channel: str, event: Event) -> None:
        subscribers = self._channels.get(channel)
        if not subscribers:
            return
        # One JSON round trip per publish: a subscriber never shares the publisher's
        # objects, and a non-JSON event fails here as it would on Redis.
        frozen = json.loads(json.dumps(event))
        for subscriber in tuple(subscribers):
            subscriber.offer(frozen)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        subscriber = _Subscriber()
        self._channels.setdefault(channel, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._channels[channel]

    async def close(self) -> None:
        self._channels.clear()


def make_broker(url: str) -> Broker:
    """Build the broker named by `url`: memory:// (one process) or redis:// (several)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    raise ValueError(f"unsupported broker URL scheme {scheme!r} (use memory://)")
