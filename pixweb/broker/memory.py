"""In-process broker backend: one server process, no external service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pixweb.broker.base import Counters, Event, Subscriber


class MemoryBroker(Counters):
    """In-process broker: channel -> subscribers; publishing costs O(that channel's subscribers)."""

    def __init__(self) -> None:
        self._channels: dict[str, set[Subscriber]] = {}

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    async def publish(self, channel: str, event: Event) -> None:
        # Encoded even with nobody listening (a non-JSON event always fails, as on Redis);
        # decoded once for the channel's subscribers, who never share the publisher's objects.
        text = json.dumps(event)
        self.published += 1
        if subscribers := tuple(self._channels.get(channel, ())):
            frozen = json.loads(text)
            for subscriber in subscribers:
                subscriber.offer(frozen)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        subscriber = Subscriber(self)
        self._channels.setdefault(channel, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._channels[channel]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._channels.clear()
