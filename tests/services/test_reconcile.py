"""Reconciliation against the fake mTLS PSP: what webhooks missed is recorded, once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.app import create_app
from pixweb.config import ConfigError, load_config
from pixweb.deps import METRICS_KEY, PSP_CLIENTS_KEY
from pixweb.errors import NotFoundError
from pixweb.models import Merchant, PaymentStatus, PixSource, PspConnection, ReceivedPix
from pixweb.netguard import UrlPolicy
from pixweb.psp.transport import RetryPolicy
from pixweb.services import payments, psp_connections, reconcile
from pixweb.services.events import account_channel
from pixweb.services.psp_clients import PspClients
from pixweb.services.psp_connections import Credentials
from pixweb.services.reconcile import RunStatus
from tests.conftest import make_merchant
from tests.psp_fake import CLIENT_ID, CLIENT_SECRET, FakePsp, Pki, pem_chain, pem_key
from tests.services.test_ledger import assert_ledger_invariants

PUBLIC = "https://pixweb.example"
UNAVAILABLE = {"type": "about:blank", "title": "ServicoIndisponivel", "status": 503}


def credentials(psp: FakePsp, pki: Pki) -> Credentials:
    return Credentials(
        base_url=psp.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        certificate_pem=pem_chain(pki.client),
        private_key_pem=pem_key(pki.client),
        server_ca_pem=pki.ca.cert_pem.bytes().decode(),
    )


def make_clients(encryption_key: str) -> PspClients:
    """One process's clients: quick retries (a 503 is retried once)."""
    return PspClients(
        encryption_key=encryption_key,
        url_policy=UrlPolicy(require_https=True, allow_private=True),
        timeout=5.0,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )


@pytest.fixture
async def clients(app: Quart, psp: FakePsp) -> AsyncIterator[PspClients]:
    # After the PSP (so closed before it stops: open connections would hold its shutdown).
    registry = make_clients(app.extensions[PSP_CLIENTS_KEY].encryption_key)
    yield registry
    await registry.aclose()


@pytest.fixture
async def connected(merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki) -> Merchant:
    """The merchant, connected to the fake PSP, which lists only Pix within the window."""
    psp.honour_window = True
    await psp_connections.connect(
        merchant, credentials(psp, pki), clients=clients, public_base=PUBLIC
    )
    return merchant


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def add_pix(
    psp: FakePsp,
    n: int,
    *,
    valor: str = "10.00",
    txid: str | None = None,
    ago: timedelta = timedelta(minutes=1),
    chave: str | None = "loja@example.com",
) -> str:
    """A Pix received by the merchant's account `ago` before now (`n` orders them)."""
    horario = datetime.now(UTC).replace(microsecond=0) - ago + timedelta(milliseconds=n)
    e2eid = f"E12345678{horario:%Y%m%d%H%M}{n:011d}"
    item: dict[str, Any] = {"endToEndId": e2eid, "valor": valor, "horario": stamp(horario)}
    if txid is not None:
        item["txid"] = txid
    if chave is not None:
        item["chave"] = chave
    psp.pix[e2eid] = item
    return e2eid


async def run(merchant: Merchant, clients: PspClients, broker: Any, **options: Any) -> Any:
    return await reconcile.reconcile_merchant(
        merchant.id, clients=clients, broker=broker, **options
    )


async def connection(merchant: Merchant) -> PspConnection:
    return await PspConnection.get(merchant_id=merchant.id)


def _at(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["horario"].replace("Z", "+00:00"))


# --- what webhooks miss -------------------------------------------------------------------


async def test_finds_a_pix_whose_webhook_was_dropped_and_a_pix_without_txid(
    connected: Merchant,
    clients: PspClients,
    psp: FakePsp,
    broker: Any,
    client: Client,
    auth: dict[str, str],
) -> None:
    payment, _ = await payments.create_payment(connected, amount_cents=3000, broker=broker)
    paid = add_pix(psp, 1, valor="30.00", txid=payment.txid)
    direct = add_pix(psp, 2, valor="12.50")
    before = datetime.now(UTC)

    done = await run(connected, clients, broker)

    assert done.status == RunStatus.OK and done.error is None
    assert dict(done.recorded) == {"matched": 1, "no_txid": 1}
    await payment.refresh_from_db()
    assert payment.status == PaymentStatus.PAID and payment.end_to_end_id == paid
    records = {r.end_to_end_id: r for r in await ReceivedPix.all()}
    assert set(records) == {paid, direct}
    assert {r.source for r in records.values()} == {PixSource.RECONCILIATION}
    assert records[direct].txid is None and records[direct].amount_cents == 1250
    row = await connection(connected)
    assert row.reconciled_until is not None and row.reconciled_until >= before
    assert row.last_reconciliation_at is not None
    await assert_ledger_invariants()
    # The merchant sees what the last run found.
    response = await client.get("/merchants/me/psp", headers=auth)
    found = (await response.get_json())["last_reconciliation"]
    assert found["status"] == "ok" and found["error"] is None
    assert found["recorded"] == {"matched": 1, "no_txid": 1}
    assert found["pages"] == 1 and found["already_recorded"] == 0


