"""The results: one markdown table (and a short header about the machine)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.benchmarks.client import LoadResult
from tests.benchmarks.measure import CpuShare, machine_header


@dataclass
class Row:
    """One line of the table: an issue-13 target (or a diagnostic beside one).

    `measured` is pixweb's number; `floor` the same measure on floor_app.py (or another
    reference the target names) and `ratio` pixweb's over it, when the target is a ratio."""

    scenario: str
    measured: str
    target: str = ""
    ok: bool | None = None
    notes: str = ""
    floor: str = ""
    ratio: str = ""

    @property
    def verdict(self) -> str:
        return {True: "✓", False: "✗", None: ""}[self.ok]


def http_row(
    scenario: str,
    result: LoadResult,
    share: CpuShare,
    *,
    target_rate: float | None = None,
    extra: str = "",
) -> Row:
    """Throughput and latency of a load run, with where the CPU went."""
    server_ms, client_ms = share.per_request_ms(result.requests)
    measured = f"{result.rate:,.0f} req/s; p50 {result.ms(50):.1f} ms, p99 {result.ms(99):.1f} ms"
    notes = [
        f"{result.requests:,} requests, {result.errors} errors",
        f"server CPU {server_ms:.2f} ms/req, client CPU {client_ms:.2f} ms/req",
        share.describe(),
    ]
    if result.first_error:
        notes.insert(1, f"first error: {result.first_error}")
    if extra:
        notes.insert(0, extra)
    return Row(
        scenario,
        measured,
        target=f"≥ {target_rate:,.0f} req/s" if target_rate else "",
        ok=(result.rate >= target_rate and not result.errors) if target_rate else None,
        notes="; ".join(notes),
    )


def skipped(scenario: str, why: str) -> Row:
    return Row(scenario, "skipped", notes=why)


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | pixweb | floor / reference | ratio | target | ✓/✗ | notes |",
        "|---|---|---|---|---|:-:|---|",
    ]
    for row in rows:
        cells = [row.scenario, row.measured, row.floor, row.ratio, row.target, row.verdict]
        cells.append(row.notes)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def document(rows: list[Row], *, wall_seconds: float, notes: list[str]) -> str:
    header = [
        "# pixweb benchmark results",
        "",
        *machine_header(),
        f"- wall time of the run: {wall_seconds:.0f} s",
        "- the load generator (one Python process on uvloop: loadgen.py's keep-alive HTTP/1.1 "
        "client for the loads and the bank's confirmations, httpx for set-up, websockets for "
        "the sockets) runs on the same 2 cores as the server and competes with it for CPU; "
        "the notes give each party's CPU share (100% = one core), other processes included",
        "- the *floor* column is the same load against floor_app.py, run in the same run: Quart "
        "on hypercorn, served as pixweb serves, with nothing of pixweb behind it; *ratio* is "
        "pixweb's over it (time: lower is better; throughput: pixweb/floor, higher is better)",
        "- the lean PSP (lean_psp.py: mTLS, answers from memory, its own process) answers the "
        "PSP calls: `PUT /cob`, OAuth, `GET /pix/{e2eid}` read-backs, `GET /pix` pages",
        *[f"- {note}" for note in notes],
        "",
        table(rows),
        "",
    ]
    return "\n".join(header)
