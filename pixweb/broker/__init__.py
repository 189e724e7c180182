"""Pub/sub between the services that change state and the sockets that show it.

Events are small JSON objects on per-entity channels (`payment:<id>`, `account:<id>`);
no HTML crosses the broker. `make_broker(url)` picks the backend by URL scheme:
`MemoryBroker` (`pixweb.broker.memory`) or `RedisBroker` (`pixweb.broker.redis`, imported
only when asked for, so the memory backend never imports redis). Imports run one way:
the backends import `pixweb.broker.base`, never this package's `__init__`.

The contract (bounded queues, what a lagging or interrupted subscription raises, outages
never raised into the service) is described in `pixweb.broker.base`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from pixweb.broker.base import (
    QUEUE_SIZE,
    Broker,
    Counters,
    Event,
    SubscriptionInterruptedError,
    SubscriptionLaggedError,
)
from pixweb.broker.memory import MemoryBroker

__all__ = [
    "QUEUE_SIZE",
    "Broker",
    "Counters",
    "Event",
    "MemoryBroker",
    "SubscriptionInterruptedError",
    "SubscriptionLaggedError",
    "make_broker",
    "redis_channel_prefix",
]


def redis_channel_prefix(url: str) -> str:
    """Channel namespace for a Redis URL: `?prefix=` if given, else `pixweb:<db>:`.

    Pub/sub ignores the database number, so two deployments sharing one Redis would hear
    each other's `account:<id>` events; deriving the prefix from the db keeps apart those
    that already use different databases.
    """
    parts = urlsplit(url)
    if prefix := parse_qs(parts.query).get("prefix", [""])[0]:
        return prefix
    db = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return f"pixweb:{db}:"


def make_broker(url: str) -> Broker:
    """Build the broker named by `url`: memory:// (one process) or redis:// (several)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    if scheme in ("redis", "rediss", "unix"):
        from pixweb.broker.redis import RedisBroker

        parts = urlsplit(url)
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("prefix="))
        return RedisBroker(
            parts._replace(query=query).geturl(), channel_prefix=redis_channel_prefix(url)
        )
    raise ValueError(f"unsupported broker URL scheme {scheme!r} (use memory:// or redis://)")