async def test_a_second_run_records_nothing_new(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    for n in range(3):
        add_pix(psp, n)
    assert sum((await run(connected, clients, broker)).recorded.values()) == 3
    first = (await connection(connected)).reconciled_until

    again = await run(connected, clients, broker)

    assert again.status == RunStatus.OK and not again.recorded
    assert again.already_recorded == 3  # the overlap lists them again: skipped
    assert await ReceivedPix.all().count() == 3
    assert (await connection(connected)).reconciled_until >= first  # type: ignore[operator]
    await assert_ledger_invariants()


async def test_pages_through_every_page(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    e2eids = [add_pix(psp, n) for n in range(5)]

    done = await run(connected, clients, broker, page_size=2)

    assert done.pages == 3 and done.recorded["no_txid"] == 5
    assert set(await ReceivedPix.all().values_list("end_to_end_id", flat=True)) == set(e2eids)
    asked = [seen.query for seen in psp.seen("GET /pix")]
    assert [q["paginacao.paginaAtual"] for q in asked] == ["0", "1", "2"]
    assert {q["paginacao.itensPorPagina"] for q in asked} == {"2"}
    await assert_ledger_invariants()


async def test_a_page_is_recorded_a_chunk_a_transaction_its_events_sent_once_committed(
    connected: Merchant,
    clients: PspClients,
    psp: FakePsp,
    broker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconcile, "CHUNK", 2)  # a page of 5: three transactions
    payment, _ = await payments.create_payment(connected, amount_cents=1000, broker=broker)
    e2eids = [add_pix(psp, 0, txid=payment.txid), *(add_pix(psp, n) for n in range(1, 5))]
    told: list[tuple[str, bool]] = []  # each pix.received event, and its record committed then

    async with broker.subscribe(account_channel(connected.id)) as events:

        async def watch() -> None:
            async for event in events:
                if event["type"] == "pix.received":
                    e2eid = event["pix"]["end_to_end_id"]
                    # Another connection on PostgreSQL: it sees only what is committed.
                    told.append((e2eid, await ReceivedPix.exists(end_to_end_id=e2eid)))
                    if len(told) == len(e2eids):
                        return

        watcher = asyncio.create_task(watch())
        done = await run(connected, clients, broker)
        await asyncio.wait_for(watcher, 5)

    assert done.status == RunStatus.OK and dict(done.recorded) == {"matched": 1, "no_txid": 4}
    assert sorted(e2eid for e2eid, _ in told) == sorted(e2eids)
    assert all(committed for _, committed in told)
    await payment.refresh_from_db()
    assert payment.status == PaymentStatus.PAID
    await assert_ledger_invariants()


async def test_a_run_failing_midway_keeps_its_checkpoint_and_the_next_one_resumes(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    e2eids = [add_pix(psp, n) for n in range(5)]
    psp.script_page(1, (503, UNAVAILABLE), (503, UNAVAILABLE))  # a retry too

    failed = await run(connected, clients, broker, page_size=2)

    assert failed.status == RunStatus.FAILED and "503" in (failed.error or "")
    assert failed.recorded["no_txid"] == 2
    row = await connection(connected)
    assert row.reconciled_until == _at(psp.pix[e2eids[1]])  # page 0's last Pix
    assert row.last_reconciliation_at is None  # no run succeeded yet
    assert row.last_reconciliation is not None
    assert row.last_reconciliation["status"] == "failed"
    assert row.last_reconciliation["recorded"] == {"no_txid": 2}

    resumed = await run(connected, clients, broker, page_size=2)

    assert resumed.status == RunStatus.OK
    assert resumed.recorded["no_txid"] == 3 and resumed.already_recorded == 2
    records = await ReceivedPix.all().values_list("end_to_end_id", flat=True)
    assert sorted(records) == sorted(e2eids)  # each once
    row = await connection(connected)
    assert row.reconciled_until is not None and row.reconciled_until > _at(psp.pix[e2eids[4]])
    assert row.last_reconciliation_at is not None
    await assert_ledger_invariants()


async def test_a_psp_listing_out_of_horario_order_moves_the_checkpoint_only_per_window(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    e2eids = [add_pix(psp, n) for n in range(4)]
    newest_first = [psp.pix[e2eid] for e2eid in reversed(e2eids)]
    now = stamp(datetime.now(UTC))
    paging = {"paginaAtual": 0, "itensPorPagina": 2, "quantidadeDePaginas": 2}
    page = {
        "parametros": {
            "inicio": now,
            "fim": now,
            "paginacao": {**paging, "quantidadeTotalDeItens": 4},
        },
        "pix": newest_first[:2],
    }
    psp.script_page(0, (200, page))
    psp.script_page(1, (503, UNAVAILABLE), (503, UNAVAILABLE))

    failed = await run(connected, clients, broker, page_size=2)

    # Its newest Pix were read, the older ones not: a checkpoint there would skip them.
    assert failed.status == RunStatus.FAILED and failed.recorded["no_txid"] == 2
    assert (await connection(connected)).reconciled_until is None
    resumed = await run(connected, clients, broker, page_size=2)
    assert resumed.recorded["no_txid"] == 2
    assert sorted(await ReceivedPix.all().values_list("end_to_end_id", flat=True)) == e2eids


async def test_a_pix_the_psp_lists_late_is_found_within_the_overlap(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    await run(connected, clients, broker)
    checkpoint = (await connection(connected)).reconciled_until
    assert checkpoint is not None
    # Paid before the checkpoint, but listed by the PSP only now.
    late = add_pix(psp, 1, ago=timedelta(minutes=3))
    assert _at(psp.pix[late]) < checkpoint

    done = await run(connected, clients, broker)

    assert done.recorded["no_txid"] == 1
    assert await ReceivedPix.exists(end_to_end_id=late)


async def test_since_pages_from_then_but_never_moves_the_checkpoint_over_a_gap(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    old = add_pix(psp, 1, ago=timedelta(hours=3))  # before the connection: not looked at
    assert (await run(connected, clients, broker)).recorded == {}
    checkpoint = (await connection(connected)).reconciled_until

    await PspConnection.filter(merchant_id=connected.id).update(reconciled_until=None)
    later = datetime.now(UTC) - timedelta(minutes=1)
    gap = await run(connected, clients, broker, since=later)
    assert gap.status == RunStatus.OK
    assert (await connection(connected)).reconciled_until is None  # the gap stays to look at

    await PspConnection.filter(merchant_id=connected.id).update(reconciled_until=checkpoint)
    back = await run(connected, clients, broker, since=datetime.now(UTC) - timedelta(hours=4))
    assert back.recorded["no_txid"] == 1 and await ReceivedPix.exists(end_to_end_id=old)
    assert (await connection(connected)).reconciled_until >= checkpoint  # type: ignore[operator]
    await assert_ledger_invariants()


async def test_pix_to_another_key_or_of_an_unusable_amount_are_skipped_and_the_run_goes_on(
    connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    add_pix(psp, 1, chave="outra-chave@example.com")
    add_pix(psp, 2, valor="0.00")
    kept = add_pix(psp, 3, chave=None)  # PSPs that leave chave out: the account's

    done = await run(connected, clients, broker)

    assert done.status == RunStatus.OK
    assert dict(done.skipped) == {"other_key": 1, "unusable": 1}
    assert await ReceivedPix.all().values_list("end_to_end_id", flat=True) == [kept]
    assert (await connection(connected)).reconciled_until is not None
    await assert_ledger_invariants()


# --- one runner ---------------------------------------------------------------------------


async def test_two_reconcilers_at_once_record_each_pix_once_and_only_one_runs(
    app: Quart, connected: Merchant, psp: FakePsp, broker: Any
) -> None:
    """Two processes (each its own clients) on one database: SQLite's in-process lock, or
    PostgreSQL's advisory lock (each runner on its own pooled connection)."""
    e2eids = [add_pix(psp, n) for n in range(4)]
    psp.script_page(0, (200, None, 0.5))  # the first page is slow: the runs overlap
    key = app.extensions[PSP_CLIENTS_KEY].encryption_key
    one, two = make_clients(key), make_clients(key)
    try:
        runs = await asyncio.gather(
            run(connected, one, broker, page_size=2), run(connected, two, broker, page_size=2)
        )
    finally:
        await one.aclose()
        await two.aclose()

    assert sorted(r.status for r in runs) == [RunStatus.BUSY, RunStatus.OK]
    assert len(psp.seen("GET /pix")) == 2  # the pages of one run only
    assert sorted(await ReceivedPix.all().values_list("end_to_end_id", flat=True)) == e2eids
    # Released: the next run is not busy.
    three = make_clients(key)
    try:
        assert (await run(connected, three, broker)).status == RunStatus.OK
    finally:
        await three.aclose()
    await assert_ledger_invariants()


@pytest.mark.skipif(
    not os.environ.get("PIXWEB_TEST_DATABASE_URL"), reason="PIXWEB_TEST_DATABASE_URL is not set"
)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_on_postgresql_another_host_holding_the_lock_makes_the_run_busy(
    database_url: str, connected: Merchant, clients: PspClients, psp: FakePsp, broker: Any
) -> None:
    add_pix(psp, 1)
    other = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        held = "SELECT pg_try_advisory_lock($1, $2)"
        assert await other.fetchval(held, reconcile.LOCK_CLASS, connected.id)
        assert (await run(connected, clients, broker)).status == RunStatus.BUSY
        assert not psp.seen("GET /pix") and not await ReceivedPix.exists()
        await other.execute("SELECT pg_advisory_unlock($1, $2)", reconcile.LOCK_CLASS, connected.id)
        assert (await run(connected, clients, broker)).status == RunStatus.OK
        # The run's transaction ended: no advisory lock is left behind, held or waiting.
        count = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert await other.fetchval(count) == 0
        # The other merchant's lock is its own.
        assert await other.fetchval(held, reconcile.LOCK_CLASS, connected.id + 1)
        assert (await run(connected, clients, broker)).status == RunStatus.OK
    finally:
        await other.close()


# --- every merchant, and the server's job ---------------------------------------------------


async def test_a_failing_merchant_does_not_stop_the_others(
    connected: Merchant, clients: PspClients, psp: FakePsp, pki: Pki, broker: Any
) -> None:
    second = await make_merchant("outra@example.com", pix_key="outra@example.com")
    await psp_connections.connect(
        second, credentials(psp, pki), clients=clients, public_base=PUBLIC
    )
    theirs = add_pix(psp, 1, chave="outra@example.com")
    psp.script_page(0, (503, UNAVAILABLE), (503, UNAVAILABLE))  # the first merchant's pass

    runs = await reconcile.reconcile_all(clients=clients, broker=broker)

    assert [(r.merchant_id, r.status) for r in runs] == [
        (connected.id, RunStatus.FAILED),
        (second.id, RunStatus.OK),
    ]
    assert (await ReceivedPix.get(end_to_end_id=theirs)).merchant_id == second.id
    assert await reconcile.lag_seconds() > 0  # the failing merchant's checkpoint lags
    await assert_ledger_invariants()


async def test_a_merchant_without_a_psp_is_not_reconciled(
    merchant: Merchant, clients: PspClients, broker: Any
) -> None:
    with pytest.raises(NotFoundError, match="no PSP is connected"):
        await run(merchant, clients, broker)
    assert await reconcile.reconcile_all(clients=clients, broker=broker) == []
    # Disconnected between the listing and its turn: skipped, not failed.
    runs = await reconcile.reconcile_all(clients=clients, broker=broker, merchant_ids=[merchant.id])
    assert runs == []


def test_the_interval_setting() -> None:
    assert load_config({"testing": True}, environ={}).reconcile_seconds == 0
    environ = {"PIXWEB_RECONCILE_SECONDS": "60"}
    assert load_config({"testing": True}, environ=environ).reconcile_seconds == 60
    for wrong in ("-1", "soon"):
        with pytest.raises(ConfigError, match="PIXWEB_RECONCILE_SECONDS"):
            load_config({"testing": True}, environ={"PIXWEB_RECONCILE_SECONDS": wrong})


def test_the_job_runs_every_five_minutes_by_default(tmp_path: Path) -> None:
    config = load_config({"instance_path": str(tmp_path)}, environ={})
    assert config.reconcile_seconds == 300


async def test_the_server_runs_the_job_and_stops_it_with_itself(
    psp: FakePsp, pki: Pki, tmp_path: Path
) -> None:
    settings = {
        "testing": True,
        "database_url": "sqlite://:memory:",
        "auto_migrate": True,
        "allow_private_urls": True,
        "reconcile_seconds": 1,
    }
    application = create_app(settings)
    async with application.test_app():
        owner = await make_merchant()
        clients = application.extensions[PSP_CLIENTS_KEY]
        await psp_connections.connect(
            owner, credentials(psp, pki), clients=clients, public_base=PUBLIC
        )
        e2eid = add_pix(psp, 1)
        for _ in range(60):  # the first pass within a second, then every ~second
            if await ReceivedPix.exists(end_to_end_id=e2eid):
                break
            await asyncio.sleep(0.1)
        assert await ReceivedPix.exists(end_to_end_id=e2eid)
        metrics = application.extensions[METRICS_KEY].registry
        for _ in range(30):
            if metrics.get_sample_value("pixweb_reconciliation_runs_total", {"outcome": "ok"}):
                break
            await asyncio.sleep(0.1)
        assert metrics.get_sample_value("pixweb_reconciliation_runs_total", {"outcome": "ok"})
        sample = metrics.get_sample_value("pixweb_pix_recorded_total", {"source": "reconciliation"})
        assert sample == 1
        assert metrics.get_sample_value("pixweb_reconciliation_lag_seconds") is not None
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "reconcile"]
