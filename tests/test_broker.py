"""The Broker contract: one suite, run against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from pixweb.broker import QUEUE_SIZE, Broker, SubscriptionLaggedError, make_broker
from pixweb.broker.base import Subscriber
from tests.test_broker_redis import open_test_broker


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    backend = make_broker("memory://") if request.param == "memory" else await open_test_broker()
    try:
        yield backend
    finally:
        await backend.close()


async def next_event(events: AsyncIterator[dict[str, Any]], within: float = 1.0) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), within)


async def test_publish_reaches_the_channels_subscribers_only(broker: Broker) -> None:
    async with broker.subscribe("payment:1") as one, broker.subscribe("payment:2") as two:
        await broker.publish("payment:1", {"type": "payment.paid", "n": 1})
        assert await next_event(one) == {"type": "payment.paid", "n": 1}
        with pytest.raises(TimeoutError):
            await next_event(two, 0.05)


async def test_every_subscriber_of_a_channel_gets_each_event_in_order(broker: Broker) -> None:
    async with AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(broker.subscribe("c")) for _ in range(5)]
        for n in range(3):
            await broker.publish("c", {"n": n})
        for events in subs:
            assert [(await next_event(events))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_timed_out_wait_leaves_the_subscription_usable(broker: Broker) -> None:
    async with broker.subscribe("c") as events:
        with pytest.raises(TimeoutError):
            await next_event(events, 0.01)
        await broker.publish("c", {"n": 1})
        assert await next_event(events) == {"n": 1}


async def test_subscribers_never_share_the_publishers_objects(broker: Broker) -> None:
    event = {"data": {"n": 1}}
    async with broker.subscribe("c") as events:
        await broker.publish("c", event)
        event["data"]["n"] = 42
        assert await next_event(events) == {"data": {"n": 1}}


async def test_events_must_be_json(broker: Broker) -> None:
    async with broker.subscribe("c"):
        with pytest.raises(TypeError):
            await broker.publish("c", {"when": object()})


async def test_a_slow_subscriber_is_dropped_without_blocking_anyone(broker: Broker) -> None:
    async with broker.subscribe("c") as slow, broker.subscribe("c") as fast:
        for n in range(QUEUE_SIZE + 5):
            await asyncio.wait_for(broker.publish("c", {"n": n}), 1)  # never blocks
            assert (await next_event(fast))["n"] == n
        with pytest.raises(SubscriptionLaggedError):
            while True:
                await next_event(slow)


async def test_connect_disconnect_leaves_nothing_behind(broker: Broker) -> None:
    for n in range(1000):
        async with broker.subscribe(f"payment:{n % 7}"):
            pass
    assert broker.channel_count == 0
    await broker.publish("payment:1", {"n": 1})  # nobody listens: a no-op, no channel made
    assert broker.channel_count == 0


async def test_publishing_touches_only_that_channels_subscribers(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    offers: list[object] = []
    original = Subscriber.offer

    def counting_offer(self: Any, event: Any) -> None:
        offers.append(self)
        original(self, event)

    monkeypatch.setattr(Subscriber, "offer", counting_offer)
    async with AsyncExitStack() as stack:
        for n in range(1000):
            await stack.enter_async_context(broker.subscribe(f"payment:{n}"))
        watched = [await stack.enter_async_context(broker.subscribe("payment:x")) for _ in range(3)]
        await broker.publish("payment:x", {"n": 1})
        for events in watched:
            await next_event(events)
        assert len(offers) == 3
        assert set(offers) == set(watched)


async def test_counters_count_publishes_and_deliveries(broker: Broker) -> None:
    async with broker.subscribe("c") as one, broker.subscribe("c") as two:
        await broker.publish("c", {"n": 1})
        await next_event(one)
        await next_event(two)
    assert (broker.published, broker.delivered, broker.publish_failures) == (1, 2, 0)


async def test_dropping_a_slow_subscriber_is_counted(broker: Broker) -> None:
    async with broker.subscribe("c") as slow, broker.subscribe("c") as fast:
        for n in range(QUEUE_SIZE + 1):
            await broker.publish("c", {"n": n})
            await next_event(fast)
        with pytest.raises(SubscriptionLaggedError):
            while True:
                await next_event(slow)
    assert broker.dropped == 1


async def test_ping_answers(broker: Broker) -> None:
    assert await broker.ping() is True


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported broker"):
        make_broker("kafka://localhost")


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("redis://localhost:6379/0", "pixweb:0:"),
        ("redis://localhost:6379/3", "pixweb:3:"),
        ("redis://localhost", "pixweb:0:"),
        ("redis://localhost/2?prefix=shop-a:", "shop-a:"),
    ],
)
def test_redis_channels_are_namespaced_per_deployment(url: str, prefix: str) -> None:
    from pixweb.broker import redis_channel_prefix

    assert redis_channel_prefix(url) == prefix
