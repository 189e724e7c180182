"""Reconciliation: the Pix each merchant's PSP lists that pixweb has not recorded yet.

Webhooks get lost, and Pix paid to the key without a txid are never notified at all; the
PSP's `GET /pix?inicio=&fim=` lists every Pix the account received. For each connected
merchant a run pages it from the merchant's checkpoint (`PspConnection.reconciled_until`)
minus OVERLAP (PSPs publish a Pix some minutes after its `horario`) to now, in windows of
at most WINDOW, and records each Pix not yet known through the one path
(`received.record_plan`, which `record_received_pix` runs for one; source `reconciliation`);
the e2eids already recorded are skipped with one query per page.

The checkpoint only moves forward, and only after a page's records are committed (CHUNK
records a transaction, each in its own savepoint, their events published after the commit;
on SQLite a chunk is one hand-off to its thread):
to a window's end once all its pages are read, and within a window to the latest `horario`
read so far while the PSP lists in `horario` order (the specification does not say it must:
an answer out of order is noticed and the checkpoint then waits for the window's end). A run
that fails midway resumes from the last good point; pages read again are skipped cheaply,
and a Pix is recorded once whatever runs at once (its end_to_end_id is unique).

One runner per merchant at a time (`single_runner`): on PostgreSQL a transaction-level
advisory lock, `pg_try_advisory_xact_lock`, taken by a task that keeps one pooled
connection in an open transaction for the run and ends it after (a crash, a cancellation or
a lost connection ends the transaction and frees the lock; a session lock on a pooled
connection could outlive its holder); other workers and hosts skip the merchant (`busy`).
On SQLite (one host) an asyncio.Lock per merchant in the process; a `pixweb reconcile` run
beside the server is still safe, only not exclusive.

`ReconcileJob` runs a pass over every merchant in the server every
`PIXWEB_RECONCILE_SECONDS`, with jitter; `pixweb reconcile` runs one by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from pixweb.broker import Broker
from pixweb.errors import InvalidInputError, NotFoundError, PixwebError, PspError
from pixweb.metrics import Metrics
from pixweb.models import PixSource, PspConnection, ReceivedPix
from pixweb.psp.client import PspClient
from pixweb.psp.schemas import Pix
from pixweb.services import intake, received, refunds, sql
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox
from pixweb.services.jobs import PeriodicJob
from pixweb.services.psp_clients import PspClients
from pixweb.services.psp_connections import NOT_CONNECTED

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=10)  # how late a PSP may list a Pix after its horario
WINDOW = timedelta(days=1)  # the longest inicio..fim asked at once (PSPs limit it)
PAGE_SIZE = 1000  # the most the API Pix allows
# Pix recorded per transaction: one commit (and fsync) for many, while holding SQLite's one
# writer (and on PostgreSQL the merchant's account row) for a fraction of a second at most.
# On PostgreSQL a webhook settling a charge of the same chunk at that very moment can
# deadlock with it (charge then account, against account then charge): PostgreSQL ends one,
# and nothing is lost (the run fails and the next records the chunk, or the PSP delivers
# the webhook again).
CHUNK = 100
MAX_PAGES = 10_000  # per window: a PSP announcing more is not paged forever
FIRST_PASS_MAX_SECONDS = 30.0  # the server's first pass, at a random moment within this
LOCK_CLASS = 0x70697872  # "pixr": the advisory locks' first key; the merchant id is the second


class RunStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"  # logged; the checkpoint stays at the last page recorded
    BUSY = "busy"  # another worker or host was reconciling this merchant


@dataclass
class Run:
    """What one run for one merchant did."""

    merchant_id: int
    status: RunStatus = RunStatus.OK
    pages: int = 0
    recorded: Counter[str] = field(default_factory=Counter)  # new records by outcome
    already_recorded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # not recorded, by reason
    reconciled_until: datetime | None = None  # the checkpoint after the run
    error: str | None = None

    def summary(self, finished_at: datetime) -> dict[str, Any]:
        """The JSON kept as the connection's `last_reconciliation`."""
        until = self.reconciled_until
        return {
            "status": str(self.status),
            "finished_at": finished_at.isoformat(),
            "pages": self.pages,
            "recorded": dict(self.recorded),
            "already_recorded": self.already_recorded,
            "skipped": dict(self.skipped),
            "reconciled_until": until.isoformat() if until else None,
            "error": self.error,
        }


# -- the single runner ------------------------------------------------------------------

_local_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Lock]]
_local_locks = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def single_runner(merchant_id: int) -> AsyncIterator[bool]:
    """Hold the merchant's reconciliation lock for the block: yields False when another
    runner has it (nothing waits)."""
    if sql.connection()[1]:  # PostgreSQL
        async with _advisory_lock(merchant_id) as mine:
            yield mine
        return
    locks = _local_locks.setdefault(asyncio.get_running_loop(), {})
    lock = locks.setdefault(merchant_id, asyncio.Lock())
    if lock.locked():
        yield False
        return
    async with lock:
        yield True


