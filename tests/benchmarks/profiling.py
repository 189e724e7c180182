"""Optional profiles of the server during a phase (`bench --profile DIR`).

CPU: py-spy (`pip install py-spy`) samples the serving processes while a phase runs, keeping
only the samples of the thread holding the GIL (`--gil`: busy Python time, idle waits left
out), into collapsed stacks (`DIR/<phase>-<pid>.txt`, flamegraph-ready); `summary()` turns
them into the hottest functions (self and inclusive) and the share of each library.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PY_SPY_RATE = 100
STOP_TIMEOUT = 60.0


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


class Profiler:
    """Records named phases into `folder`; a no-op when `folder` is None."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.phases: list[tuple[str, list[Path]]] = []
        self.binary = py_spy() if folder else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            if self.binary is None:
                raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")

    @contextmanager
    def phase(self, name: str, pids: list[int]) -> Any:
        if self.folder is None or self.binary is None:
            yield
            return
        recorders = []
        outputs = []
        for pid in pids:
            raw = self.folder / f"{name.replace('/', '_')}-{pid}.txt"
            command = [self.binary, "record", "--pid", str(pid), "--rate", str(PY_SPY_RATE)]
            command += ["--gil", "--format", "raw", "--output", str(raw)]
            recorders.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            outputs.append(raw)
        time.sleep(0.5)  # let py-spy attach before the phase starts
        try:
            yield
        finally:
            for recorder in recorders:
                recorder.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            for recorder in recorders:
                try:
                    recorder.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    recorder.kill()
                    recorder.wait(timeout=5)
            self.phases.append((name, [p for p in outputs if p.exists()]))

    def summary(self, top: int = 12) -> str:
        """Markdown: per phase, the hottest functions and libraries (% of sampled busy time)."""
        parts = []
        for name, files in self.phases:
            stacks = Counter[tuple[str, ...]]()
            for path in files:
                for line in path.read_text(errors="replace").splitlines():
                    frames, _, count = line.rpartition(" ")
                    if frames and count.isdigit():
                        stacks[tuple(_function(f) for f in frames.split(";"))] += int(count)
            parts.append(_phase_summary(name, stacks, top))
        return "\n\n".join(parts)


_PLUMBING = (
    *("runpy", "click/", "threading.py", "pixweb/cli.py", "pixweb/serving.py"),
    *("traced_server.py", "asyncio/runners.py", "asyncio/events.py", "uvloop"),
)


def _function(frame: str) -> str:
    """`name (path:line)` -> `name (path)`: one row per function, whatever the line."""
    head, sep, line = frame.rpartition(":")
    return f"{head})" if sep and line.rstrip(")").isdigit() else frame


def _plumbing(frame: str, count: int, total: int) -> bool:
    """Frames every sample goes through: start-up, the event loop, thread bootstrap."""
    if any(part in frame for part in _PLUMBING):
        return True
    return count / total > 0.9 and "pixweb/" not in frame  # keep the app's own frames


def _library(frame: str) -> str:
    _, _, location = frame.rpartition(" (")
    path = location.rstrip(")")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(("pixweb/", "/work")) or "/pixweb/" in path:
        return "pixweb (app)"
    if "lib/python3" in path:
        module = path.rsplit("lib/python3", 1)[1].split("/", 2)[1]
        return f"stdlib {module.removesuffix('.py')}"
    return path.split("/", 1)[0] or "?"


def _phase_summary(name: str, stacks: Counter[tuple[str, ...]], top: int) -> str:
    total = sum(stacks.values())
    if not total:
        return f"### {name}\n\n(no samples)"
    leaf, inclusive, libraries = Counter[str](), Counter[str](), Counter[str]()
    for frames, count in stacks.items():
        leaf[frames[-1]] += count
        libraries[_library(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count

    def rows(counter: Counter[str], skip: bool = False) -> list[str]:
        kept = [(f, c) for f, c in counter.most_common() if not (skip and _plumbing(f, c, total))]
        return [f"| {c / total * 100:5.1f}% | `{f}` |" for f, c in kept[:top]]

    lines = [f"### {name} ({total} samples holding the GIL, at {PY_SPY_RATE} Hz)", ""]
    lines += ["| self | function |", "|---:|---|", *rows(leaf), ""]
    lines += ["| inclusive | function (event loop, start-up frames left out) |", "|---:|---|"]
    lines += [*rows(inclusive, skip=True), ""]
    lines += ["| self | library |", "|---:|---|", *rows(libraries)]
    return "\n".join(lines)
