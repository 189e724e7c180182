"""Group commit of webhook attempts: many sends finishing together are recorded in one
transaction (services/delivery_outcome.record_attempts) instead of one each.

A send that finishes queues its attempt and waits for its result. Whoever finds the writer
free writes everything queued so far; the sends that finish meanwhile queue behind it and
go in the next write. Nothing waits for a timer: a lone send is written at once, and under
load a write holds as many attempts as finished during the previous one.
"""

from __future__ import annotations

import asyncio

from pixweb.broker import Broker
from pixweb.metrics import Metrics
from pixweb.services.delivery_outcome import Attempt, Result, record_attempts

Batch = list[tuple[Attempt, asyncio.Future[Result]]]

MAX_BATCH = 500  # attempts per transaction: bounded statements and parameters
DRAIN_SECONDS = 5.0  # stopping waits this long at most for the writes under way


class AttemptWriter:
    """Records attempts in batches; one per worker."""

    def __init__(self, *, broker: Broker, metrics: Metrics | None = None) -> None:
        self.broker, self.metrics = broker, metrics
        self._queued: Batch = []
        self._lock = asyncio.Lock()
        self._writing: set[asyncio.Task[None]] = set()

    async def record(self, attempt: Attempt) -> Result:
        """Record `attempt` (in a batch with others) and return its result once committed."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((attempt, done))
        while not done.done():
            async with self._lock:
                if not done.done():
                    await self._write()
        return done.result()

    async def drain(self) -> None:
        """Wait for the writes under way (stopping: the attempts they hold were sent, and
        a write cut short would have them sent again), DRAIN_SECONDS at most (a database
        that stopped answering does not hold the shutdown; the lease brings them back)."""
        if self._writing:
            await asyncio.wait(self._writing, timeout=DRAIN_SECONDS)

    async def _write(self) -> None:
        batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
        if not batch:
            return
        # A write commits or not as a whole, whoever is cancelled: a send cancelled while
        # it waits (stopping) leaves the write running, and the batch still learns.
        write = asyncio.create_task(self._commit(batch))
        self._writing.add(write)
        write.add_done_callback(self._writing.discard)
        await asyncio.wait([write])

    async def _commit(self, batch: Batch) -> None:
        try:
            results = await record_attempts([a for a, _ in batch], broker=self.broker)
        except Exception as exc:  # every waiter learns; the lease brings them back
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
        except BaseException:  # the write itself cancelled: its waiters stop too
            for _, done in batch:
                done.cancel()
            raise
        else:
            for (_, done), result in zip(batch, results, strict=True):
                if self.metrics is not None:  # counted as committed, waited for or not
                    self.metrics.webhook_sent(result)
                if not done.done():
                    done.set_result(result)
