"""Events: the channels they travel on, and the outbox that publishes them after commit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID

from pixweb.broker import Broker, Event


def payment_channel(payment_id: UUID | str) -> str:
    """The channel of one payment (its payer pages)."""
    return f"payment:{payment_id}"


def account_channel(merchant_id: int) -> str:
    """Name the broker channel of one merchant's account (balance, movements, notices)."""
    return f"account:{merchant_id}"


def presence_channel(merchant_id: int) -> str:
    """Where a dashboard asks the payer pages of its merchant to say they are open."""
    return f"presence:{merchant_id}"


@dataclass
class Outbox:
    """Collects (channel, event) pairs inside a transaction; `publish` after commit."""

    items: list[tuple[str, Event]] = field(default_factory=list)

    def add(self, channel: str, event: Event) -> None:
        self.items.append((channel, event))

    def take(self, other: Outbox) -> None:
        """Add what `other` collected (a savepoint's events, once it was released)."""
        self.items.extend(other.items)

    async def publish(self, broker: Broker) -> None:
        """Send everything collected, in order (the broker logs and counts failures).

        Each event is stamped `at` (epoch seconds) to measure commit-to-push latency.
        """
        at = time.time()
        for channel, event in self.items:
            await broker.publish(channel, {**event, "at": at})
        self.items.clear()
