"""The merchant-webhook delivery worker against a real local receiver: signatures, retries
on the schedule, 410 and the 3-day streak disabling the endpoint, timeouts, redirects, the
answer cap and the private-address refusal. Time moves by setting `next_attempt_at`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from standardwebhooks import Webhook
from tortoise.transactions import in_transaction

from pixweb.config import Config, ConfigError, load_config
from pixweb.deps import BROKER_KEY
from pixweb.metrics import Metrics
from pixweb.models import (
    DeliveryStatus,
    Merchant,
    Notification,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from pixweb.netguard import UrlPolicy
from pixweb.services import outbox as webhook_outbox
from pixweb.services.clock import utcnow
from pixweb.services.delivery import PER_ENDPOINT, DeliveryWorker, attempt
from pixweb.services.delivery_outcome import SCHEDULE, Attempt
from pixweb.services.events import Outbox, account_channel
from pixweb.services.webhook_secrets import encrypt_secret, new_secret
from pixweb.services.webhook_sender import STORED_BYTES, Sender
from tests.webhook_receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().serving() as running:
        yield running


@pytest.fixture
async def make_worker(app: Quart, config: Config) -> AsyncIterator[Any]:
    """Workers on the test's app (private addresses allowed: the receiver is local)."""
    senders: list[Sender] = []

    def make(**options: Any) -> DeliveryWorker:
        sender = Sender(**{"policy": UrlPolicy(False, True), "timeout": 2.0, **options})
        senders.append(sender)
        return DeliveryWorker(
            sender=sender, encryption_key=config.encryption_key, broker=app.extensions[BROKER_KEY]
        )

    yield make
    for sender in senders:
        await sender.aclose()


async def make_endpoint(
    merchant: Merchant, config: Config, url: str, **fields: Any
) -> tuple[WebhookEndpoint, str]:
    secret = new_secret()
    now = utcnow()
    endpoint = await WebhookEndpoint.create(
        merchant_id=merchant.id,
        url=url,
        events=list(webhook_outbox.EVENT_TYPES),
        secret=encrypt_secret(config.encryption_key, merchant.id, secret),
        created_at=now,
        updated_at=now,
        **fields,
    )
    return endpoint, secret


async def emit(merchant: Merchant, data: dict[str, Any] | None = None) -> WebhookEvent:
    async with in_transaction():
        event = await webhook_outbox.record(
            Outbox(), merchant.id, "charge.paid", data or {"id": "c1", "valor": "10.00"}
        )
    assert event is not None
    return event


async def make_due(delivery_id: int) -> None:
    await WebhookDelivery.filter(id=delivery_id).update(next_attempt_at=utcnow())


def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


