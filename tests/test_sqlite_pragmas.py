"""SQLite runs in WAL mode with one fsync per commit and a busy timeout (issue 13)."""

from __future__ import annotations

from pathlib import Path

from tortoise.connection import get_connection

from pixweb import db


async def _pragma(name: str) -> object:
    rows = await get_connection("default").execute_query_dict(f"PRAGMA {name}")
    return next(iter(rows[0].values()))


async def test_file_database_is_wal_synchronous_full_with_busy_timeout(tmp_path: Path) -> None:
    await db.open_database(f"sqlite://{tmp_path}/nested/pixweb.sqlite3")
    try:
        await db.apply_migrations(f"sqlite://{tmp_path}/nested/pixweb.sqlite3")
        assert await _pragma("journal_mode") == "wal"
        assert await _pragma("synchronous") == 2  # FULL
        assert await _pragma("busy_timeout") == 10000
    finally:
        await db.close_database()


async def test_a_url_parameter_wins_over_the_default(tmp_path: Path) -> None:
    await db.open_database(f"sqlite://{tmp_path}/pixweb.sqlite3?synchronous=NORMAL")
    try:
        assert await _pragma("synchronous") == 1  # NORMAL, as the URL asked
        assert await _pragma("journal_mode") == "wal"
    finally:
        await db.close_database()
