"""pixweb's benchmark suite: `.venv/bin/python -m tests.benchmarks.bench [-o PATH]`.

Starts its own servers on free loopback ports (SQLite in a temporary folder; temporary
PostgreSQL databases, dropped after), drives them, always stops them, and prints one
markdown table, also written to bench-results.md (or PATH). See README.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.benchmarks import (
    scenarios_batch,
    scenarios_floor,
    scenarios_http,
    scenarios_rush,
    scenarios_webhooks,
    scenarios_ws,
)
from tests.benchmarks.context import QUICK, Context, Sizes
from tests.benchmarks.measure import CORES, machine_busy_seconds
from tests.benchmarks.profiling import Profiler
from tests.benchmarks.report import Row, document
from tests.benchmarks.servers import ROOT, require_loopback

TOTAL_TIMEOUT = 25 * 60.0  # the whole run; a normal one takes about 15 min
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
SCENARIOS = "1,2,3,4,5,6,7,8,9"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "bench-results.md")
    parser.add_argument("--quick", action="store_true", help="about a tenth of the sizes")
    parser.add_argument("--only", default=SCENARIOS, help="scenario numbers, e.g. 2,3,4")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also profile the server (py-spy; tracemalloc for the sockets): numbers inflated",
    )
    parser.add_argument("--open-concurrency", type=int, default=200, metavar="N")
    parser.add_argument(
        "--storm-concurrency",
        type=int,
        default=1000,
        metavar="N",
        help="handshakes in flight at once in the reconnect storm (scenario 2)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PIXWEB_BENCH_DATABASE_URL", DEFAULT_POSTGRES),
        help="admin URL where temporary databases are created (loopback only)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("PIXWEB_BENCH_REDIS_URL", DEFAULT_REDIS)
    )
    return parser.parse_args(argv)


def code_version() -> str:
    """The commit measured, and whether the working tree differs from it."""

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "pixweb", "templates").splitlines()
    dirty = f", plus uncommitted changes in {len(changed)} app files" if changed else ""
    return f"code measured: git {head}{dirty}"


def raise_file_limit(sizes: Sizes) -> str:
    """Soft nofile limit up to the hard one (servers started later inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    needed = max(sizes.checkpoints[2] + 3 * sizes.watched, 2 * sizes.pages) + 1000
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"nofile hard limit {hard} < {needed} sockets this run holds")
    return f"open-files limit raised from {soft} to {hard} (client and servers)"


def say(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


async def guarded(name: str, rows: list[Row], work: Callable[[], Awaitable[Any]]) -> Any:
    """Run one group of scenarios; a failure becomes a row instead of ending the run."""
    say(f"{name} ...")
    started = time.perf_counter()
    try:
        return await work()
    except Exception as exc:
        traceback.print_exc()
        rows.append(Row(f"{name}", f"failed: {type(exc).__name__}", notes=str(exc)[:300]))
        return None
    finally:
        say(f"{name}: {time.perf_counter() - started:.0f} s")


async def run(args: argparse.Namespace, workdir: Path) -> tuple[list[Row], Profiler]:
    sizes = QUICK if args.quick else Sizes()
    profiler = Profiler(args.profile)
    ctx = Context(
        workdir=workdir,
        sizes=sizes,
        profiler=profiler,
        profile_dir=args.profile,
        open_concurrency=args.open_concurrency,
        storm_concurrency=args.storm_concurrency,
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
    )
    wanted = set(args.only.split(","))
    rows: list[Row] = []
    failures: list[Row] = []
    if wanted & {"1", "4", "5"}:  # first: pixweb's rows read its numbers
        await guarded("floor app", failures, lambda: scenarios_floor.floor(ctx, wanted))
    groups: list[tuple[set[str], str, Callable[[], Awaitable[Any]]]] = [
        ({"1", "5"}, "scenarios 1 and 5", lambda: scenarios_ws.sockets(ctx, wanted)),
        ({"2", "3"}, "scenarios 2 and 3", lambda: scenarios_rush.storm_and_rush(ctx, wanted)),
        ({"4", "9"}, "scenario 4", lambda: scenarios_http.create(ctx)),
        ({"9"}, "scenario 9", lambda: scenarios_http.workers(ctx)),
        ({"6", "8"}, "scenarios 6 and 8", lambda: scenarios_batch.reconcile_and_csv(ctx, wanted)),
        ({"7"}, "scenario 7", lambda: scenarios_webhooks.deliveries(ctx)),
    ]
    for numbers, name, work in groups:
        if wanted & numbers:
            found = await guarded(name, failures, work)
            if isinstance(found, tuple):  # scenario 4's rows, and its static run for 9
                found = found[0] + ([found[1]] if "9" in wanted else [])
            rows += [row for row in found or [] if row.scenario.split(".")[0] in wanted]
    rows.sort(key=lambda row: int(row.scenario.split(".")[0]))
    return rows + failures, profiler


def _own_cpu_seconds() -> float:
    """This process and its children (the servers, once waited for: workers included)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _event_loop_runner() -> Callable[[Any], Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of pixweb on Linux
        return asyncio.run
    return uvloop.run


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_loopback(args.postgres_url)
    require_loopback(args.redis_url)
    notes = [code_version(), raise_file_limit(QUICK if args.quick else Sizes())]
    notes.append(
        "servers: `pixweb serve` with PIXWEB_ENV=production (JSON request log to a file), "
        "fixed secrets, fresh SQLite files or temporary PostgreSQL databases"
    )
    if args.quick:
        notes.append("**--quick run: reduced sizes, not comparable with the targets**")
    if args.profile:
        notes.append("**profiled run (py-spy, tracemalloc): numbers inflated by the profilers**")
    started, busy, own = time.perf_counter(), machine_busy_seconds(), _own_cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="pixweb-bench-") as workdir:

        async def bounded() -> tuple[list[Row], Profiler]:
            async with asyncio.timeout(TOTAL_TIMEOUT):
                return await run(args, Path(workdir))

        rows, profiler = _event_loop_runner()(bounded())
    wall = time.perf_counter() - started
    others = machine_busy_seconds() - busy - (_own_cpu_seconds() - own)
    notes.append(
        f"other processes on the machine used {max(others, 0) / wall * 100:.0f}% of one core "
        f"on average during the run (the machine has {CORES * 100}%)"
    )
    text = document(rows, wall_seconds=wall, notes=notes)
    sys.stdout.write(text)
    args.output.write_text(text)
    say(f"written to {args.output}")
    if args.profile:
        hotspots = profiler.summary()
        (args.profile / "hotspots.md").write_text(hotspots + "\n")
        sys.stdout.write(f"\n## Profiles ({args.profile})\n\n{hotspots}\n")


if __name__ == "__main__":
    main()