async def test_signed_body_verifies_with_the_library_and_by_hand(
    app: Quart,
    config: Config,
    merchant: Merchant,
    make_worker: Any,
    receiver: Receiver,
    broker: Any,
) -> None:
    endpoint, secret = await make_endpoint(merchant, config, receiver.url)
    async with broker.subscribe(account_channel(merchant.id)) as events:
        event = await emit(merchant, {"id": "c1", "descricao": "Pão de queijo"})
        assert await make_worker().run_once() == {"succeeded": 1}
        pushed = await anext(events)
    [got] = receiver.requests
    body = Webhook(secret).verify(got.body, got.headers)
    assert body == {
        "id": event.id,
        "type": "charge.paid",
        "created_at": event.created_at.isoformat(),
        "data": {"id": "c1", "descricao": "Pão de queijo"},
    }
    headers = got.headers
    assert headers["webhook-id"] == event.id
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "pixweb-webhooks/1"
    expected = independent_signature(secret, event.id, headers["webhook-timestamp"], got.body)
    assert headers["webhook-signature"] == expected
    assert abs(int(headers["webhook-timestamp"]) - utcnow().timestamp()) < 5
    delivery = await WebhookDelivery.get(event_id=event.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    [attempt] = await WebhookAttempt.filter(delivery_id=delivery.id)
    assert (attempt.number, attempt.status_code, attempt.response_body) == (1, 200, "ok")
    assert attempt.error is None and attempt.duration_ms >= 0
    assert {k: v for k, v in pushed.items() if k != "at"} == {
        "type": "webhook.attempt",
        "merchant_id": merchant.id,
        "endpoint_id": endpoint.id,
        "delivery_id": delivery.id,
        "event_id": event.id,
        "status": "succeeded",
        "attempt": 1,
        "status_code": 200,
    }


async def test_both_secrets_sign_during_the_grace_period(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    old = new_secret()
    endpoint, secret = await make_endpoint(
        merchant,
        config,
        receiver.url,
        previous_secret=encrypt_secret(config.encryption_key, merchant.id, old),
        previous_secret_expires_at=utcnow() + timedelta(hours=1),
    )
    await emit(merchant)
    await make_worker().run_once()
    [got] = receiver.requests
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for key in (secret, old):
        Webhook(key).verify(got.body, got.headers)
        stamp = got.headers["webhook-timestamp"]
        assert independent_signature(key, got.headers["webhook-id"], stamp, got.body) in signatures
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(new_secret()).verify(got.body, got.headers)


async def test_fails_twice_then_succeeds_with_one_event_id(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    endpoint, _ = await make_endpoint(merchant, config, receiver.url)
    receiver.script(500, 503)
    event = await emit(merchant)
    worker = make_worker()
    delivery = await WebhookDelivery.get(event_id=event.id)
    assert await worker.run_once() == {"retrying": 1}
    delivery = await WebhookDelivery.get(id=delivery.id)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at is not None and delivery.last_attempt_at is not None
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 4.4 <= wait <= 5.6  # 5 s ± 10 %, and nothing is sent before it
    assert await worker.run_once() == {}
    assert (await WebhookEndpoint.get(id=endpoint.id)).failing_since is not None
    await make_due(delivery.id)
    assert await worker.run_once() == {"retrying": 1}
    await make_due(delivery.id)
    assert await worker.run_once() == {"succeeded": 1}
    assert {r.headers["webhook-id"] for r in receiver.requests} == {event.id}
    assert len(receiver.requests) == 3
    attempts = await WebhookAttempt.filter(delivery_id=delivery.id).order_by("number")
    assert [(a.number, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    delivery = await WebhookDelivery.get(id=delivery.id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)
    assert (await WebhookEndpoint.get(id=endpoint.id)).failing_since is None


async def test_always_failing_runs_the_schedule_then_fails(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    endpoint, _ = await make_endpoint(merchant, config, receiver.url)
    receiver.default = (500, b"no", 0.0, {})
    event = await emit(merchant)
    worker = make_worker()
    delivery = await WebhookDelivery.get(event_id=event.id)
    for number in range(1, len(SCHEDULE)):
        assert await worker.run_once() == {"retrying": 1}
        delivery = await WebhookDelivery.get(id=delivery.id)
        assert delivery.next_attempt_at is not None and delivery.last_attempt_at is not None
        wait = delivery.next_attempt_at - delivery.last_attempt_at
        assert SCHEDULE[number] * 0.9 <= wait <= SCHEDULE[number] * 1.1
        await make_due(delivery.id)
    assert await worker.run_once() == {"failed": 1}
    delivery = await WebhookDelivery.get(id=delivery.id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 8, None)
    assert await WebhookAttempt.filter(delivery_id=delivery.id).count() == 8
    assert len(receiver.requests) == 8
    assert (await WebhookEndpoint.get(id=endpoint.id)).enabled  # 8 failures, not 3 days


async def test_gone_disables_the_endpoint_and_fails_what_it_owes(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    endpoint, _ = await make_endpoint(merchant, config, receiver.url)
    receiver.default = (410, b"gone", 0.0, {})
    await emit(merchant)
    await emit(merchant)
    outcomes = await make_worker().run_once()
    assert outcomes == {"failed": 2}
    endpoint = await WebhookEndpoint.get(id=endpoint.id)
    assert not endpoint.enabled and endpoint.disabled_reason == "o endereço respondeu 410 Gone"
    statuses = await WebhookDelivery.filter(endpoint_id=endpoint.id).values_list(
        "status", flat=True
    )
    assert statuses == [DeliveryStatus.FAILED] * 2
    [notice] = await Notification.filter(merchant_id=merchant.id)
    assert notice.mensagem.startswith("Webhook desativado: ")
    async with in_transaction():  # a disabled endpoint is owed nothing more
        assert await webhook_outbox.record(Outbox(), merchant.id, "charge.paid", {}) is None


async def test_three_days_of_failures_disable_with_a_notification(
    app: Quart,
    config: Config,
    merchant: Merchant,
    make_worker: Any,
    receiver: Receiver,
    broker: Any,
) -> None:
    endpoint, _ = await make_endpoint(merchant, config, receiver.url)
    receiver.default = (500, b"", 0.0, {})
    await WebhookEndpoint.filter(id=endpoint.id).update(
        failing_since=utcnow() - timedelta(days=2, hours=23)
    )
    await emit(merchant)
    worker = make_worker()
    assert await worker.run_once() == {"retrying": 1}  # 2 days 23 h: not yet
    assert (await WebhookEndpoint.get(id=endpoint.id)).enabled
    await WebhookEndpoint.filter(id=endpoint.id).update(
        failing_since=utcnow() - timedelta(days=3, minutes=1)
    )
    await WebhookDelivery.filter(endpoint_id=endpoint.id).update(next_attempt_at=utcnow())
    async with broker.subscribe(account_channel(merchant.id)) as events:
        assert await worker.run_once() == {"failed": 1}
        pushed = [await anext(events), await anext(events)]
    endpoint = await WebhookEndpoint.get(id=endpoint.id)
    assert not endpoint.enabled and endpoint.disabled_reason == "falhou por 3 dias seguidos"
    [notice] = await Notification.filter(merchant_id=merchant.id)
    assert notice.tipo == "webhook_desativado"
    assert notice.mensagem == f"Webhook desativado: {receiver.url} falhou por 3 dias seguidos."
    assert [e["type"] for e in pushed] == ["notification", "webhook.attempt"]


async def test_a_hanging_receiver_is_a_timeout_error(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    receiver.default = (200, b"", 5.0, {})
    event = await emit(merchant)
    assert await make_worker(timeout=0.3).run_once() == {"retrying": 1}
    [attempt] = await WebhookAttempt.all()
    assert attempt.status_code is None and attempt.error == "timed out after 0.3 s"
    assert 250 <= attempt.duration_ms < 2000
    assert (await WebhookDelivery.get(event_id=event.id)).status == "pending"


async def test_redirects_are_not_followed(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    receiver.script((302, b"", 0.0, {"location": receiver.url + "/elsewhere"}))
    await emit(merchant)
    assert await make_worker().run_once() == {"retrying": 1}
    assert len(receiver.requests) == 1
    [attempt] = await WebhookAttempt.all()
    assert attempt.status_code == 302


async def test_the_answer_read_is_capped(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    receiver.script((200, b"x" * (8 * 1024 * 1024), 0.0, {}))
    await emit(merchant)
    assert await make_worker().run_once() == {"succeeded": 1}
    [attempt] = await WebhookAttempt.all()
    assert attempt.response_body == "x" * STORED_BYTES


async def test_a_closed_port_is_a_connection_error(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any
) -> None:
    async with Receiver().serving() as gone:
        url = gone.url
    await make_endpoint(merchant, config, url)
    await emit(merchant)
    assert await make_worker().run_once() == {"retrying": 1}
    [attempt] = await WebhookAttempt.all()
    assert attempt.status_code is None and "ConnectError" in (attempt.error or "")


async def test_private_addresses_are_refused_at_delivery_time(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    await emit(merchant)
    worker = make_worker(policy=UrlPolicy(require_https=False, allow_private=False))
    assert await worker.run_once() == {"retrying": 1}
    assert receiver.requests == []
    [attempt] = await WebhookAttempt.all()
    assert attempt.status_code is None
    assert "refused" in (attempt.error or "") and "loopback" in (attempt.error or "")


async def test_deleted_endpoints_are_not_called(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    endpoint, _ = await make_endpoint(merchant, config, receiver.url)
    event = await emit(merchant)
    await WebhookEndpoint.filter(id=endpoint.id).update(deleted_at=utcnow())
    assert await make_worker().run_once() == {"failed": 1}
    assert receiver.requests == []
    assert (await WebhookDelivery.get(event_id=event.id)).status == "failed"
    assert await WebhookAttempt.all().count() == 0


async def test_body_is_compact_json(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any, receiver: Receiver
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    await emit(merchant, {"descricao": "ação"})
    await make_worker().run_once()
    [got] = receiver.requests
    assert json.loads(got.body)["data"] == {"descricao": "ação"}
    assert "ação".encode() in got.body


async def test_a_slow_endpoint_does_not_hold_the_others(
    app: Quart, config: Config, merchant: Merchant, make_worker: Any
) -> None:
    async with Receiver().serving() as slow, Receiver().serving() as fast:
        slow.default = (200, b"", 3.0, {})
        slow_endpoint, _ = await make_endpoint(merchant, config, slow.url)
        fast_endpoint, _ = await make_endpoint(merchant, config, fast.url)
        for n in range(12):
            await emit(merchant, {"n": n})
        worker = make_worker(timeout=5.0)
        worker.start()
        try:
            async with asyncio.timeout(10):
                while await WebhookDelivery.filter(  # noqa: ASYNC110 (the worker's rows)
                    endpoint_id=fast_endpoint.id, status=DeliveryStatus.PENDING
                ).exists():
                    await asyncio.sleep(0.02)
            slow_done = await WebhookDelivery.filter(
                endpoint_id=slow_endpoint.id, status=DeliveryStatus.SUCCEEDED
            ).count()
            in_flight = len(slow.requests)
        finally:
            await worker.stop()
    assert len(fast.requests) == 12 and slow_done == 0  # all 12 before the slow one's first
    assert in_flight == PER_ENDPOINT  # the slow endpoint holds its share of slots, no more


async def test_an_answer_that_is_not_text_is_kept_readable(
    app: Quart, config: Config, merchant: Merchant, receiver: Receiver, make_worker: Any
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    receiver.script((500, b"\x00\xff nul \x00", 0.0, {}))
    await emit(merchant)
    assert await make_worker().run_once() == {"retrying": 1}
    [attempt] = await WebhookAttempt.all()
    assert attempt.response_body == "\ufffd\ufffd nul \ufffd"


def test_delivery_settings(tmp_path: Path) -> None:
    assert load_config({"instance_path": str(tmp_path)}, environ={}).deliver_webhooks is True
    testing = load_config({"testing": True}, environ={})
    assert (testing.deliver_webhooks, testing.webhook_timeout_seconds) == (False, 10.0)
    environ = {"PIXWEB_DELIVER_WEBHOOKS": "1", "PIXWEB_WEBHOOK_TIMEOUT_SECONDS": "2.5"}
    asked = load_config({"testing": True}, environ=environ)
    assert (asked.deliver_webhooks, asked.webhook_timeout_seconds) == (True, 2.5)
    for wrong in ("0", "61", "dez"):
        environ = {"PIXWEB_WEBHOOK_TIMEOUT_SECONDS": wrong}
        with pytest.raises(ConfigError, match="PIXWEB_WEBHOOK_TIMEOUT_SECONDS"):
            load_config({"testing": True}, environ=environ)


async def test_the_checked_address_is_the_one_connected_to(receiver: Receiver) -> None:
    """A name that no resolver knows reaches the receiver: the connection goes to the address
    given (the one netguard checked), the name stays in Host."""
    sender = Sender(policy=UrlPolicy(), timeout=2.0)
    try:
        url = f"http://pixweb-rebinding.invalid:{receiver.port}/hooks"
        status, _ = await sender.send_to(url, ip_address("127.0.0.1"), b"{}", {})
    finally:
        await sender.aclose()
    assert status == 200
    [got] = receiver.requests
    assert got.headers["host"] == f"pixweb-rebinding.invalid:{receiver.port}"


async def test_stopping_hands_the_sends_in_flight_back(
    app: Quart, config: Config, merchant: Merchant, receiver: Receiver, make_worker: Any
) -> None:
    await make_endpoint(merchant, config, receiver.url)
    receiver.default = (200, b"", 5.0, {})
    event = await emit(merchant)
    worker = make_worker()
    worker.start()
    async with asyncio.timeout(5):
        await receiver.arrived.wait()
    leased = await WebhookDelivery.get(event_id=event.id)
    assert leased.next_attempt_at is not None and leased.next_attempt_at > utcnow()
    await worker.stop()
    delivery = await WebhookDelivery.get(event_id=event.id)
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at <= utcnow()


async def test_a_write_under_way_commits_and_counts_when_its_send_is_cancelled(
    app: Quart, config: Config, merchant: Merchant, receiver: Receiver
) -> None:
    """Stopping cancels the sends waiting for their attempt's write: the write still
    commits (the receiver has the event; undone, it would be sent again), is counted, and
    `drain` waits for it."""
    await make_endpoint(merchant, config, receiver.url)
    event = await emit(merchant)
    broker = app.extensions[BROKER_KEY]
    metrics = Metrics(broker)
    sender = Sender(policy=UrlPolicy(False, True), timeout=2.0)
    worker = DeliveryWorker(
        sender=sender, encryption_key=config.encryption_key, broker=broker, metrics=metrics
    )
    try:
        [(delivery, secrets)] = await worker.claim()
        answer = await attempt(delivery, secrets, sender=sender)
        assert isinstance(answer, Attempt)
        waiting = asyncio.create_task(worker.writer.record(answer))
        await asyncio.sleep(0)
        assert worker.writer._writing  # the write has begun
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await worker.writer.drain()
    finally:
        await sender.aclose()
    stored = await WebhookDelivery.get(event_id=event.id)
    assert (stored.status, stored.attempts) == (DeliveryStatus.SUCCEEDED, 1)
    assert len(receiver.requests) == 1
    counted = metrics.registry.get_sample_value(
        "pixweb_webhook_deliveries_total", {"outcome": "succeeded"}
    )
    assert counted == 1
