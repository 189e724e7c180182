"""Two delivery workers on one PostgreSQL share the queue: 1,000 events, each delivered once.

PostgreSQL only (the claim is `FOR UPDATE SKIP LOCKED`): skips without
PIXWEB_TEST_DATABASE_URL, fails under PIXWEB_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import pytest
from quart import Quart
from tortoise.transactions import in_transaction

from pixweb.config import Config
from pixweb.deps import BROKER_KEY
from pixweb.metrics import Metrics
from pixweb.models import DeliveryStatus, Merchant, WebhookAttempt, WebhookDelivery
from pixweb.netguard import UrlPolicy
from pixweb.services import outbox as webhook_outbox
from pixweb.services.delivery import DeliveryWorker
from pixweb.services.events import Outbox
from pixweb.services.webhook_sender import Sender
from tests.services.test_delivery import make_endpoint
from tests.support import need
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.services
EVENTS = 1000


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    if not os.environ.get("PIXWEB_TEST_DATABASE_URL"):
        need("PostgreSQL", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_DATABASE_URL is not set")
    return str(request.getfixturevalue("postgres_url"))


async def test_two_workers_deliver_each_event_once(
    app: Quart, config: Config, merchant: Merchant
) -> None:
    async with Receiver().serving() as receiver:
        await make_endpoint(merchant, config, receiver.url)
        for start in range(0, EVENTS, 100):
            async with in_transaction():
                for n in range(start, start + 100):
                    await webhook_outbox.record(Outbox(), merchant.id, "charge.paid", {"n": n})
        broker = app.extensions[BROKER_KEY]
        workers = [
            DeliveryWorker(
                sender=Sender(policy=UrlPolicy(False, True), timeout=5.0),
                encryption_key=config.encryption_key,
                broker=broker,
                metrics=Metrics(broker),
                per_endpoint=8,
            )
            for _ in range(2)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        try:
            async with asyncio.timeout(120):
                while await WebhookDelivery.filter(status=DeliveryStatus.PENDING).exists():  # noqa: ASYNC110 (another task's rows)
                    await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            for worker in workers:
                await worker.stop()
        ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    # The rate, for the report (`pytest -s`): one process, one core's share, sender and
    # receiver on the same loop.
    print(f"\n{EVENTS} deliveries by two workers in {elapsed:.2f} s: {EVENTS / elapsed:.0f}/s")  # noqa: T201
    assert len(ids) == EVENTS and set(ids.values()) == {1}
    assert await WebhookDelivery.filter(status=DeliveryStatus.SUCCEEDED).count() == EVENTS
    assert await WebhookAttempt.all().count() == EVENTS
    shares = [_delivered(worker) for worker in workers]
    assert sum(shares) == EVENTS and all(shares), shares  # both workers took part


def _delivered(worker: Any) -> int:
    metrics: Metrics = worker.metrics
    value = metrics.registry.get_sample_value(
        "pixweb_webhook_deliveries_total", {"outcome": "succeeded"}
    )
    return int(value or 0)
