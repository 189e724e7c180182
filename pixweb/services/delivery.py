"""The merchant-webhook delivery worker: sends what the outbox (services/outbox.py) holds.

Each server process runs one `DeliveryWorker`. It wakes when a commit announces new events
on WEBHOOKS_CHANNEL, and polls every POLL_SECONDS anyway (a wake-up can be lost; retries
come due by the clock). It claims due deliveries for a lease of LEASE_TIMEOUTS send timeouts
(services/delivery_queue.py: `FOR UPDATE SKIP LOCKED` on PostgreSQL, one claimer per
process on SQLite). A worker that dies mid-send leaves its claim to lapse: the delivery is
due again when the lease ends and is sent again with the same `webhook-id` (at least once);
one that stops hands its claims back at once.

Sends run concurrently, at most CONCURRENCY at once and PER_ENDPOINT per endpoint, so one
slow endpoint holds a few slots and never the queue; a claim skips endpoints already at
their share, and a claim is never larger than what can start before its lease ends.

A claim is read in one query (deliveries with their events and endpoints) and each
endpoint's secrets are decrypted once per claim; the attempts of sends finishing together
are recorded in one transaction (services/delivery_writer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pixweb.broker import Broker
from pixweb.errors import EncryptionError
from pixweb.metrics import Metrics
from pixweb.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from pixweb.services.clock import utcnow
from pixweb.services.delivery_outcome import Attempt, Outcome, Result
from pixweb.services.delivery_queue import claim_due, hand_back, load, oldest_pending_seconds
from pixweb.services.delivery_writer import AttemptWriter
from pixweb.services.outbox import WEBHOOKS_CHANNEL
from pixweb.services.webhook_secrets import signing_secrets
from pixweb.services.webhook_sender import Answer, Sender, signed_headers

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
LEASE_TIMEOUTS = 6  # a claim lasts 6 send timeouts (60 s); a claimed send waits ~2 at most
CONCURRENCY = 64
PER_ENDPOINT = 8

BodyOf = Callable[[WebhookEvent], dict[str, Any]]
Secrets = list[str] | None  # None: the endpoint's secret cannot be decrypted


def event_body(event: WebhookEvent) -> dict[str, Any]:
    """The JSON body of an event as stored: `{"id", "type", "created_at", "data"}`."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "data": event.data,
    }


