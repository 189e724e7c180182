"""A real `pixweb serve` killed with SIGKILL while it sends a committed event: after the
restart the event is delivered, once, with the same `webhook-id` (at least once: the
receiver saw the unanswered first POST too, which no attempt row records).

On SQLite, and on PostgreSQL when PIXWEB_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.transactions import in_transaction

from pixweb import db
from pixweb.config import load_config
from pixweb.models import WebhookAttempt, WebhookDelivery
from pixweb.services import outbox as webhook_outbox
from pixweb.services.events import Outbox
from tests.conftest import DATABASES, make_merchant
from tests.server import ENCRYPTION_KEY, Server
from tests.services.test_delivery import make_endpoint
from tests.support import fresh_postgres_database
from tests.webhook_receiver import Receiver

TIMEOUT = 1.0  # the server's webhook timeout: its claims last 6 s


@pytest.fixture(params=DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'pixweb.sqlite3'}"
        return
    url, drop = await fresh_postgres_database()
    try:
        yield url
    finally:
        await drop()


async def test_killed_mid_send_delivers_after_restart_once(
    tmp_path: Path, database_url: str
) -> None:
    env = {
        "PIXWEB_DELIVER_WEBHOOKS": "1",
        "PIXWEB_ALLOW_PRIVATE_URLS": "1",
        "PIXWEB_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT),
    }
    server = Server(tmp_path / "server", database_url=database_url, env=env)
    async with Receiver().serving() as receiver:
        receiver.script((200, b"", 30.0, {}))  # holds the first POST: the kill comes first
        await asyncio.to_thread(server.start)
        try:
            await db.open_database(database_url)
            config = load_config({"testing": True, "encryption_key": ENCRYPTION_KEY})
            merchant = await make_merchant()
            await make_endpoint(merchant, config, receiver.url)
            async with in_transaction():
                event = await webhook_outbox.record(Outbox(), merchant.id, "charge.paid", {})
            assert event is not None
            async with asyncio.timeout(10):
                await receiver.arrived.wait()
            os.killpg(server.pid, signal.SIGKILL)
            server.stop()
            delivery = await WebhookDelivery.get(event_id=event.id)
            assert (delivery.status, delivery.attempts) == ("pending", 0)

            await asyncio.to_thread(server.start)
            async with asyncio.timeout(6 * TIMEOUT + 10):
                while delivery.status == "pending":
                    await asyncio.sleep(0.1)
                    delivery = await WebhookDelivery.get(id=delivery.id)
            await asyncio.sleep(1.5)  # a second send would come within the poll
            attempts = await WebhookAttempt.filter(delivery_id=delivery.id).count()
        finally:
            await asyncio.to_thread(server.stop)
            await db.close_database()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event.id, event.id]
    assert attempts == 1
