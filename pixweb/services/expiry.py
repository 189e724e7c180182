"""Charge expiry as an event: a pending charge past `expires_at` changes no stored state
(its status is derived), so a sweeper records each expiry once and reports charge.expired.

One pass claims the expired charges not yet recorded a batch at a time: one transaction per
batch selects them (`FOR UPDATE SKIP LOCKED` on PostgreSQL: two workers take different rows),
sets `expiry_recorded_at` with a conditional UPDATE and records their events. Every server
process runs `ExpiryJob`; `pixweb expire` runs one pass by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime

from tortoise.transactions import in_transaction

from pixweb.broker import Broker
from pixweb.models import Payment, PaymentStatus, WebhookEndpoint
from pixweb.services import merchant_events
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox
from pixweb.services.jobs import PeriodicJob

log = logging.getLogger(__name__)

BATCH = 200
INTERVAL_SECONDS = 5.0


async def sweep(*, broker: Broker, now: datetime | None = None, batch: int = BATCH) -> int:
    """Record every expiry due at `now` (default: now), once; return how many."""
    now = now or utcnow()
    total = 0
    while True:
        seen, claimed = await _sweep_batch(now, batch, broker)
        total += claimed
        if seen < batch:
            return total


async def _sweep_batch(now: datetime, batch: int, broker: Broker) -> tuple[int, int]:
    """Claim one batch: how many were due, and how many of them this call recorded."""
    outbox = Outbox()
    async with in_transaction():
        due = Payment.filter(
            status=PaymentStatus.PENDING, expiry_recorded_at__isnull=True, expires_at__lte=now
        )
        rows = await due.order_by("expires_at").limit(batch).select_for_update(skip_locked=True)
        if not rows:
            return 0, 0
        ids = [row.id for row in rows]
        claimed = await due.filter(id__in=ids).update(expiry_recorded_at=now)
        if claimed != len(rows):
            # Another process took some between our read and our write (SQLite files shared
            # by processes; PostgreSQL's row locks prevent it): ours are those marked `now`.
            rows = await Payment.filter(id__in=ids, expiry_recorded_at=now)
        endpoints = await _endpoints({row.merchant_id for row in rows})
        for row in rows:
            row.expiry_recorded_at = now
            mine = endpoints.get(row.merchant_id, [])
            await merchant_events.charge(outbox, "charge.expired", row, endpoints=mine)
    await outbox.publish(broker)
    return len(ids), len(rows)


async def _endpoints(merchant_ids: set[int]) -> dict[int, list[WebhookEndpoint]]:
    """The enabled endpoints of a batch's merchants, in one read."""
    found: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    query = WebhookEndpoint.filter(merchant_id__in=merchant_ids, enabled=True, deleted_at=None)
    for endpoint in await query:
        found[endpoint.merchant_id].append(endpoint)
    return found


class ExpiryJob(PeriodicJob):
    """The server's sweeper: a pass every `interval` seconds while it serves."""

    name = "expiry"

    def __init__(self, *, broker: Broker, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__()
        self.broker, self.interval = broker, interval

    async def _loop(self) -> None:
        while True:
            try:
                await sweep(broker=self.broker)
            except Exception:
                log.exception("expiry pass failed")
            await asyncio.sleep(self.interval)
