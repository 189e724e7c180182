"""Fixtures: an app on a fresh in-memory database, its client, merchants and tokens."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from quart import Quart
from quart.typing import TestClientProtocol
from tortoise.models import Model

from pixweb import db, models
from pixweb.app import create_app
from pixweb.config import Config
from pixweb.deps import BROKER_KEY, CONFIG_KEY
from pixweb.models import Merchant
from pixweb.services import merchants
from tests.support import PatientTestApp, fresh_postgres_database, signed

# Every `app.test_app()` of the suite, the fixture's and the tests' own.
Quart.test_app_class = PatientTestApp

PASSWORD = "correct horse battery"
# The fake mTLS PSP (fixtures `pki`, `psp`, `connect`), for tests/psp and the connection's tests.
pytest_plugins = ["tests.psp_fake"]


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Settings of the app under test; a test module may override this fixture."""
    return {}


# With PIXWEB_TEST_DATABASE_URL set (as CI does) every test using the app runs twice:
# on in-memory SQLite and on PostgreSQL.
DATABASES = ["sqlite", "postgres"] if os.environ.get("PIXWEB_TEST_DATABASE_URL") else ["sqlite"]
TABLES = [
    model._meta.db_table
    for model in vars(models).values()
    if isinstance(model, type) and issubclass(model, Model) and model is not Model
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """One fresh PostgreSQL database for the session, migrated once."""
    url, drop = await fresh_postgres_database()
    await db.open_database(url)
    try:
        await db.apply_migrations(url)
    finally:
        await db.close_database()
    try:
        yield url
    finally:
        await drop()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite://:memory:"
    return str(request.getfixturevalue("postgres_url"))


async def _empty_tables(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def app(app_overrides: dict[str, Any], database_url: str) -> AsyncIterator[Quart]:
    in_memory = database_url.startswith("sqlite")
    if not in_memory:
        await _empty_tables(database_url)  # each test starts from empty tables
    settings = {
        "testing": True,
        "database_url": database_url,
        "auto_migrate": in_memory,
        **app_overrides,
    }
    application = create_app(settings)
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


@pytest.fixture
def config(app: Quart) -> Config:
    config: Config = app.extensions[CONFIG_KEY]
    return config


@pytest.fixture
def broker(app: Quart) -> Any:
    return app.extensions[BROKER_KEY]


async def make_merchant(email: str = "loja@example.com", **fields: Any) -> Merchant:
    """Create a merchant through the service, with test defaults."""
    values = {
        "name": "Padaria São João",
        "email": email,
        "password": PASSWORD,
        "city": "São Paulo",
        "pix_key": "loja@example.com",
        **fields,
    }
    return await merchants.register_merchant(**values)


@pytest.fixture
async def merchant(app: Quart) -> Merchant:
    return await make_merchant()


def bearer(merchant: Merchant, config: Config) -> dict[str, str]:
    token = merchants.issue_token(merchant, secret=config.secret_key, ttl_seconds=300)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth(merchant: Merchant, config: Config) -> dict[str, str]:
    return bearer(merchant, config)


@pytest.fixture
def sign(config: Config) -> Any:
    """Sign a confirmation payload with the app's webhook secret: (body, headers)."""
    return lambda payload: signed(payload, config.webhook_secret)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at production cost takes ~0.3 s a hash: tests use the minimum parameters.

    The hashing and verifying code paths stay the real ones; only the cost differs.
    """
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(merchants, "_hasher", cheap)
    monkeypatch.setattr(merchants, "_DUMMY_HASH", cheap.hash("pixweb-timing-equalizer"))