@contextlib.asynccontextmanager
async def _advisory_lock(key: int) -> AsyncIterator[bool]:
    taken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def hold() -> None:
        # Its own task: the transaction (a context variable) stays out of the run's records,
        # which commit one by one on other connections.
        async with in_transaction() as connection:
            rows = await connection.execute_query_dict(
                "SELECT pg_try_advisory_xact_lock($1, $2) AS mine", [LOCK_CLASS, key]
            )
            taken.set_result(bool(rows[0]["mine"]))
            if taken.result():
                await release.wait()

    holder = asyncio.get_running_loop().create_task(hold())
    try:
        waiting: list[asyncio.Future[Any]] = [taken, holder]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not taken.done():
            holder.result()  # its error
        yield taken.result()
    finally:
        release.set()
        try:
            await holder
        except Exception:  # the transaction failed: ended anyway, and the lock with it
            log.warning("reconciliation lock of merchant %s ended with an error", key)


# -- one merchant -----------------------------------------------------------------------


async def reconcile_merchant(
    merchant_id: int,
    *,
    clients: PspClients,
    broker: Broker,
    since: datetime | None = None,
    page_size: int = PAGE_SIZE,
    overlap: timedelta = OVERLAP,
) -> Run:
    """Record the Pix the merchant's PSP lists from its checkpoint (or `since`) to now that
    pixweb has not; NotFoundError when no PSP is connected. A failure is returned (status
    failed, logged), not raised."""
    run = Run(merchant_id)
    async with single_runner(merchant_id) as mine:
        if not mine:
            run.status = RunStatus.BUSY
            return run
        row = await PspConnection.get_or_none(merchant_id=merchant_id)
        if row is None:
            raise NotFoundError(NOT_CONNECTED)
        run.reconciled_until = row.reconciled_until
        try:
            client = await clients.for_merchant(merchant_id)
            if client is None:  # disconnected meanwhile, or a sandbox out of development
                raise NotFoundError(NOT_CONNECTED)
            await _received_pix(run, row, client, broker, since, page_size, overlap)
            # Refunds still EM_PROCESSAMENTO, under this same lock: GET devolucao for each,
            # settled through the refunds' one path (a lost webhook cannot leave one hanging).
            await refunds.poll_in_process(merchant_id, client, broker=broker)
        except NotFoundError:
            raise
        except PixwebError as exc:
            run.status, run.error = RunStatus.FAILED, exc.detail
            log.warning("merchant %s: reconciliation failed: %s", merchant_id, exc.detail)
        except Exception as exc:
            run.status, run.error = RunStatus.FAILED, f"unexpected error: {type(exc).__name__}"
            log.exception("merchant %s: reconciliation failed", merchant_id)
        finished = utcnow()
        values: dict[str, Any] = {"last_reconciliation": run.summary(finished)}
        if run.status == RunStatus.OK:
            values["last_reconciliation_at"] = finished
        await PspConnection.filter(id=row.id).update(**values)
    return run


async def _received_pix(
    run: Run,
    row: PspConnection,
    client: PspClient,
    broker: Broker,
    since: datetime | None,
    page_size: int,
    overlap: timedelta,
) -> None:
    natural = (row.reconciled_until or row.connected_at) - overlap
    start = since if since is not None else natural
    # A run from later than the checkpoint leaves a gap behind it: it must not move it.
    advance = start <= natural
    end = utcnow()
    while start < end:
        fim = min(start + WINDOW, end)
        await _window(run, row, client, broker, start, fim, page_size, advance)
        start = fim


async def _window(
    run: Run,
    row: PspConnection,
    client: PspClient,
    broker: Broker,
    inicio: datetime,
    fim: datetime,
    page_size: int,
    advance: bool,
) -> None:
    page, latest, ordered = 0, None, True
    while True:
        answer = await client.list_pix(inicio, fim, pagina=page, itens=page_size)
        run.pages += 1
        for pix in answer.pix:
            ordered = ordered and (latest is None or pix.horario >= latest)
            latest = pix.horario if latest is None else max(latest, pix.horario)
        await _record_page(run, row, answer.pix, broker)
        page += 1
        if not answer.pix or page >= answer.parametros.paginacao.quantidade_de_paginas:
            break
        if page >= MAX_PAGES:
            raise PspError(f"the PSP lists more than {MAX_PAGES} pages of Pix", step="pix")
        if advance and ordered and latest is not None:
            await _checkpoint(run, row, min(latest, fim))
    if advance:
        await _checkpoint(run, row, fim)


