"""What every scenario gets: where to work, how big to go, services, the profiler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks.profiling import Profiler


@dataclass(frozen=True)
class Sizes:
    requests: int = 2000  # per HTTP load run
    warmup: int = 100
    watched: int = 200  # payments watched by their own socket, per measurement
    idle_payments: int = 200  # the payments the idle sockets (up to the middle checkpoint) watch
    checkpoints: tuple[int, int, int] = (1000, 5000, 10000)  # idle sockets; last-middle = crowd
    pages: int = 5000  # payer pages on their own charge (reconnect storm, checkout rush)
    rush_confirmations: int = 1000  # through the webhook intake, at rush_rate
    rush_rate: float = 200.0  # confirmations per second
    storm_flow_rate: float = 50.0  # confirmations per second while the storm lasts
    received_pix: int = 100_000  # listed by the lean PSP's GET /pix (reconciliation)
    csv_movements: int = 100_000
    webhook_events: int = 10_000
    webhook_endpoints: int = 10

    @property
    def crowd(self) -> int:
        return self.checkpoints[2] - self.checkpoints[1]


QUICK = Sizes(
    requests=300,
    warmup=30,
    watched=20,
    idle_payments=20,
    checkpoints=(100, 500, 1000),
    pages=500,
    rush_confirmations=100,
    received_pix=5000,
    csv_movements=10_000,
    webhook_events=1000,
)


@dataclass
class Context:
    workdir: Path
    sizes: Sizes
    profiler: Profiler
    profile_dir: Path | None
    open_concurrency: int
    storm_concurrency: int
    postgres_url: str
    redis_url: str
    # The floor app's numbers, measured first and read by pixweb's rows for their ratios.
    floor: dict[str, float] = field(default_factory=dict)
