"""What the sandbox PSP does on its own, in the background: it POSTs the standard webhook
`{"pix": [Pix, ...]}` to the merchant's registered URL (+ `/pix`), retrying a few times, and
settles refunds when their delay is over (notifying their final state the same way).

Nothing here runs inside a request or its transaction: callers commit first, then hand the
work over (`notify`, `settle_later`) and answer at once. One worker per app, created when the
blueprint is registered and closed after serving: pending work is cancelled then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import httpx

from pixweb.models import SandboxDevolucao, SandboxPix
from pixweb.psp.sandbox import devolucoes, received, webhooks
from pixweb.psp.schemas import WebhookPayload, to_json
from pixweb.services.clock import utcnow

log = logging.getLogger(__name__)


class SandboxWorker:
    """The sandbox's background tasks and the HTTP client its webhooks go out with."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        refund_seconds: float = 2.0,
    ) -> None:
        self.attempts, self.backoff_seconds = attempts, backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.refund_seconds = refund_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox psp: background work failed", exc_info=task.exception())

    async def idle(self) -> None:
        """Wait until no background work is left (tests, and a tidy shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending work and close the HTTP client (the server is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- webhooks ----------------------------------------------------------------------

    def notify(self, merchant_id: int, chave: str, pix_ids: list[int], *, times: int = 1) -> None:
        """Deliver these Pix (as they stand when sent) `times` times, in the background."""
        self._spawn(self._notify(merchant_id, chave, pix_ids, times))

    async def _notify(self, merchant_id: int, chave: str, pix_ids: list[int], times: int) -> None:
        url = await webhooks.url_for_key(merchant_id, chave)
        if url is None:
            log.info("sandbox psp: merchant %s has no webhook for its key", merchant_id)
            return
        body = to_json(WebhookPayload(pix=await received.models_of(pix_ids)))
        for _ in range(times):
            await self._post(url, body)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.timeout_seconds,
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": "pixweb-sandbox-psp"},
            )
        return self._http

    async def _post(self, url: str, body: bytes) -> bool:
        """POST until a 2xx answer, at most `attempts` times, waiting longer each time."""
        headers = {"Content-Type": "application/json"}
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._client().post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                said = f"failed ({type(exc).__name__}: {exc})"
            else:
                if response.is_success:
                    log.info("sandbox psp: webhook delivered to %s", url)
                    return True
                said = f"answered {response.status_code}"
            log.warning("sandbox psp: webhook to %s %s, attempt %d", url, said, attempt)
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        log.error("sandbox psp: webhook to %s given up after %d attempts", url, self.attempts)
        return False

    # -- refunds -----------------------------------------------------------------------

    def settle_later(self, row: SandboxDevolucao) -> None:
        """Settle this refund when its time comes."""
        self._spawn(self._settle_at(row.id, row.settle_at))

    async def _settle_at(self, row_id: int, when: datetime) -> None:
        await asyncio.sleep(max(0.0, (when - utcnow()).total_seconds()))
        # The loop's clock is not the wall clock: a timer a hair early still settles.
        await self.settle(row_id, now=max(utcnow(), when))

    async def settle(self, row_id: int, now: datetime | None = None) -> None:
        """Settle the refund if due; the call that does notifies its Pix's webhook (only
        Pix with a txid are notified, as for payments)."""
        if not await devolucoes.settle(row_id, now):
            return
        row = await SandboxDevolucao.get(id=row_id)
        pix = await SandboxPix.get(id=row.pix_id)
        if pix.txid is not None:
            self.notify(pix.merchant_id, pix.chave, [pix.id])
