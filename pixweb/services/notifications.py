"""Notification history: newest first, unread count, marking as read."""

from __future__ import annotations

from dataclasses import dataclass

from pixweb.models import Notification
from pixweb.services.clock import utcnow


@dataclass(frozen=True)
class History:
    items: list[Notification]
    unread: int
    next_before: int | None


async def history(merchant_id: int, *, limit: int = 20, before: int | None = None) -> History:
    """A page of a merchant's notifications, newest first, with the unread count."""
    query = Notification.filter(merchant_id=merchant_id)
    if before is not None:
        query = query.filter(id__lt=before)
    items = await query.order_by("-id").limit(limit + 1)
    unread = await Notification.filter(merchant_id=merchant_id, read_at__isnull=True).count()
    more = len(items) > limit
    items = items[:limit]
    return History(items, unread, items[-1].id if more else None)


async def mark_read(merchant_id: int, ids: list[int] | None) -> int:
    """Mark some (or, with None, all) of a merchant's notifications read; return how many."""
    query = Notification.filter(merchant_id=merchant_id, read_at__isnull=True)
    if ids is not None:
        query = query.filter(id__in=ids)
    return await query.update(read_at=utcnow())
