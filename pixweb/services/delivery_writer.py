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
from pixweb.services.delivery_outcome import Attempt, Result, record_attempts

MAX_BATCH = 500  # attempts per transaction: bounded statements and parameters


class AttemptWriter:
    """Records attempts in batches; one per worker."""

    def __init__(self, *, broker: Broker) -> None:
        self.broker = broker
        self._queued: list[tuple[Attempt, asyncio.Future[Result]]] = []
        self._lock = asyncio.Lock()

    async def record(self, attempt: Attempt) -> Result:
        """Record `attempt` (in a batch with others) and return its result once committed."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((attempt, done))
        while not done.done():
            async with self._lock:
                if not done.done():
                    await self._write()
        return done.result()

    async def _write(self) -> None:
        batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
        if not batch:
            return
        try:
            # shielded: a write under way commits or not as a whole, whoever is cancelled
            results = await asyncio.shield(
                record_attempts([a for a, _ in batch], broker=self.broker)
            )
        except Exception as exc:  # every waiter learns; the lease brings them back
            for _, done in batch:
                done.set_exception(exc)
        except BaseException:  # cancelled (stopping): the waiters stop too
            for _, done in batch:
                done.cancel()
            raise
        else:
            for (_, done), result in zip(batch, results, strict=True):
                done.set_result(result)