class DeliveryWorker:
    """Claims due deliveries and sends them; `start`/`stop` with the server's lifespan."""

    def __init__(
        self,
        *,
        sender: Sender,
        encryption_key: str,
        broker: Broker,
        metrics: Metrics | None = None,
        body_of: BodyOf = event_body,
        concurrency: int = CONCURRENCY,
        per_endpoint: int = PER_ENDPOINT,
    ) -> None:
        self.sender, self.key, self.broker, self.metrics = sender, encryption_key, broker, metrics
        self.body_of = body_of
        self.concurrency, self.per_endpoint = concurrency, per_endpoint
        self._slots = asyncio.Semaphore(concurrency)
        self._busy: Counter[int] = Counter()  # claimed and not done, per endpoint
        self._endpoint_slots: dict[int, asyncio.Semaphore] = {}
        self._claimed: set[int] = set()  # claimed by this worker and not done yet
        self._sending: set[asyncio.Task[Result | None]] = set()
        self.writer = AttemptWriter(broker=broker, metrics=metrics)
        self._wake = asyncio.Event()
        self.lease = timedelta(seconds=LEASE_TIMEOUTS * sender.timeout)
        self._tasks: list[asyncio.Task[None]] = []
        self._gauged = 0.0  # when the oldest-pending gauge was last read (monotonic)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._loop(), name="webhook-delivery"),
            loop.create_task(self._listen(), name="webhook-delivery-wake"),
        ]

    async def stop(self) -> None:
        """Stop claiming, cancel the sends in flight and hand their deliveries back, due now
        (a restarting server's are sent by the others at once, not when the lease ends)."""
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        for task in [*self._tasks, *self._sending]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.writer.drain()
        unfinished, self._claimed = list(self._claimed), set()
        try:
            await hand_back(unfinished)
        except Exception:  # the lease still brings them back
            log.warning("could not hand back %d webhook deliveries", len(unfinished))
        finally:
            await self.sender.aclose()

    async def run_once(self) -> Counter[str]:
        """Send everything due now, waiting for each send (`pixweb webhooks deliver`)."""
        outcomes: Counter[str] = Counter()
        while jobs := await self.claim():
            results = await asyncio.gather(*(self._send_one(d, s) for d, s in jobs))
            outcomes.update(str(r.outcome) for r in results if r is not None)
        return outcomes

    async def claim(self) -> list[tuple[WebhookDelivery, Secrets]]:
        """Claim due deliveries for the free slots, read with their event and endpoint in
        one query, each endpoint's secrets decrypted once."""
        free = 2 * self.concurrency - sum(self._busy.values())
        if free <= 0:
            return []
        # An endpoint keeps at most two rounds of sends claimed: none waits past its lease.
        share = 2 * self.per_endpoint
        full = [e for e, n in self._busy.items() if n >= share]
        now = utcnow()
        rows = await claim_due(now, now + self.lease, full, free)
        kept, extra = [], []
        for delivery_id, endpoint_id in rows:
            if self._busy[endpoint_id] < share:
                self._busy[endpoint_id] += 1
                self._claimed.add(delivery_id)
                kept.append((delivery_id, endpoint_id))
            else:
                extra.append(delivery_id)
        if extra:  # more than the endpoint's share: due again at once, for a later claim
            await hand_back(extra)
        deliveries = await load([d for d, _ in kept])
        missing = {d for d, _ in kept} - {d.id for d in deliveries}
        for delivery_id, endpoint_id in kept:  # deleted meanwhile: nothing to send
            if delivery_id in missing:
                self._done(delivery_id, endpoint_id)
        secrets: dict[int, Secrets] = {}
        for delivery in deliveries:
            if delivery.endpoint_id not in secrets:
                secrets[delivery.endpoint_id] = self._secrets(delivery.endpoint, now)
        return [(d, secrets[d.endpoint_id]) for d in deliveries]

    def _secrets(self, endpoint: WebhookEndpoint, now: datetime) -> Secrets:
        try:
            return signing_secrets(endpoint, key=self.key, now=now)
        except EncryptionError:
            return None

    async def _loop(self) -> None:
        while True:
            try:
                for delivery, secrets in await self.claim():
                    task = asyncio.create_task(self._send_one(delivery, secrets))
                    self._sending.add(task)
                    task.add_done_callback(self._sent)
                await self._oldest_pending()
            except Exception:
                log.exception("webhook delivery pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._sending.discard(task)
        if sum(self._busy.values()) <= self.concurrency:  # half the budget is free: claim
            self._wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with self.broker.subscribe(WEBHOOKS_CHANNEL) as events:
                    async for _ in events:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the poll still runs; listen again shortly
                log.warning("webhook wake-ups interrupted", exc_info=True)
            await asyncio.sleep(POLL_SECONDS)

    async def _send_one(self, delivery: WebhookDelivery, secrets: Secrets) -> Result | None:
        endpoint_id = delivery.endpoint_id
        endpoint_slots = self._endpoint_slots.setdefault(
            endpoint_id, asyncio.Semaphore(self.per_endpoint)
        )
        result: Result | None = None
        try:
            async with endpoint_slots, self._slots:  # the endpoint's turn first, then a slot
                answer = await attempt(delivery, secrets, sender=self.sender, body_of=self.body_of)
            if isinstance(answer, Attempt):
                result = await self.writer.record(answer)  # counted by the writer
            else:
                result = answer
                if self.metrics is not None and result is not None:
                    self.metrics.webhook_sent(result)
        except asyncio.CancelledError:
            raise  # still claimed: `stop` hands it back
        except Exception:  # a bug of ours: logged, and the lease brings it back
            log.exception("webhook delivery %s failed", delivery.id)
        finally:
            self._done(None, endpoint_id)
        self._claimed.discard(delivery.id)
        return result

    def _done(self, delivery_id: int | None, endpoint_id: int) -> None:
        if delivery_id is not None:
            self._claimed.discard(delivery_id)
        self._busy[endpoint_id] -= 1
        if not self._busy[endpoint_id]:
            del self._busy[endpoint_id]
            self._endpoint_slots.pop(endpoint_id, None)

    async def _oldest_pending(self) -> None:
        now = time.monotonic()
        if self.metrics is not None and now - self._gauged >= POLL_SECONDS:
            self._gauged = now
            self.metrics.webhook_oldest_pending.set(await oldest_pending_seconds())


async def attempt(
    delivery: WebhookDelivery,
    secrets: Secrets,
    *,
    sender: Sender,
    body_of: BodyOf = event_body,
) -> Attempt | Result | None:
    """Make one attempt at a claimed delivery (read with its event and endpoint): the
    attempt to record; a Result when it was given up unsent; None if it is no longer owed."""
    if delivery.status != DeliveryStatus.PENDING:
        return None
    endpoint, event = delivery.endpoint, delivery.event
    now = utcnow()
    if endpoint.deleted_at is not None or not (endpoint.enabled or delivery.manual):
        await WebhookDelivery.filter(id=delivery.id, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, completed_at=now
        )
        return Result(Outcome.FAILED, attempted=False)
    payload = json.dumps(body_of(event), ensure_ascii=False, separators=(",", ":"))
    if secrets is None:
        answer = Answer(None, None, "the endpoint's signing secret cannot be decrypted", 0)
    else:
        headers = signed_headers(event.id, payload, secrets, now)
        answer = await sender.post(endpoint.url, payload.encode(), headers)
    return Attempt(delivery, endpoint, answer, now)
