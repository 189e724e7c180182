"""What every scenario gets: where to work, how big to go, services, the profiler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.profiling import Profiler


@dataclass(frozen=True)
class Sizes:
    requests: int = 2000  # per HTTP load run
    warmup: int = 100
    watched: int = 200  # payments watched by their own socket, per measurement
    idle_payments: int = 200  # the payments the idle sockets (up to the middle checkpoint) watch
    checkpoints: tuple[int, int, int] = (1000, 5000, 10000)  # idle sockets; last-middle = crowd
    plain_sockets: int = 1000  # the diagnostic run without permessage-deflate
    qr_fresh: int = 100  # server-side first vs cached GET
    qr_payloads: int = 200  # in-process first renders
    qr_cached_calls: int = 20000  # in-process cached calls

    @property
    def crowd(self) -> int:
        return self.checkpoints[2] - self.checkpoints[1]


QUICK = Sizes(
    requests=300,
    warmup=30,
    watched=20,
    idle_payments=20,
    checkpoints=(100, 500, 1000),
    plain_sockets=100,
    qr_fresh=20,
    qr_payloads=30,
    qr_cached_calls=2000,
)


@dataclass
class Context:
    workdir: Path
    sizes: Sizes
    profiler: Profiler
    profile_dir: Path | None
    open_concurrency: int
    postgres_url: str
    redis_url: str
