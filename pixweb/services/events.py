"""Events a transaction produces, published only once it has committed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pixweb.broker import Broker, Event


@dataclass
class Outbox:
    """Collects (channel, event) pairs inside a transaction; `publish` after commit."""

    items: list[tuple[str, Event]] = field(default_factory=list)

    def add(self, channel: str, event: Event) -> None:
        self.items.append((channel, event))

    async def publish(self, broker: Broker) -> None:
        """Send everything collected, in order (the broker logs and counts failures).

        Each event is stamped `at` (epoch seconds) to measure commit-to-push latency.
        """
        at = time.time()
        for channel, event in self.items:
            await broker.publish(channel, {**event, "at": at})
        self.items.clear()
