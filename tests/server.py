"""One real `pixweb serve` in a subprocess: the only place tests and benchmarks start a server.

Used by the browser tests (tests/e2e/harness.py), the multi-process and operations tests, and the
benchmarks (tests/benchmarks/servers.py). `Server.start()` migrates (unless told not to), serves
on 127.0.0.1:<port> in a process group of its own, and waits until `ready_path` answers 200;
`stop()` sends SIGTERM to the group (SIGKILL after a timeout); `restart()` keeps the port, the
database and the log, so a browser can reconnect to the same address.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SECRET_KEY = "test-secret-key-not-for-production-0123456789"
WEBHOOK_SECRET = "test-webhook-secret-0123456789-0123456789"
ENCRYPTION_KEY = "nrhIV2oZ7Uis1ezY7svkHV1UBdELtMpvBjjioUPb-28="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`<module> serve --workers N` on 127.0.0.1:<port>, over a database that survives restarts.

    `env` adds or overrides `PIXWEB_*` variables (the caller's own `PIXWEB_*` are never
    inherited); `output` is a descriptor the server writes to instead of its log file.
    `migrate=False` is for servers that are not pixweb (the benchmarks' floor app).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        environment: str = "development",
        database_url: str | None = None,
        env: Mapping[str, str] | None = None,
        module: str = "pixweb.cli",
        migrate: bool = True,
        ready_path: str = "/healthz",
        secret_key: str = SECRET_KEY,
        webhook_secret: str = WEBHOOK_SECRET,
        output: int | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.workers = workers
        self.environment = environment
        self.db_path = workdir / "pixweb.sqlite3"
        self.database_url = database_url or f"sqlite://{self.db_path}"
        self.extra_env = dict(env or {})
        self.module = module
        self.migrate = migrate
        self.ready_path = ready_path
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.log_path = workdir / "server.log"
        self.output = output  # a descriptor the server writes to instead of its log (a pipe)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._migrated = False

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
        env.update(
            PIXWEB_ENV=self.environment,
            PIXWEB_DATABASE_URL=self.database_url,
            PIXWEB_INSTANCE_PATH=str(self.workdir / "instance"),
            PIXWEB_SECRET_KEY=self.secret_key,
            PIXWEB_WEBHOOK_SECRET=self.webhook_secret,
            PIXWEB_ENCRYPTION_KEY=ENCRYPTION_KEY,
            PIXWEB_PUBLIC_URL=self.url,
            # Every test and benchmark client signs up and logs in from 127.0.0.1.
            PIXWEB_AUTH_RATE_LIMIT="1000",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Server:
        """Migrate (the first time), serve, and wait until `ready_path` answers 200."""
        assert self.process is None, "server already running"
        self._log = self.log_path.open("ab")
        try:
            if self.migrate and not self._migrated:
                self._migrate()
            command = [sys.executable, "-m", self.module, "serve", "--host", "127.0.0.1"]
            command += ["--port", str(self.port), "--workers", str(self.workers)]
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self._env(),
                stdout=self._log if self.output is None else self.output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the workers
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "pixweb.cli", "migrate"],
            cwd=ROOT,
            env=self._env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`pixweb migrate` exited with {done.returncode}:\n{self.log_tail()}"
            )
        self._migrated = True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"server exited with {code} while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {STARTUP_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after STOP_TIMEOUT, close the log; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            except ProcessLookupError:
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start again on the same port and database."""
        self.stop()
        self.start()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it wrote and what it costs --------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not running"
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The processes that serve: the server itself, or its worker children."""
        if self.workers == 1:
            return [self.pid]
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        workers = [int(c) for c in children if _is_worker(int(c))]
        return workers or [self.pid]

    def rss_bytes(self, pid: int | None = None) -> int:
        for line in Path(f"/proc/{pid or self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the serving processes so far."""
        return sum(_cpu_seconds(pid) for pid in self.worker_pids())


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
