"""A stalled Redis (frozen with SIGSTOP, not killed) behaves like a lost one.

A frozen server keeps its sockets open and answers nothing: no error ever arrives, so only
deadlines notice it. These tests start their own redis-server on a free port (the shared one
must never be frozen) and freeze it for a few seconds: a publish returns within its bound and
is counted, subscribers are interrupted within ~3 s (sockets close 1013 and resync), a stall
too short to be noticed still never loses an event silently, and after SIGCONT everything
recovers. Like the other Redis tests they run when PIXWEB_TEST_REDIS_URL is set (or must,
under PIXWEB_REQUIRE_SERVICES=1), and need the redis-server binary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client

from pixweb.broker import SubscriptionInterruptedError, make_broker
from tests.support import need

if TYPE_CHECKING:
    from pixweb.broker.redis import RedisBroker

pytestmark = pytest.mark.services

STALL = 4.0  # seconds frozen: longer than stall detection, short for a test
DETECTED_WITHIN = 3.0  # a stalled subscription is interrupted this soon
PUBLISH_BOUND = 0.75  # a publish into a stall returns this soon (0.5 s, and some slack)


class PrivateRedis:
    """A redis-server of this test's own, which it may freeze."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.port = process, port
        self.url = f"redis://127.0.0.1:{port}/0"

    @contextmanager
    def frozen(self) -> Iterator[float]:
        """Freeze the server (SIGSTOP) until the block ends; yields when it froze."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield time.monotonic()
        finally:
            self.process.send_signal(signal.SIGCONT)

    @asynccontextmanager
    async def frozen_for(self, seconds: float) -> AsyncIterator[float]:
        """Freeze now and thaw `seconds` later, while the block goes on."""
        self.process.send_signal(signal.SIGSTOP)
        thaw = asyncio.get_running_loop().call_later(
            seconds, self.process.send_signal, signal.SIGCONT
        )
        try:
            yield time.monotonic()
        finally:
            thaw.cancel()
            self.process.send_signal(signal.SIGCONT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if not os.environ.get("PIXWEB_TEST_REDIS_URL"):
        need("Redis", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_REDIS_URL is not set")
    binary = shutil.which("redis-server")
    if binary is None:
        need("Redis", "PIXWEB_REQUIRE_SERVICES", "no redis-server binary to freeze")
    assert binary is not None
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert process.poll() is None, f"redis-server exited with {process.returncode}"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield PrivateRedis(process, port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        process.wait(10)


def open_broker(server: PrivateRedis, prefix: str | None = None) -> RedisBroker:
    """A broker built as the app builds it (make_broker, default deadlines)."""
    url = f"{server.url}?prefix={prefix or f'test:{uuid4().hex}:'}"
    from pixweb.broker.redis import RedisBroker

    broker = make_broker(url)
    assert isinstance(broker, RedisBroker)
    return broker


async def next_event(events: AsyncIterator[dict[str, Any]], within: float = 2.0) -> Any:
    return await asyncio.wait_for(anext(events), within)


async def receives_again(broker: RedisBroker, within: float = 6.0) -> None:
    """After a stall: a new subscription soon receives what is published."""
    deadline = time.monotonic() + within
    while True:
        try:
            async with broker.subscribe("after") as events:
                await broker.publish("after", {"n": 1})
                assert await next_event(events, 1.0) == {"n": 1}
                return
        except (SubscriptionInterruptedError, TimeoutError):
            assert time.monotonic() < deadline, "the broker did not recover in time"
            await asyncio.sleep(0.1)


async def test_a_publish_into_a_stall_returns_within_its_bound_and_is_counted(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    broker = open_broker(private_redis)
    try:
        await broker.publish("payment:1", {"n": 0})  # a pooled connection, as in service
        assert broker.published == 1
        with private_redis.frozen():
            # A confirmation publishes a few events in a row: together, within the bound.
            started = time.monotonic()
            for n in range(3):
                await broker.publish(f"payment:{n}", {"n": n})
            took = time.monotonic() - started
        assert took < PUBLISH_BOUND, f"publishing into a stall took {took:.2f}s"
        assert (broker.published, broker.publish_failures) == (1, 3)
        assert "publish on payment:0 failed" in caplog.text
        # Resumed: publishing works again soon (and without waiting for a subscriber).
        deadline = time.monotonic() + 3
        while broker.published == 1:
            assert time.monotonic() < deadline, "publishing did not resume"
            await asyncio.sleep(0.1)
            await broker.publish("payment:1", {"n": 1})
    finally:
        await broker.close()


async def test_a_stall_interrupts_subscribers_soon_and_the_broker_recovers(
    private_redis: PrivateRedis,
) -> None:
    broker = open_broker(private_redis)
    try:
        async with broker.subscribe("payment:1") as events:
            with private_redis.frozen() as froze:
                with pytest.raises(SubscriptionInterruptedError):
                    await next_event(events, STALL)
                noticed = time.monotonic() - froze
                assert noticed < DETECTED_WITHIN, f"stall noticed after {noticed:.2f}s"
                # Subscribing while Redis is frozen: back soon, already interrupted.
                started = time.monotonic()
                async with broker.subscribe("payment:2") as late:
                    assert time.monotonic() - started < 2.5
                    with pytest.raises(SubscriptionInterruptedError):
                        await next_event(late, 0.1)
        assert broker.interrupted == 2
        await receives_again(broker)
    finally:
        await broker.close()


async def test_a_stall_too_short_to_notice_never_loses_an_event_silently(
    private_redis: PrivateRedis,
) -> None:
    """A publish that failed in a short stall reaches every subscriber, or interrupts it."""
    prefix = f"test:{uuid4().hex}:"
    # Two processes' brokers: one holds the page, the other serves the bank's request.
    page, bank = open_broker(private_redis, prefix), open_broker(private_redis, prefix)
    try:
        async with page.subscribe("payment:1") as events:
            await bank.publish("payment:1", {"n": 0})
            assert await next_event(events) == {"n": 0}
            async with private_redis.frozen_for(1.2):
                await asyncio.sleep(0.1)
                await bank.publish("payment:1", {"n": 1})
                await bank.publish("payment:1", {"n": 2})
            assert bank.publish_failures >= 1
            received: list[int] = []
            try:
                while received != [1, 2]:
                    received.append((await next_event(events, 5))["n"])
            except SubscriptionInterruptedError:
                pass  # told to resync: the page reads the current state again
    finally:
        await page.close()
        await bank.close()


# Through the app: the payer's page.


@pytest.fixture
def database_url() -> str:
    return "sqlite://:memory:"  # what is tested here is the broker, on one database


@pytest.fixture
def app_overrides(private_redis: PrivateRedis) -> dict[str, Any]:
    return {"broker_url": f"{private_redis.url}?prefix=test:{uuid4().hex}:"}


async def create(client: Client, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/payments/pix", json={"value": "10.00"}, headers=auth)
    assert response.status_code == 201
    return dict(await response.get_json())


def status(message: str | bytes) -> str:
    """The payment status a socket message shows (HTML fragment or JSON)."""
    if isinstance(message, bytes):
        message = message.decode()
    if message.startswith("{"):
        return str(json.loads(message)["data"]["status"])
    return message.split('data-status="', 1)[1].split('"', 1)[0]


async def closed_code(socket: Any, within: float) -> int:
    """Read until the socket closes; return the close code."""
    with pytest.raises(WebsocketDisconnectError) as closed:
        async with asyncio.timeout(within):
            while True:
                await socket.receive()
    code: int = closed.value.args[0]
    return code


@pytest.mark.parametrize("query", ["", "?format=json"])
async def test_a_payer_page_resyncs_after_a_stall_and_sees_it_paid(
    client: Client,
    auth: dict[str, str],
    sign: Any,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
    query: str,
) -> None:
    payment = await create(client, auth)
    path = f"/ws/payments/{payment['id']}{query}"
    async with client.websocket(path) as page:
        assert status(await asyncio.wait_for(page.receive(), 2)) == "pending"
        with private_redis.frozen() as froze:
            body, headers = sign({"bank_payment_id": payment["bank_payment_id"], "value": "10.00"})
            started = time.monotonic()
            response = await client.post("/payments/pix/confirmation", data=body, headers=headers)
            assert response.status_code == 200
            assert time.monotonic() - started < 1.5  # the bank is not kept waiting
            # The open page is told to reconnect (1013), as when Redis is killed.
            assert await closed_code(page, STALL) == 1013
            assert time.monotonic() - froze < DETECTED_WITHIN + 0.5
            # A page opened during the stall: its current state, then 1013, no traceback.
            async with client.websocket(path) as during:
                assert status(await asyncio.wait_for(during.receive(), 3)) == "paid"
                assert await closed_code(during, 5) == 1013
    # Resumed: the page reconnects and shows the payment paid.
    async with client.websocket(path) as after:
        assert status(await asyncio.wait_for(after.receive(), 5)) == "paid"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
