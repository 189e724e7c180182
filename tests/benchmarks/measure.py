"""Where the CPU went during a phase: the server, this client, and everything else on the machine.

The machine is shared (2 cores): other processes' CPU during a phase is reported beside
each result, because it changes the numbers.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from tests.benchmarks.servers import CLOCK_TICKS, Server

CORES = os.cpu_count() or 1


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (all cores) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS  # user..steal; guest is inside user


def client_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Process(Protocol):
    def cpu_seconds(self) -> float: ...


@dataclass
class CpuShare:
    seconds: float
    server: float  # CPU seconds
    client: float
    other: float
    psp: float | None = None  # the lean PSP's, when it served during the phase

    def per_request_ms(self, requests: int) -> tuple[float, float]:
        return self.server / requests * 1000, self.client / requests * 1000

    def cores_busy(self) -> float:
        """How many CPUs' worth every party kept busy on average."""
        used = self.server + self.client + self.other + (self.psp or 0.0)
        return used / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        def pct(cpu: float) -> str:
            return f"{cpu / self.seconds * 100:.0f}%" if self.seconds else "?"

        psp = f", lean PSP {pct(self.psp)}" if self.psp is not None else ""
        return (
            f"CPU (100% = 1 core): server {pct(self.server)}, client {pct(self.client)}{psp}, "
            f"other processes {pct(self.other)}"
        )


class CpuMeter:
    """Start at construction, `stop()` for the share of each party."""

    def __init__(self, server: Server | None, psp: Process | None = None) -> None:
        self.server = server
        self.psp = psp
        self.psp_cpu = psp.cpu_seconds() if psp else 0.0
        self.started = time.perf_counter()
        self.machine = machine_busy_seconds()
        self.client = client_cpu_seconds()
        self.server_cpu = server.cpu_seconds() if server else 0.0

    def stop(self) -> CpuShare:
        seconds = time.perf_counter() - self.started
        machine = machine_busy_seconds() - self.machine
        client = client_cpu_seconds() - self.client
        server = (self.server.cpu_seconds() - self.server_cpu) if self.server else 0.0
        psp = (self.psp.cpu_seconds() - self.psp_cpu) if self.psp else None
        other = max(machine - client - server - (psp or 0.0), 0.0)
        return CpuShare(seconds, server, client, other, psp)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _spin(seconds: float) -> int:
    """Pure-Python work for `seconds`: how many loops one process gets done."""
    loops, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10_000):
            loops += 1
    return loops


def parallel_ceiling(seconds: float = 2.0) -> float:
    """How much work two CPU-bound processes get done at once, over one alone: 2.0 on two
    real cores, less when the machine's "cores" share a physical one or a host. No set of
    processes (two workers, PostgreSQL, Redis and the load generator) scales past it."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        one = pool.apply(_spin, (seconds,))
        two = sum(pool.map(_spin, [seconds, seconds]))
    return two / one


def machine_header() -> list[str]:
    return [
        f"- machine: {cpu_model()}, {CORES} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average at start {load_average()}",
    ]
