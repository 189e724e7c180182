"""RedisBroker beyond the shared contract: processes, connections, outages.

Needs redis-py and, for most tests, a Redis server at PIXWEB_TEST_REDIS_URL (for example
redis://127.0.0.1:6379/0); without them the tests skip, or fail under
PIXWEB_REQUIRE_SERVICES=1. Every broker gets its own channel prefix (pub/sub ignores the db
number) and client name, so runs sharing one server never see each other's events or
connections. redis is imported lazily: this module must load without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest

from pixweb.broker import SubscriptionInterruptedError, make_broker
from tests.support import need

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from pixweb.broker.redis import RedisBroker

UNREACHABLE = "redis://127.0.0.1:1/0"


def _redis_broker_class() -> type[RedisBroker]:
    try:
        from pixweb.broker.redis import RedisBroker
    except ImportError as exc:
        need("Redis", "PIXWEB_REQUIRE_SERVICES", f"redis-py is not installed: {exc}")
    return RedisBroker


def _server_url() -> str:
    url = os.environ.get("PIXWEB_TEST_REDIS_URL")
    if not url:
        need("Redis", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_REDIS_URL is not set")
    assert url is not None
    return url


async def open_test_broker(
    *, prefix: str | None = None, name: str | None = None, **options: Any
) -> RedisBroker:
    """Open a RedisBroker on the test server, alone on its channels; skip without Redis."""
    url = _server_url()
    broker = _redis_broker_class()(
        url,
        channel_prefix=prefix or f"test:{uuid4().hex}:",
        client_name=name or f"pixweb-test-{uuid4().hex[:12]}",
        **options,
    )
    if not await broker.ping():
        await broker.close()
        need("Redis", "PIXWEB_REQUIRE_SERVICES", f"Redis unreachable at {url}")
    return broker


@asynccontextmanager
async def server() -> AsyncIterator[Redis]:
    """A plain client for looking at (and breaking) the test server's connections."""
    from redis.asyncio import Redis

    client = Redis.from_url(_server_url())
    try:
        yield client
    finally:
        await client.aclose()


async def named_connections(admin: Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in await admin.client_list() if c.get("name") == name]


