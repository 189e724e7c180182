"""`python -m tests.benchmarks.peak_rss OUT ARGS...`: run `pixweb ARGS...` and write to OUT
its RSS once the modules the command uses are imported (the baseline) and its peak (VmHWM)
at the end, as JSON: what the command's work itself grew the process by."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    # What a pass imports lazily: loaded before the baseline, so not counted as its growth.
    import pixweb.broker.memory
    import pixweb.psp.client
    import pixweb.services.psp_clients
    import pixweb.services.reconcile  # noqa: F401
    from pixweb.cli import main as cli

    baseline = status_kb("VmRSS")
    try:
        cli.main(args=args, prog_name="pixweb")
    finally:
        out.write_text(json.dumps({"baseline_kb": baseline, "peak_kb": status_kb("VmHWM")}))


if __name__ == "__main__":
    main()
