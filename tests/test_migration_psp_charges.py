"""Migration 0008 on SQLite and PostgreSQL: the payment's txid holds an API Pix txid (35)
and keeps its constraints; a connection stored before it is not a sandbox one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from pixweb import db
from pixweb.config import tortoise_config
from pixweb.models import Merchant, Payment, PspConnection
from pixweb.services.clock import utcnow
from tests.test_migrations import database_url  # noqa: F401 (fixture: sqlite and postgres)


async def _payment(merchant: Merchant, txid: str, key: str | None = None) -> Payment:
    now = utcnow()
    return await Payment.create(
        merchant=merchant,
        amount_cents=100,
        txid=txid,
        brcode="x",
        created_at=now,
        expires_at=now + timedelta(hours=1),
        idempotency_key=key,
    )


async def _indexes(table: str) -> set[tuple[str, ...]]:
    """The column tuples of the table's indexes (unique ones included)."""
    connection = get_connection("default")
    if connection.capabilities.dialect == "sqlite":
        found = set()
        for row in await connection.execute_query_dict(f'PRAGMA index_list("{table}")'):
            columns = await connection.execute_query_dict(f'PRAGMA index_info("{row["name"]}")')
            found.add(tuple(c["name"] for c in columns))
        return found
    rows = await connection.execute_query_dict(
        "SELECT indexdef FROM pg_indexes WHERE tablename = $1", [table]
    )
    return {
        tuple(c.strip().strip('"') for c in r["indexdef"].rpartition("(")[2][:-1].split(","))
        for r in rows
    }


async def test_the_txid_takes_35_characters_and_keeps_its_constraints(
    database_url: str,  # noqa: F811
) -> None:
    await db.open_database(database_url)
    try:
        apps = tortoise_config(database_url)["apps"]
        connection = get_connection("default")
        before = [MigrationTarget(app_label="models", name="0007_reconcile")]
        await MigrationExecutor(connection, apps).migrate(before)
        await connection.execute_query(
            'INSERT INTO "merchant" ("id", "name", "email", "password_hash", "city", '
            '"pix_key", "pix_key_type", "created_at", "session_version") VALUES (1, \'Loja\', '
            "'a@b.co', 'x', 'Rio', 'a@b.co', 'email', '2025-01-01 00:00:00+00:00', 0)"
        )
        await connection.execute_query(
            'INSERT INTO "psp_connection" ("merchant_id", "base_url", "token_url", "client_id", '
            '"client_secret", "certificate_pem", "private_key_pem", "certificate_subject", '
            '"certificate_issuer", "certificate_not_after", "chave", "webhook_token_hash", '
            '"webhook_url", "revision", "connected_at") VALUES (1, \'https://psp\', '
            "'https://psp/oauth/token', 'id', 's', 'c', 'k', 'CN=x', 'CN=y', "
            "'2030-01-01 00:00:00+00:00', 'a@b.co', 'h', 'u', 1, '2025-01-01 00:00:00+00:00')"
        )
        await db.apply_migrations(database_url)

        assert (await PspConnection.get(merchant_id=1)).sandbox is False
        merchant = await Merchant.get(id=1)
        long_txid = "T" * 35
        await _payment(merchant, long_txid, key="k1")
        assert (await Payment.get(txid=long_txid)).txid == long_txid
        with pytest.raises(IntegrityError):
            await _payment(merchant, long_txid)  # txid stays unique
        with pytest.raises(IntegrityError):
            await _payment(merchant, "U" * 35, key="k1")  # (merchant, idempotency key) too
        indexes = await _indexes("payment")
        assert ("txid",) in indexes
        assert ("merchant_id", "idempotency_key") in indexes
        assert ("merchant_id", "created_at") in indexes
    finally:
        await Tortoise.close_connections()
