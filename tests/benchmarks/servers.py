"""The servers a benchmark drives: `pixweb serve` subprocesses, temporary PostgreSQL databases.

Every server is started by `Server.start()` (migrate, serve on a free loopback port, wait for
/healthz) and always stopped by `Server.stop()` (SIGTERM to its process group, SIGKILL after
a timeout): both are tests/server.py's. Only loopback addresses are accepted for PostgreSQL
and Redis.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests import server as process
from tests.server import CLOCK_TICKS as CLOCK_TICKS  # re-exported for measure.py
from tests.server import ROOT as ROOT  # re-exported for bench.py

SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789-0123456789"
SERVICE_TIMEOUT = 3.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Loopback PSPs and webhook receivers allowed; the background jobs that are not measured off.
BENCH_ENV = {"PIXWEB_ALLOW_PRIVATE_URLS": "1", "PIXWEB_RECONCILE_SECONDS": "0"}
FLOOR_MODULE = "tests.benchmarks.floor_app"  # the stack alone, no pixweb (floor_app.py)


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing a non-loopback service address: {url}")


class Server(process.Server):
    """`pixweb serve --workers N` as production runs it, in `workdir/name`.

    The process is tests/server.py's (the e2e tests start theirs there too); this only picks
    the benchmark's configuration: production (no access log on stdout), the broker, BENCH_ENV
    and `env`, and another module when asked: the floor app (not pixweb: nothing to migrate)
    or trusting_server.py.
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        workers: int = 1,
        database_url: str | None = None,
        broker_url: str = "memory://",
        module: str = "pixweb.cli",
        env: dict[str, str] | None = None,
    ) -> None:
        env = {"PIXWEB_BROKER_URL": broker_url, **BENCH_ENV, **(env or {})}
        super().__init__(
            workdir / name,
            workers=workers,
            environment="production",
            database_url=database_url,
            env=env,
            module=module,
            migrate=module != FLOOR_MODULE,
            secret_key=SECRET_KEY,
            webhook_secret=WEBHOOK_SECRET,
        )
        self.name = name


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