async def _record_page(run: Run, row: PspConnection, page: list[Pix], broker: Broker) -> None:
    asked = [pix.end_to_end_id for pix in page]
    seen = {
        str(e2eid)
        for e2eid in await sql.values(ReceivedPix, "end_to_end_id", end_to_end_id__in=asked)
    }
    fresh: list[Pix] = []
    for pix in page:
        if pix.end_to_end_id in seen:
            run.already_recorded += 1
            continue
        seen.add(pix.end_to_end_id)
        if pix.chave is not None and pix.chave.strip().casefold() != row.chave.casefold():
            # The account's other keys are not pixweb's (the webhook intake refuses them too).
            run.skipped["other_key"] += 1
            continue
        fresh.append(pix)
    for start in range(0, len(fresh), CHUNK):
        await _record_chunk(run, row, fresh[start : start + CHUNK], broker)


async def _record_chunk(run: Run, row: PspConnection, chunk: list[Pix], broker: Broker) -> None:
    """Record up to CHUNK Pix in one transaction (each its own savepoint; on SQLite one
    hand-off to its thread), publish their events once it is committed, and only then
    count them in the run."""
    outbox, tally = Outbox(), Run(row.merchant_id)
    usable: list[received.Incoming] = []
    for pix in chunk:
        try:
            usable.append(
                intake.incoming(pix, merchant_id=row.merchant_id, source=PixSource.RECONCILIATION)
            )
        except InvalidInputError as exc:  # an amount pixweb cannot hold: say it, go on
            tally.skipped["unusable"] += 1
            log.error(
                "merchant %s: Pix %s cannot be recorded: %s",
                row.merchant_id,
                pix.end_to_end_id,
                exc.detail,
            )
    await sql.run_in_transaction(_chunk_plan(usable, outbox, tally))
    await outbox.publish(broker)
    run.recorded.update(tally.recorded)
    run.skipped.update(tally.skipped)
    run.already_recorded += tally.already_recorded


def _chunk_plan(usable: list[received.Incoming], outbox: Outbox, tally: Run) -> sql.Plan[None]:
    for pix in usable:
        record, new = yield from received.record_plan(pix, outbox)
        if new:
            tally.recorded[str(record.outcome)] += 1
        else:  # recorded meanwhile by its webhook
            tally.already_recorded += 1


async def _checkpoint(run: Run, row: PspConnection, until: datetime) -> None:
    earlier = Q(reconciled_until__isnull=True) | Q(reconciled_until__lt=until)
    await PspConnection.filter(Q(id=row.id) & earlier).update(reconciled_until=until)
    if run.reconciled_until is None or until > run.reconciled_until:
        run.reconciled_until = until


# -- every merchant ---------------------------------------------------------------------


async def reconcile_all(
    *,
    clients: PspClients,
    broker: Broker,
    merchant_ids: Iterable[int] | None = None,
    since: datetime | None = None,
    **options: Any,
) -> list[Run]:
    """Reconcile each connected merchant (or those given) in turn; one failing never
    stops the others."""
    if merchant_ids is None:
        listed = PspConnection.all().order_by("merchant_id").values_list("merchant_id", flat=True)
        merchant_ids = [cast(int, m) for m in await listed]
    runs = []
    for merchant_id in merchant_ids:
        try:
            run = await reconcile_merchant(
                merchant_id, clients=clients, broker=broker, since=since, **options
            )
        except NotFoundError:
            continue  # disconnected meanwhile
        except Exception as exc:  # the database, most likely: the next merchant may work
            log.exception("merchant %s: reconciliation failed", merchant_id)
            run = Run(merchant_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        runs.append(run)
    return runs


async def lag_seconds() -> float:
    """Seconds from the oldest merchant's checkpoint (its connection, before any) to now."""
    rows = await PspConnection.all().values_list("reconciled_until", "connected_at")
    marks = [until or connected for until, connected in rows]
    return max((utcnow() - min(marks)).total_seconds(), 0.0) if marks else 0.0


class ReconcileJob(PeriodicJob):
    """The server's reconciliation: a pass over every merchant each `interval` seconds
    (± 10 %, the first at a random moment: workers started together do not align). A
    stopped run keeps what it committed, its checkpoint included."""

    name = "reconcile"

    def __init__(
        self, *, interval: float, clients: PspClients, broker: Broker, metrics: Metrics
    ) -> None:
        super().__init__()
        self.interval, self.clients, self.broker = interval, clients, broker
        self.metrics = metrics

    async def _loop(self) -> None:
        await asyncio.sleep(random.uniform(0, min(self.interval, FIRST_PASS_MAX_SECONDS)))
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))

    async def run_once(self) -> list[Run]:
        """One pass, counted in the metrics; an error is logged, never raised."""
        runs: list[Run] = []
        try:
            runs = await reconcile_all(clients=self.clients, broker=self.broker)
            self.metrics.reconciliation_lag.set(await lag_seconds())
        except Exception:
            log.exception("reconciliation pass failed")
            self.metrics.reconciliation_runs.labels(str(RunStatus.FAILED)).inc()
        for run in runs:
            self.metrics.reconciliation_runs.labels(str(run.status)).inc()
            recorded = sum(run.recorded.values())
            if recorded:
                self.metrics.pix_recorded.labels(str(PixSource.RECONCILIATION)).inc(recorded)
        return runs
