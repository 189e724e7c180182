"""Redis backend of the broker, for several server processes (imported only by make_broker).

PUBLISH goes through a small pool, JSON-encoded. All subscriptions of the process share one
dedicated connection: a channel is SUBSCRIBEd when it gets its first local subscriber and
UNSUBSCRIBEd when its last leaves; one reader task decodes each message once and fans it out
to the local bounded queues (`Subscriber`, with MemoryBroker's drop-when-full policy).

Outages. Pub/sub has no replay, so whoever may have missed an event must resync. A Redis
that is killed closes its connections; one that is stalled (frozen, swapping, partitioned)
answers nothing and only deadlines notice it, so both are handled by deadlines:

- Subscriptions. When the connection is lost, or stops answering (the reader PINGs it after
  `probe_interval` of silence and gives up `probe_timeout` later: a stall is noticed within
  ~2.5 s), every confirmed local subscription raises `SubscriptionInterruptedError` (the
  socket closes with 1013; the browser reconnects and reads the current state from the
  database), and the reader reconnects with backoff, re-subscribing the channels that still
  have local subscribers.
- Publishing. `publish()` waits at most `publish_timeout` (0.5 s, a pooled connection
  included; no extra round trip when healthy). A failure is logged and counted
  (`publish_failures`), never raised, and pauses publishing: until Redis answers a PING again
  (tried every 0.2 s), publishes fail at once, so a confirmation that publishes a few events
  keeps the bank waiting 0.5 s at most, not 0.5 s per event.
- Nothing is lost silently. A stall shorter than the subscribers' deadline goes unnoticed by
  them, yet a publish in it may have failed. So the broker remembers each channel whose event
  failed, and once Redis answers it publishes a resync marker there; every process's reader
  interrupts that channel's subscriptions that were listening before the failure (they
  resync), and hands the marker to nobody.

`subscribe()` never raises for an outage and returns within `timeout`: it registers locally
(so it works while Redis is down) and waits for Redis to confirm the SUBSCRIBE, since only
then are the channel's events guaranteed and may the caller read the state they update.
Unconfirmed in time, the subscription comes back already interrupted: its first `anext()`
raises `SubscriptionInterruptedError`, the failure path callers handle anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from pixweb.broker.base import Counters, Event, Subscriber, SubscriptionInterruptedError

logger = logging.getLogger(__name__)

TIMEOUT = 2.0  # seconds for a connect, a SUBSCRIBE confirmation, a readiness PING
PUBLISH_TIMEOUT = 0.5  # seconds for a PUBLISH, getting a connection included
PUBLISH_CONNECTIONS = 4  # per process; PUBLISH is one quick round trip
PROBE_INTERVAL = 1.0  # a silent subscription connection is PINGed after this long...
PROBE_TIMEOUT = 1.5  # ...and given up this long after the PING if still silent
RESUME_INTERVAL = 0.2  # while publishing is paused, PING this often to resume it
FIRST_DELAY, MAX_DELAY = 0.1, 2.0  # reconnect backoff, doubling
RESYNC = "broker.resync"  # the marker's type: never delivered to subscribers
RESYNC_SKEW = 1.0  # seconds of clock difference between processes a marker tolerates
MAX_LOST_CHANNELS = 10_000  # channels remembered for a resync marker during one outage


class _Channel:
    __slots__ = ("subscribers", "confirmed")

    def __init__(self) -> None:
        # Each local subscriber, and since when (epoch seconds) it has been listening for
        # sure: its subscription confirmed. Infinity until then.
        self.subscribers: dict[Subscriber, float] = {}
        self.confirmed = asyncio.Event()  # SUBSCRIBE acknowledged on the current connection


class RedisBroker(Counters):
    """Broker over Redis pub/sub: one subscription connection per process, reconnecting."""

    def __init__(
        self,
        url: str,
        *,
        channel_prefix: str = "pixweb:",
        timeout: float = TIMEOUT,
        publish_timeout: float = PUBLISH_TIMEOUT,
        probe_interval: float = PROBE_INTERVAL,
        probe_timeout: float = PROBE_TIMEOUT,
        client_name: str = "pixweb-broker",
    ) -> None:
        # Lazy: nothing connects before the first publish or subscribe. Protocol 2 because
        # the reader parses RESP2 pub/sub replies; one retry so a pooled connection that died
        # with a Redis restart is replaced instead of failing the next PUBLISH; a blocking pool
        # so a burst of publishes waits for a few connections instead of opening one each.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=PUBLISH_CONNECTIONS,
            timeout=timeout,
            protocol=2,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            client_name=client_name,
        )
        self._redis = Redis.from_pool(pool)
        # Redis pub/sub channels ignore the db number: a prefix keeps apps (and tests) apart.
        self._prefix = channel_prefix
        self._timeout = timeout
        self._publish_timeout = publish_timeout
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._channels: dict[str, _Channel] = {}
        self._connection: AbstractConnection | None = None  # the reader's, while usable
        self._acks: deque[_Channel | None] = deque()  # expected (UN)SUBSCRIBE replies, in order
        self._reader: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._closed = False
        # Publishing paused by a failure: the task that resumes it, and what to resync then
        # (channel -> epoch seconds of its last failed publish).
        self._paused: asyncio.Task[None] | None = None
        self._lost: dict[str, float] = {}

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    async def publish(self, channel: str, event: Event) -> None:
        data = json.dumps(event)  # a non-JSON event is a bug: raise, as MemoryBroker does
        if self._paused is None:
            try:
                async with asyncio.timeout(self._publish_timeout):
                    await self._redis.publish(self._prefix + channel, data)
            except (RedisError, OSError) as exc:  # TimeoutError is an OSError
                logger.error(
                    "broker: publish on %s failed: %s; publishing paused until Redis answers",
                    channel,
                    _describe(exc),
                )
                if self._paused is None and not self._closed:
                    resume = self._resume_publishing(time.monotonic(), self.publish_failures)
                    self._paused = asyncio.create_task(resume, name="pixweb-broker-resume")
            else:
                self.published += 1
                return
        else:
            logger.debug("broker: publish on %s skipped: Redis is not answering", channel)
        self.publish_failures += 1
        if channel in self._lost or len(self._lost) < MAX_LOST_CHANNELS:
            self._lost[channel] = time.time()

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        if self._reader is None and not self._closed:
            self._reader = asyncio.create_task(self._read_forever(), name="pixweb-broker-reader")
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = _Channel()
            self._send("SUBSCRIBE", channel, entry)
        subscriber = Subscriber(self)
        entry.subscribers[subscriber] = math.inf
        try:
            await self._until_confirmed(entry, subscriber)
            yield subscriber
        finally:
            entry.subscribers.pop(subscriber, None)
            if not entry.subscribers and self._channels.get(channel) is entry:
                del self._channels[channel]
                self._send("UNSUBSCRIBE", channel, None)

    async def ping(self) -> bool:
        return await self._answers(self._timeout)

    async def _answers(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        self._closed = True
        tasks = [task for task in (self._reader, self._paused, *self._writes) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._redis.aclose()

    async def _resume_publishing(self, since: float, failures: int) -> None:
        """PING until Redis answers, tell the channels that lost events to resync, resume."""
        while True:
            await asyncio.sleep(RESUME_INTERVAL)
            if await self._answers(self._publish_timeout) and await self._send_resyncs():
                break
        self._paused = None
        logger.warning(
            "broker: Redis answers again; publishing resumed after %.1fs and %d failures",
            time.monotonic() - since,
            self.publish_failures - failures,
        )

    async def _send_resyncs(self) -> bool:
        """Publish a resync marker on every channel that lost an event; False on failure."""
        while self._lost:
            lost, self._lost = self._lost, {}
            try:
                async with asyncio.timeout(self._timeout):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, until in lost.items():
                            marker = json.dumps({"type": RESYNC, "until": until})
                            pipe.publish(self._prefix + channel, marker)
                        await pipe.execute()
            except (RedisError, OSError) as exc:
                logger.warning("broker: resync markers failed: %s", _describe(exc))
                for channel, until in lost.items():  # keep the latest failure of each
                    self._lost[channel] = max(until, self._lost.get(channel, until))
                return False
            logger.warning("broker: told %d channels to resync", len(lost))
        return True

    async def _until_confirmed(self, entry: _Channel, subscriber: Subscriber) -> None:
        try:
            async with asyncio.timeout(0 if self._closed else self._timeout):
                await entry.confirmed.wait()
        except TimeoutError:
            self._interrupt(subscriber, "Redis did not confirm the subscription in time")
        else:
            if subscriber in entry.subscribers:
                entry.subscribers[subscriber] = time.time()

    def _interrupt(self, subscriber: Subscriber, why: str) -> None:
        if subscriber.error is None:
            self.interrupted += 1
            subscriber.fail(SubscriptionInterruptedError(f"{why}: resync"))

    def _send(self, command: str, channel: str, entry: _Channel | None) -> None:
        """Queue a (UN)SUBSCRIBE on the live connection; without one, reconnecting covers it."""
        connection = self._connection
        if connection is None:
            return
        task = asyncio.create_task(self._write(connection, command, channel, entry))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(
        self, connection: AbstractConnection, command: str, channel: str, entry: _Channel | None
    ) -> None:
        # Under the lock, replies come in the order the acks are queued. If the reader replaced
        # or lost the connection meanwhile, skip: writing would silently reconnect a dead one,
        # and the reader re-subscribes what is still in the table.
        async with self._write_lock:
            if connection is not self._connection or not connection.is_connected:
                return
            self._acks.append(entry)
            try:
                await connection.send_command(command, self._prefix + channel)
            # Broad: a connection torn down mid-write can fail with anything (redis-py sets its
            # writer to None); the reader sees the same breakage and recovers.
            except Exception as exc:
                logger.warning("broker: %s failed: %s", command, _describe(exc))

    async def _read_forever(self) -> None:
        delay = FIRST_DELAY
        while True:
            # The pool's kind and settings, not lent by it (redis-py leaves it unannotated).
            connection = self._redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await self._attach(connection)
                delay = FIRST_DELAY
                await self._listen(connection)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "broker: Redis subscriptions down (%s); retry in %.1fs", _describe(exc), delay
                )
            except Exception:  # a bug here must not silently end every live update
                logger.exception("broker: reader failed; retry in %.1fs", delay)
            finally:
                self._detach()
                await connection.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    async def _attach(self, connection: AbstractConnection) -> None:
        """Connect, then SUBSCRIBE every channel that has local subscribers."""
        async with asyncio.timeout(self._timeout):  # a stalled server accepts, then hangs
            await connection.connect()  # type: ignore[no-untyped-call]
        async with self._write_lock:
            self._connection = connection
            self._acks = deque(self._channels.values())
            if self._channels:
                names = [self._prefix + channel for channel in self._channels]
                await connection.send_command("SUBSCRIBE", *names)
        logger.info("broker: Redis subscriptions up (%d channels)", len(self._channels))

    def _detach(self) -> None:
        """Forget the connection: confirmed subscriptions may have missed events now."""
        self._connection = None
        for entry in self._channels.values():
            if entry.confirmed.is_set():
                entry.confirmed.clear()
                for subscriber in entry.subscribers:
                    self._interrupt(subscriber, "lost the Redis connection")

    async def _listen(self, connection: AbstractConnection) -> None:
        """Dispatch replies until the connection fails or stalls: after `probe_interval`
        of silence, PING; with still no word `probe_timeout` later, give it up."""
        probing = False
        while True:
            wait = self._probe_timeout if probing else self._probe_interval
            reply = await connection.read_response(timeout=wait)
            if reply is None:
                # What arrived while this task waited for a busy event loop is no silence.
                reply = await connection.read_response(timeout=0)
            if reply is None:
                if probing:
                    raise RedisConnectionError(f"no answer to PING in {wait:.1f}s (stalled?)")
                probing = True
                await connection.send_command("PING")
                continue
            probing = False
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) != 3:
            return  # PONG
        kind, name, data = reply
        if kind == b"message":
            self._deliver(name.decode().removeprefix(self._prefix), data)
        elif kind in (b"subscribe", b"unsubscribe") and self._acks:
            entry = self._acks.popleft()
            if kind == b"subscribe" and entry is not None:
                entry.confirmed.set()

    def _deliver(self, channel: str, data: bytes) -> None:
        entry = self._channels.get(channel)
        if entry is None:
            return  # was in flight when the channel's last subscriber left
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            logger.warning("broker: ignored a message that is not a JSON object on %s", channel)
            return
        if event.get("type") == RESYNC:
            self._resync(entry, event.get("until"))
            return
        for subscriber in tuple(entry.subscribers):
            subscriber.offer(event)

    def _resync(self, entry: _Channel, until: Any) -> None:
        """Interrupt the subscriptions that were listening when an event failed to publish
        (those confirmed later read the state after it). A marker without a valid time
        interrupts them all."""
        if not isinstance(until, int | float) or isinstance(until, bool):
            until = math.inf
        for subscriber, since in tuple(entry.subscribers.items()):
            if since < until + RESYNC_SKEW:
                self._interrupt(subscriber, "an event may have been lost in a Redis outage")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc) or 'no answer in time'}"  # a timeout has no text
