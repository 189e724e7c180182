"""Helpers shared by tests: optional services, signed webhook calls, SQLite's hand-offs."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from quart import Quart
from quart.testing.app import TestApp
from tortoise.connection import get_connection

from pixweb.services import webhooks

# Settings of an app under test in production: secrets strong enough for production and
# the public address links are built from.
PRODUCTION: dict[str, Any] = {
    "env": "production",
    "secret_key": "test-secret-key-not-for-production-0123456789",
    "webhook_secret": "test-webhook-secret-0123456789-0123456789",
    "public_url": "https://pix.example.com",
    "encryption_key": "B7hnaGHdD5dcNbXDNOD-SXpwuBcJO8A5CItX-trmndE=",
}


def need(what: str, env_flag: str, reason: str) -> None:
    """Skip with `reason`, or fail when `env_flag` demands `what` (as CI does)."""
    if os.environ.get(env_flag) == "1":
        pytest.fail(f"{what} required by {env_flag}=1 but unavailable: {reason}")
    pytest.skip(reason)


def sqlite_hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The calls made from now on to the thread aiosqlite runs SQLite on (each costs ~0.1 ms
    of CPU, issue 13): the list grows by one function per call (clear it to start)."""
    sqlite = get_connection("default")._connection  # its aiosqlite connection
    calls: list[Any] = []
    real = sqlite._execute

    async def counted(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr(sqlite, "_execute", counted)
    return calls


def signed(payload: Any, secret: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a bank confirmation signed with `secret`."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        webhooks.SIGNATURE_HEADER: webhooks.sign(body, secret),
    }
    return body, headers


async def fresh_postgres_database() -> tuple[str, Any]:
    """Create an empty PostgreSQL database for one test: (its URL, an async dropper).

    Skips (or fails under PIXWEB_REQUIRE_SERVICES=1) when PIXWEB_TEST_DATABASE_URL is unset
    or the server does not answer.
    """
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    url = os.environ.get("PIXWEB_TEST_DATABASE_URL")
    if not url:
        need("PostgreSQL", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_DATABASE_URL is not set")
    assert url is not None
    admin_dsn = url.replace("postgres://", "postgresql://", 1)
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        need("PostgreSQL", "PIXWEB_REQUIRE_SERVICES", f"PostgreSQL unreachable at {url}: {exc}")
    name = f"pixweb_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    parts = urlsplit(url)
    test_url = urlunsplit(parts._replace(path=f"/{name}"))

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return test_url, drop


class PatientTestApp(TestApp):
    """Quart's test lifespan with minutes, not 6 s, to start and stop.

    Quart's 6 s are missed on a loaded machine, and a missed startup leaves the app's task
    running with its database connections bound to that test's loop: every later test then
    fails at startup ("created on a different event loop"). One slow start stays one."""

    def __init__(self, app: Quart) -> None:
        super().__init__(app, startup_timeout=120, shutdown_timeout=120)
