"""The queue of merchant-webhook deliveries: claiming the due ones for a worker, handing
claims back, and the age of the oldest one still owed.

A claim moves a delivery's `next_attempt_at` to the end of the claimer's lease. On
PostgreSQL one statement selects with `FOR UPDATE SKIP LOCKED` and moves them, so workers
in every process and host share the queue and never claim the same row. On SQLite (one
host) a lock of the process makes the claimers of one process take turns.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime

from pixweb.models import DeliveryStatus, WebhookDelivery
from pixweb.services import sql
from pixweb.services.clock import utcnow

_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM webhook_delivery
    WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (endpoint_id = ANY($2::int[]))
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_delivery AS d SET next_attempt_at = $4
FROM due WHERE d.id = due.id
RETURNING d.id, d.endpoint_id
"""


# SQLite: one claimer per process (workers on one loop share it). `pixweb webhooks deliver`
# beside a server could send a delivery twice (at least once still holds), never lose one.
_sqlite_claims: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
_sqlite_claims = weakref.WeakKeyDictionary()


async def claim_due(
    now: datetime, lease_until: datetime, skip_endpoints: list[int], limit: int
) -> list[tuple[int, int]]:
    """Claim at most `limit` due deliveries until `lease_until`, skipping `skip_endpoints`:
    (delivery id, endpoint id) pairs, the longest due first."""
    connection, postgres = sql.connection()
    if postgres:
        _, rows = await connection.execute_query(
            _CLAIM_SQL, [now, skip_endpoints, limit, lease_until]
        )
        return [(row["id"], row["endpoint_id"]) for row in rows]
    lock = _sqlite_claims.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        return await _claim_sqlite(now, lease_until, skip_endpoints, limit)


async def _claim_sqlite(
    now: datetime, lease_until: datetime, skip_endpoints: list[int], limit: int
) -> list[tuple[int, int]]:
    query = WebhookDelivery.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    if skip_endpoints:
        query = query.exclude(endpoint_id__in=skip_endpoints)
    due = await query.order_by("next_attempt_at").limit(limit).values_list("id", "endpoint_id")
    if due:
        await WebhookDelivery.filter(id__in=[d for d, _ in due]).update(next_attempt_at=lease_until)
    return [(int(d), int(e)) for d, e in due]


async def load(delivery_ids: list[int]) -> list[WebhookDelivery]:
    """Claimed deliveries with their event and endpoint, in one query."""
    if not delivery_ids:
        return []
    return await WebhookDelivery.filter(id__in=delivery_ids).select_related("event", "endpoint")


async def hand_back(delivery_ids: list[int]) -> None:
    """Make claimed deliveries due now (those still owed)."""
    if not delivery_ids:
        return
    await WebhookDelivery.filter(id__in=delivery_ids, status=DeliveryStatus.PENDING).update(
        next_attempt_at=utcnow()
    )


async def oldest_pending_seconds() -> float:
    """The age of the oldest delivery still owed (0 when none is)."""
    oldest = (
        await WebhookDelivery.filter(status=DeliveryStatus.PENDING)
        .order_by("created_at")
        .first()
        .only("created_at")
    )
    return max((utcnow() - oldest.created_at).total_seconds(), 0.0) if oldest else 0.0
