"""Scenarios 6 and 8 on one pixweb server (SQLite) whose merchant is connected to the lean PSP:

6. reconciliation: the lean PSP's `GET /pix` lists 100,000 received Pix (pages of 1,000)
   that pixweb never heard of; `pixweb reconcile --merchant ... --since ...` (the CLI, run
   under peak_rss.py beside the idle server, on the same database) records them in one pass,
   timed, its peak RSS growth read from /proc; a second pass must record nothing.
8. CSV: a merchant's 100,000 movements (one real credit, cloned in SQL) streamed by
   `GET /accounts/me/movements.csv`: rows per second, the server's peak RSS growth (VmRSS
   sampled every 10 ms while it streams).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.benchmarks import psp as lean
from tests.benchmarks.client import confirmation, create_payment, http_client, merchant
from tests.benchmarks.context import Context
from tests.benchmarks.measure import CpuMeter
from tests.benchmarks.profiling import PY_SPY_RATE
from tests.benchmarks.report import Row
from tests.benchmarks.servers import ROOT, Server

RECONCILE_SECONDS, RECONCILE_MB = 60.0, 50.0
CSV_RATE, CSV_MB = 50_000.0, 30.0
RECONCILE_TIMEOUT = 75.0  # a pass still running then is stopped, its records counted
CSV_TIMEOUT = 120.0
MB = 1e6


def _moment(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


async def _reconcile(
    ctx: Context, server: Server, email: str, since: str, name: str
) -> tuple[float, dict[str, int], str]:
    """One `pixweb reconcile` pass: (seconds, RSS figures, its output); under py-spy with
    `--profile` (the first pass)."""
    out = server.workdir / f"{name}.json"
    command = [sys.executable, "-m", "tests.benchmarks.peak_rss", str(out)]
    command += ["reconcile", "--merchant", email, "--since", since]
    profiler = ctx.profiler
    if profiler.folder is not None and profiler.binary is not None and name == "first":
        raw = profiler.folder / "reconcile-cli.txt"
        spy = [profiler.binary, "record", "--rate", str(PY_SPY_RATE), "--gil", "--format"]
        command = [*spy, "raw", "--output", str(raw), "--", *command]
        profiler.phases.append(("reconcile (the pixweb reconcile process)", [raw]))
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; waited for in a thread)
        command,
        cwd=ROOT,
        env=server._env(),  # the server's own configuration and database
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=RECONCILE_TIMEOUT)
    except subprocess.TimeoutExpired:  # SIGINT: peak_rss.py (and py-spy) still write theirs
        os.killpg(process.pid, signal.SIGINT)
        try:
            stdout, stderr = await asyncio.to_thread(process.communicate, timeout=30)
        except subprocess.TimeoutExpired:  # what it committed is counted all the same
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = await asyncio.to_thread(process.communicate)
    seconds = time.perf_counter() - started
    rss = json.loads(out.read_text()) if out.exists() else {}
    if seconds >= RECONCILE_TIMEOUT:
        recorded = await asyncio.to_thread(_count, server, "SELECT count(*) FROM received_pix")
        return seconds, rss, f"stopped after {RECONCILE_TIMEOUT:.0f} s: recorded {recorded}"
    if process.returncode != 0:
        raise RuntimeError(f"pixweb reconcile exited {process.returncode}: {stderr[-400:]}")
    return seconds, rss, stdout.strip()


def _count(server: Server, query: str) -> int:
    with sqlite3.connect(server.db_path, timeout=30) as db:
        return int(db.execute(query).fetchone()[0])


def _recorded(output: str) -> int:
    found = re.search(r"recorded (\d+)", output)
    return int(found.group(1)) if found else -1


async def reconcile_and_csv(ctx: Context, wanted: set[str]) -> list[Row]:
    rows = []
    with lean.LeanPsp(ctx.workdir) as psp, Server(ctx.workdir, "batch") as server:
        if "6" in wanted:
            rows.append(await _reconciliation(ctx, server, psp))
        if "8" in wanted:
            async with http_client(server.url, 1) as http:
                token = await _with_movements(http, server, ctx.sizes.csv_movements)
            rows.append(await _csv(ctx, server, token))
    return rows


async def _reconciliation(ctx: Context, server: Server, psp: lean.LeanPsp) -> Row:
    count = ctx.sizes.received_pix
    async with http_client(server.url, 1) as http:
        token, email = await merchant(http)
        await psp.connect(http, token)
    now = datetime.now(UTC)
    listing = {"count": count, "chave": email, "horario": _moment(now - timedelta(minutes=1))}
    await psp.steer("/_bench/listing", listing)
    since = _moment(now - timedelta(minutes=5))
    meter = CpuMeter(None, psp)
    seconds, rss, output = await _reconcile(ctx, server, email, since, "first")
    share = meter.stop()
    recorded, second, again = _recorded(output), "not run: the first did not finish", 0.0
    if seconds < RECONCILE_TIMEOUT:
        again, _, output_2 = await _reconcile(ctx, server, email, since, "second")
        second = f"{_recorded(output_2)} recorded in {again:.1f} s"
    growth = (rss["peak_kb"] - rss["baseline_kb"]) / 1000 if rss else float("nan")
    return Row(
        f"6. reconciliation: {count:,} received Pix ({-(-count // 1000)} pages of 1,000 from "
        "the lean PSP's GET /pix), `pixweb reconcile`",
        f"one pass {seconds:.1f} s ({recorded / seconds:,.0f} Pix/s), peak RSS "
        f"+{growth:.0f} MB; second pass: {second}",
        target=f"< {RECONCILE_SECONDS:.0f} s, ≤ {RECONCILE_MB:.0f} MB, second records 0",
        ok=seconds < RECONCILE_SECONDS
        and growth <= RECONCILE_MB
        and recorded == count
        and second.startswith("0 recorded"),
        notes=f"the first pass recorded {recorded:,}; the CLI's own process (peak RSS over its "
        f"RSS once its modules are imported: {rss.get('baseline_kb', 0) / 1000:.0f} MB) beside "
        f"the idle server, SQLite; lean PSP CPU {share.psp or 0:.1f} s; output: {output[:240]}",
    )


async def _with_movements(http: Any, server: Server, count: int) -> str:
    """A merchant with `count` movements: one real (a charge paid through the seed route),
    cloned in SQL (SQLite; their balances running on) and the balance made their sum."""
    token, _ = await merchant(http)
    payment = await create_payment(http, token)
    body, headers = confirmation(payment)
    answer = await http.post("/payments/pix/confirmation", content=body, headers=headers)
    answer.raise_for_status()
    await asyncio.to_thread(_clone_movement, server, payment["value"], count - 1)
    return token


def _clone_movement(server: Server, value: str, copies: int) -> None:
    with sqlite3.connect(server.db_path, timeout=30) as db:
        (movement, account), *_ = db.execute(
            "SELECT id, account_id FROM movement ORDER BY id DESC LIMIT 1"
        ).fetchall()
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO movement (account_id, kind, amount_cents, balance_after_cents, "
            "reference, counterpart, description, created_at) SELECT m.account_id, m.kind, "
            "m.amount_cents, m.balance_after_cents + m.amount_cents * n.i, m.reference, "
            "m.counterpart, m.description, m.created_at FROM movement m, n WHERE m.id = ?",
            (copies, movement),
        )
        db.execute(
            "UPDATE account SET balance_cents = (SELECT sum(amount_cents) FROM movement "
            "WHERE account_id = ?) WHERE id = ?",
            (account, account),
        )


async def _csv(ctx: Context, server: Server, token: str) -> Row:
    baseline = server.rss_bytes()
    peak, streaming = baseline, True

    async def sample() -> None:
        nonlocal peak
        while streaming:
            peak = max(peak, server.rss_bytes())
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    lines, first_byte = 0, None
    meter = CpuMeter(server)
    started = time.perf_counter()
    with ctx.profiler.phase("movements CSV", server.worker_pids()):
        try:
            async with http_client(server.url, 1) as http:
                headers = {"Authorization": f"Bearer {token}"}
                async with (
                    asyncio.timeout(CSV_TIMEOUT),
                    http.stream("GET", "/accounts/me/movements.csv", headers=headers) as answer,
                ):
                    answer.raise_for_status()
                    async for chunk in answer.aiter_bytes():
                        first_byte = first_byte or time.perf_counter() - started
                        lines += chunk.count(b"\n")
        finally:
            seconds = time.perf_counter() - started
            streaming = False
            await sampler
    share = meter.stop()
    rows = lines - 1  # the header
    rate, growth = rows / seconds, (peak - baseline) / MB
    return Row(
        f"8. CSV of {rows:,} movements, GET /accounts/me/movements.csv",
        f"{rate:,.0f} rows/s ({seconds:.1f} s), peak RSS +{growth:.0f} MB",
        target=f"≥ {CSV_RATE:,.0f} rows/s, ≤ {CSV_MB:.0f} MB",
        ok=rate >= CSV_RATE and growth <= CSV_MB,
        notes=f"first byte after {(first_byte or 0) * 1000:.0f} ms; server VmRSS sampled "
        f"every 10 ms ({baseline / MB:.0f} MB before); one charge's credit, cloned in SQL; "
        f"{share.server / max(rows, 1) * 1e6:.1f} µs server CPU per row; "
        f"{share.describe()}",
    )
