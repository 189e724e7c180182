"""What the "Webhooks" page shows: the endpoints and the newest deliveries of each one.

Shared by the page (`web/webhooks.py`) and its socket's resync and pushes (`ws/webhooks.py`),
which never import each other. Read-only: every change goes through the services.
"""

from __future__ import annotations

from typing import Any

from pixweb.services import webhook_endpoints, webhook_log
from pixweb.services.outbox import EVENT_TYPES

LOG_SIZE = 10  # deliveries listed per endpoint before "Carregar mais"


async def page_context(merchant_id: int) -> dict[str, Any]:
    """The endpoints (oldest first) and the first page of each one's log."""
    rows = await webhook_endpoints.list_endpoints(merchant_id)
    logs = {
        row.id: await webhook_log.list_deliveries(merchant_id, row.id, limit=LOG_SIZE)
        for row in rows
    }
    return {"endpoints": rows, "logs": logs, "event_types": EVENT_TYPES}