async def eventually(check: Any, within: float = 3.0) -> None:
    """Wait until the async `check()` is true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def next_event(events: AsyncIterator[dict[str, Any]], within: float = 2.0) -> Any:
    return await asyncio.wait_for(anext(events), within)


@pytest.mark.services
async def test_events_cross_processes() -> None:
    prefix = f"test:{uuid4().hex}:"
    one, two = await open_test_broker(prefix=prefix), await open_test_broker(prefix=prefix)
    try:
        async with one.subscribe("payment:1") as here, two.subscribe("payment:1") as there:
            await one.publish("payment:1", {"type": "payment.paid"})
            assert await next_event(there) == {"type": "payment.paid"}
            assert await next_event(here) == {"type": "payment.paid"}
    finally:
        await one.close()
        await two.close()


@pytest.mark.services
async def test_one_connection_serves_every_subscription() -> None:
    name = f"pixweb-test-{uuid4().hex[:12]}"
    broker = await open_test_broker(name=name)
    try:
        async with server() as admin, AsyncExitStack() as stack:
            for n in range(300):  # 200 channels, some with several subscribers
                await stack.enter_async_context(broker.subscribe(f"payment:{n % 200}"))
            connections = await named_connections(admin, name)
            assert len(connections) <= 2  # the subscriber, and one for PUBLISH and PING
            assert [int(c["sub"]) for c in connections if int(c["sub"])] == [200]
            await stack.aclose()
            assert broker.channel_count == 0
            await eventually(lambda: unsubscribed_all(admin, name))
    finally:
        await broker.close()


async def unsubscribed_all(admin: Redis, name: str) -> bool:
    connections = await named_connections(admin, name)
    return bool(connections) and all(int(c["sub"]) == 0 for c in connections)


@pytest.mark.services
async def test_a_lost_connection_interrupts_subscribers_then_recovers() -> None:
    name = f"pixweb-test-{uuid4().hex[:12]}"
    broker = await open_test_broker(name=name)
    try:
        async with broker.subscribe("c") as events, server() as admin:
            await kill_subscriber_connection(admin, name)  # as a Redis restart would
            with pytest.raises(SubscriptionInterruptedError):
                await next_event(events, 5)
        assert broker.interrupted == 1
        # Reconnected with backoff: a new subscription waits for it, then receives again.
        async with broker.subscribe("c") as events:
            await broker.publish("c", {"n": 1})
            assert await next_event(events) == {"n": 1}
    finally:
        await broker.close()


async def kill_subscriber_connection(admin: Redis, name: str) -> None:
    (connection,) = [c for c in await named_connections(admin, name) if int(c["sub"])]
    await admin.client_kill_filter(_id=connection["id"])


@pytest.mark.services
async def test_subscribers_of_every_channel_are_interrupted_on_the_same_connection() -> None:
    name = f"pixweb-test-{uuid4().hex[:12]}"
    broker = await open_test_broker(name=name)
    try:
        async with AsyncExitStack() as stack, server() as admin:
            subs = [await stack.enter_async_context(broker.subscribe(f"p:{n}")) for n in range(5)]
            await kill_subscriber_connection(admin, name)
            for events in subs:
                with pytest.raises(SubscriptionInterruptedError):
                    await next_event(events, 5)
            # Channels still held locally are subscribed again on the new connection.
            late = await stack.enter_async_context(broker.subscribe("p:0"))
            await broker.publish("p:0", {"n": 2})
            assert await next_event(late) == {"n": 2}
    finally:
        await broker.close()


@pytest.mark.services
async def test_idle_probes_keep_a_healthy_connection() -> None:
    broker = await open_test_broker(probe_interval=0.15)
    try:
        async with broker.subscribe("c") as events:
            await asyncio.sleep(0.8)  # a few PING/PONG rounds, each given 0.15 s to answer
            await broker.publish("c", {"n": 1})
            assert await next_event(events) == {"n": 1}
        assert broker.interrupted == 0
    finally:
        await broker.close()


@pytest.mark.services
async def test_a_foreign_message_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    prefix = f"test:{uuid4().hex}:"
    broker = await open_test_broker(prefix=prefix)
    try:
        async with broker.subscribe("c") as events, server() as admin:
            await admin.publish(prefix + "c", b"not json")
            await broker.publish("c", {"n": 1})
            assert await next_event(events) == {"n": 1}
        assert "not a JSON object" in caplog.text
    finally:
        await broker.close()


async def test_publishing_without_redis_is_logged_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = _redis_broker_class()(UNREACHABLE, timeout=0.5)
    try:
        with caplog.at_level(logging.ERROR, logger="pixweb.broker.redis"):
            await asyncio.wait_for(broker.publish("payment:1", {"type": "payment.paid"}), 2)
        assert (broker.publish_failures, broker.published) == (1, 0)
        assert "publish on payment:1 failed" in caplog.text
        assert await broker.ping() is False
        with pytest.raises(TypeError):  # a bug, unlike an outage, still raises
            await broker.publish("payment:1", {"when": object()})
    finally:
        await broker.close()


async def test_subscribing_without_redis_returns_interrupted_in_bounded_time() -> None:
    broker = _redis_broker_class()(UNREACHABLE, timeout=0.3)
    try:
        started = time.monotonic()
        async with broker.subscribe("c") as events:
            assert time.monotonic() - started < 1.5
            with pytest.raises(SubscriptionInterruptedError):
                await next_event(events, 0.1)
        assert broker.channel_count == 0
    finally:
        await broker.close()


@asynccontextmanager
async def unresponsive_server() -> AsyncIterator[str]:
    """A local port that accepts connections and never answers, like a hung Redis."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        listener.close()
        for writer in held:
            writer.close()
        await listener.wait_closed()


async def test_a_hung_server_bounds_publish_subscribe_and_ping() -> None:
    async with unresponsive_server() as url:
        broker = _redis_broker_class()(url, timeout=0.2)
        try:
            started = time.monotonic()
            await broker.publish("c", {"n": 1})
            assert await broker.ping() is False
            async with broker.subscribe("c") as events:
                with pytest.raises(SubscriptionInterruptedError):
                    await next_event(events, 0.1)
            assert time.monotonic() - started < 2
            assert broker.publish_failures == 1
        finally:
            await broker.close()


async def test_make_broker_builds_redis_lazily() -> None:
    cls = _redis_broker_class()
    broker = make_broker(UNREACHABLE)  # unreachable is fine: nothing connects yet
    assert isinstance(broker, cls)
    await broker.close()


def test_the_memory_backend_never_imports_redis() -> None:
    code = (
        "import sys; from pixweb.broker import make_broker; make_broker('memory://'); "
        "assert 'redis' not in sys.modules, 'redis imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class TestPagesOpenedWhileRedisIsDown:
    """A payer page opened during an outage gets its current state, then 1013 (htmx and API
    clients reconnect), never a torn-down socket and a traceback."""

    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        _redis_broker_class()
        return {"broker_url": UNREACHABLE}

    @pytest.mark.parametrize("query", ["", "?format=json"])
    async def test_state_then_1013(
        self, client: Any, auth: dict[str, str], caplog: pytest.LogCaptureFixture, query: str
    ) -> None:
        from quart.testing.connections import WebsocketDisconnectError

        response = await client.post("/payments/pix", json={"value": "10.00"}, headers=auth)
        assert response.status_code == 201  # the charge stands; its event is counted lost
        payment = await response.get_json()
        async with client.websocket(f"/ws/payments/{payment['id']}{query}") as page:
            assert "pending" in await asyncio.wait_for(page.receive(), 5)
            with pytest.raises(WebsocketDisconnectError) as closed:
                await asyncio.wait_for(page.receive(), 5)
        assert closed.value.args[0] == 1013
        tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
        assert not tracebacks
