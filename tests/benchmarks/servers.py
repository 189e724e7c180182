"""The servers a benchmark drives: `pixweb serve` subprocesses, temporary PostgreSQL databases.

Every server is started by `Server.start()` (migrate, serve on a free loopback port, wait for
/healthz) and always stopped by `Server.stop()` (SIGTERM to its process group, SIGKILL after
a timeout). Only loopback addresses are accepted for PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
SERVICE_TIMEOUT = 3.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FLOOR_MODULE = "tests.benchmarks.floor_app"  # the stack alone, no pixweb (floor_app.py)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing a non-loopback service address: {url}")


class Server:
    """`pixweb serve --workers N` on 127.0.0.1:<free port>, in its own process group."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        workers: int = 1,
        database_url: str | None = None,
        broker_url: str = "memory://",
        traced_dir: Path | None = None,
        module: str = "pixweb.cli",
    ) -> None:
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.workers = workers
        self.database_url = database_url or f"sqlite://{self.workdir / 'bench.sqlite3'}"
        self.broker_url = broker_url
        self.traced_dir = traced_dir  # run under tracemalloc (profiling.py), one worker only
        self.module = "tests.benchmarks.traced_server" if traced_dir else module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
        env.update(
            PIXWEB_ENV="production",  # as production runs: no hypercorn access log on stdout
            PIXWEB_DATABASE_URL=self.database_url,
            PIXWEB_BROKER_URL=self.broker_url,
            PIXWEB_INSTANCE_PATH=str(self.workdir / "instance"),
            PIXWEB_SECRET_KEY=SECRET_KEY,
            PIXWEB_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PYTHONUNBUFFERED="1",
        )
        if self.traced_dir is not None:
            env["PIXWEB_BENCH_SNAPSHOT_DIR"] = str(self.traced_dir)
        return env

    def start(self) -> Server:
        self._log = self.log_path.open("ab")
        try:
            if self.module != FLOOR_MODULE:
                self._migrate()
            command = [sys.executable, "-m", self.module, "serve", "--host", "127.0.0.1"]
            command += ["--port", str(self.port), "--workers", str(self.workers)]
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env(),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the workers
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _migrate(self) -> None:
        migrated = subprocess.run(
            [sys.executable, "-m", "pixweb.cli", "migrate"],
            cwd=ROOT,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"`pixweb migrate` failed:\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} exited:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(
                        b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                    )
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server {self.name} not ready in {STARTUP_TIMEOUT}s")

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after STOP_TIMEOUT; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            group = os.getpgid(process.pid)
            os.killpg(group, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(group, signal.SIGKILL)
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

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


def redis_available(url: str) -> str | None:
    """None when Redis answers PING at `url`, else why not."""
    require_loopback(url)
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=SERVICE_TIMEOUT
        ) as sock:
            sock.settimeout(SERVICE_TIMEOUT)
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return f"Redis unreachable at {url}: {exc}"
    return None if answer.startswith(b"+PONG") else f"Redis at {url} answered {answer[:40]!r}"


class TempPostgres:
    """A fresh PostgreSQL database for one server, dropped (WITH FORCE) on exit."""

    def __init__(self, admin_url: str) -> None:
        require_loopback(admin_url)
        self.admin_dsn = admin_url.replace("postgres://", "postgresql://", 1)
        self.name = f"pixweb_bench_{uuid.uuid4().hex[:12]}"
        parts = urlsplit(admin_url)
        self.url = urlunsplit(parts._replace(scheme="postgres", path=f"/{self.name}"))

    async def create(self) -> str | None:
        """Create the database; None on success, else why it could not."""
        import asyncpg

        try:
            admin = await asyncpg.connect(self.admin_dsn, timeout=SERVICE_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return f"PostgreSQL unreachable at {self.admin_dsn}: {exc}"
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"', timeout=SERVICE_TIMEOUT * 5)
        except (TimeoutError, asyncpg.PostgresError) as exc:
            return f"cannot create a PostgreSQL database: {exc}"
        finally:
            await admin.close()
        return None

    async def drop(self) -> None:
        import asyncpg

        admin = await asyncpg.connect(self.admin_dsn, timeout=SERVICE_TIMEOUT)
        try:
            drop = f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'
            await admin.execute(drop, timeout=SERVICE_TIMEOUT * 5)
        finally:
            await admin.close()
