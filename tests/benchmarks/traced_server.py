"""`pixweb.cli` under tracemalloc, for `bench --profile`: SIGUSR1 writes allocation growth.

Each SIGUSR1 writes `$PIXWEB_BENCH_SNAPSHOT_DIR/growth-<n>.json`: the Python allocations
by source line that grew since the previous signal (the first: since start), largest first.
"""

from __future__ import annotations

import json
import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any

TOP = 40


def main() -> None:
    folder = Path(os.environ["PIXWEB_BENCH_SNAPSHOT_DIR"])
    tracemalloc.start(1)
    previous: dict[str, tuple[int, int]] = {}
    dumps = 0

    def dump(*_: Any) -> None:
        nonlocal previous, dumps
        snapshot = tracemalloc.take_snapshot()
        snapshot = snapshot.filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
        )
        current = {
            f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}": (stat.size, stat.count)
            for stat in snapshot.statistics("lineno")
        }
        growth = [
            (where, size - previous.get(where, (0, 0))[0], count - previous.get(where, (0, 0))[1])
            for where, (size, count) in current.items()
        ]
        growth.sort(key=lambda item: item[1], reverse=True)
        dumps += 1
        report = {
            "total_growth": sum(g[1] for g in growth),
            "blocks_growth": sum(g[2] for g in growth),
            "top": growth[:TOP],
        }
        partial = folder / f"growth-{dumps}.json.part"
        partial.write_text(json.dumps(report))
        partial.rename(folder / f"growth-{dumps}.json")
        previous = current

    signal.signal(signal.SIGUSR1, dump)
    from pixweb.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
