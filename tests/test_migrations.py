"""The migrations in migrations/ build the models' schema on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.context import get_current_context
from tortoise.migrations.autodetector import MigrationAutodetector

from pixweb import db
from pixweb.config import tortoise_config
from pixweb.models import Account, Merchant, Payment
from tests.support import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'fresh.sqlite3'}"
        return
    url, drop = await fresh_postgres_database()
    try:
        yield url
    finally:
        await drop()


async def test_migrations_apply_to_a_fresh_database_and_match_the_models(database_url: str) -> None:
    await db.open_database(database_url)
    try:
        await db.apply_migrations(database_url)
        await db.apply_migrations(database_url)  # a second run is a no-op
        tables = {model._meta.db_table for model in (Merchant, Payment)}
        for table in tables:
            # The table exists and is queryable with the model's columns.
            await get_connection("default").execute_query(f'SELECT * FROM "{table}" LIMIT 1')
        merchant = await Merchant.create(
            name="Loja",
            email="a@b.co",
            password_hash="x",
            city="Rio",
            pix_key="a@b.co",
            pix_key_type="email",
        )
        assert await Merchant.filter(id=merchant.id).exists()

        context = get_current_context()
        assert context is not None and context.apps is not None
        apps = tortoise_config(database_url)["apps"]
        pending = await MigrationAutodetector(context.apps, apps).changes()
        assert pending == [], "models changed without a migration: run makemigrations"
    finally:
        await Tortoise.close_connections()


async def test_upgrading_a_database_with_data_keeps_and_completes_it(database_url: str) -> None:
    """A merchant registered before accounts existed gets an account and a session version."""
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    await db.open_database(database_url)
    try:
        apps = tortoise_config(database_url)["apps"]
        connection = get_connection("default")
        first = [MigrationTarget(app_label="models", name="0001_initial")]
        await MigrationExecutor(connection, apps).migrate(first)
        await connection.execute_query(
            'INSERT INTO "merchant" ("name", "email", "password_hash", "city", "pix_key", '
            '"pix_key_type", "created_at") VALUES '
            "('Loja Antiga', 'antiga@example.com', 'x', 'Rio', 'antiga@example.com', 'email', "
            "'2025-01-01 00:00:00+00:00')"
        )
        await db.apply_migrations(database_url)
        merchant = await Merchant.get(email="antiga@example.com")
        assert merchant.session_version == 0
        account = await Account.get(merchant_id=merchant.id)
        assert account.balance_cents == 0
    finally:
        await Tortoise.close_connections()
