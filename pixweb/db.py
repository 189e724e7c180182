"""Database lifecycle: Tortoise init/close around serving, and applying migrations."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor

from pixweb.config import tortoise_config


def _ensure_sqlite_folder(database_url: str) -> None:
    # SQLite creates the file but not its folder (instance/ on a fresh clone).
    if database_url.startswith("sqlite://") and ":memory:" not in database_url:
        path = database_url.removeprefix("sqlite://").partition("?")[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)


async def open_database(database_url: str) -> None:
    """Initialise Tortoise for this process (global context: requests run in other tasks)."""
    _ensure_sqlite_folder(database_url)
    # Tortoise caches INSERT statements per (connection name, table), not per dialect:
    # re-initialising one process on another database would reuse SQLite's `?` on
    # PostgreSQL. Start every initialisation from an empty cache.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def apply_migrations(database_url: str) -> None:
    """Bring the schema up to the newest migration on an open database."""
    apps = tortoise_config(database_url)["apps"]
    await MigrationExecutor(get_connection("default"), apps).migrate()


async def close_database() -> None:
    """Close every connection of this process."""
    await Tortoise.close_connections()
