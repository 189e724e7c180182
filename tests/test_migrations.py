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
from pixweb.models import Account, Merchant, Payment, PixOutcome, PixSource, ReceivedPix
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


async def test_upgrading_records_each_bank_credit_as_a_received_pix(database_url: str) -> None:
    """Charges the bank confirmed before 0004 get their received Pix (matched, keyed by the
    e2eid or the txid), linked to their credit; a charge paid from a balance gets none."""
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    await db.open_database(database_url)
    try:
        apps = tortoise_config(database_url)["apps"]
        connection = get_connection("default")
        before = [MigrationTarget(app_label="models", name="0003_session_version")]
        await MigrationExecutor(connection, apps).migrate(before)
        at = "'2025-01-01 12:00:00+00:00'"
        for merchant_id, email in ((1, "loja@example.com"), (2, "outra@example.com")):
            await connection.execute_query(
                'INSERT INTO "merchant" ("id", "name", "email", "password_hash", "city", '
                f'"pix_key", "pix_key_type", "created_at") VALUES ({merchant_id}, \'Loja\', '
                f"'{email}', 'x', 'Rio', '{email}', 'email', {at})"
            )
            await connection.execute_query(
                'INSERT INTO "account" ("id", "merchant_id", "balance_cents", "created_at") '
                f"VALUES ({merchant_id}, {merchant_id}, 0, {at})"
            )
        charges = {  # id: (txid, end_to_end_id)
            "00000000-0000-4000-8000-000000000001": ("A" * 25, "E12345678202401011200abcdeABCDE1"),
            "00000000-0000-4000-8000-000000000002": ("B" * 25, None),
            "00000000-0000-4000-8000-000000000003": ("C" * 25, None),  # from a balance
            "00000000-0000-4000-8000-000000000004": ("D" * 25, None),  # still pending
        }
        for n, (payment_id, (txid, e2e)) in enumerate(charges.items(), start=1):
            paid = n < 4
            e2e_value = f"'{e2e}'" if e2e else "NULL"
            await connection.execute_query(
                'INSERT INTO "payment" ("id", "merchant_id", "amount_cents", "txid", "brcode", '
                '"status", "created_at", "expires_at", "paid_at", "end_to_end_id") VALUES '
                f"('{payment_id}', 1, 1000, '{txid}', 'x', '{'paid' if paid else 'pending'}', "
                f"{at}, {at}, {at if paid else 'NULL'}, {e2e_value})"
            )
        moves = [  # account, kind, amount, reference
            (1, "pix_recebido", 1000, "000000000001"),
            (1, "pix_recebido", 1000, "000000000002"),
            (2, "deposito", 1000, None),
            (2, "pagamento", -1000, "000000000003"),
            (1, "pix_recebido", 1000, "000000000003"),
        ]
        for n, (account_id, kind, amount, ref) in enumerate(moves, start=1):
            reference = f"'payment:00000000-0000-4000-8000-{ref}'" if ref else "NULL"
            await connection.execute_query(
                'INSERT INTO "movement" ("id", "account_id", "kind", "amount_cents", '
                '"balance_after_cents", "reference", "created_at") VALUES '
                f"({n}, {account_id}, '{kind}', {amount}, 0, {reference}, {at})"
            )
        await db.apply_migrations(database_url)
        records = await ReceivedPix.all().order_by("movement_id")
        assert [(r.end_to_end_id, r.movement_id, str(r.payment_id)) for r in records] == [
            ("E12345678202401011200abcdeABCDE1", 1, "00000000-0000-4000-8000-000000000001"),
            ("txid:" + "B" * 25, 2, "00000000-0000-4000-8000-000000000002"),
        ]
        assert {(r.outcome, r.source, r.amount_cents, r.merchant_id) for r in records} == {
            (PixOutcome.MATCHED, PixSource.CONFIRMATION, 1000, 1)
        }
    finally:
        await Tortoise.close_connections()
