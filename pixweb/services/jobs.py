"""A background job a server process runs while it serves: one named task, started in
`before_serving` and cancelled in `after_serving` (reconciliation, the expiry sweeper)."""

from __future__ import annotations

import asyncio
import contextlib


class PeriodicJob:
    """Runs `_loop` as one task; `stop` cancels it, so each pass must commit whole or not
    at all (every pass is one or more transactions)."""

    name = "job"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        raise NotImplementedError
