"""The delivery worker as the server runs it: started with the app's lifespan, woken by
the commit's broker event, counted in /metrics, stopped with the app."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from quart import Quart
from standardwebhooks import Webhook
from tortoise.transactions import in_transaction

from pixweb.config import Config
from pixweb.models import Merchant, WebhookDelivery
from pixweb.services import outbox as webhook_outbox
from pixweb.services.events import Outbox
from tests.services.test_delivery import make_endpoint
from tests.webhook_receiver import Receiver


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"deliver_webhooks": True, "allow_private_urls": True}


async def test_the_servers_worker_delivers_a_committed_event(
    app: Quart, config: Config, merchant: Merchant, client: Any, broker: Any
) -> None:
    async with Receiver().serving() as receiver:
        endpoint, secret = await make_endpoint(merchant, config, receiver.url)
        receiver.script(503)
        outbox = Outbox()
        async with in_transaction():
            event = await webhook_outbox.record(outbox, merchant.id, "charge.paid", {"n": 1})
        assert event is not None
        committed = time.monotonic()
        await outbox.publish(broker)
        async with asyncio.timeout(10):
            await receiver.arrived.wait()
        latency = time.monotonic() - committed
        async with asyncio.timeout(10):
            while (await WebhookDelivery.get(event_id=event.id)).attempts == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await WebhookDelivery.filter(event_id=event.id).update(next_attempt_at=event.created_at)
        async with asyncio.timeout(10):
            while (await WebhookDelivery.get(event_id=event.id)).status == "pending":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert latency < 5, latency  # woken by the commit (the poll is the fallback)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    assert Webhook(secret).verify(second.body, second.headers)["type"] == "charge.paid"
    text = (await (await client.get("/metrics")).get_data()).decode()
    assert 'pixweb_webhook_deliveries_total{outcome="succeeded"} 1.0' in text
    assert 'pixweb_webhook_attempts_total{answer="5xx"} 1.0' in text
    assert 'pixweb_webhook_attempts_total{answer="2xx"} 1.0' in text
    assert "pixweb_webhook_oldest_pending_seconds" in text
