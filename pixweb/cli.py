"""The `pixweb` command: run, serve, migrate, merchant, brcode."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from pixweb import db
from pixweb.config import ConfigError, load_config
from pixweb.errors import PixwebError
from pixweb.pix import brcode

T = TypeVar("T")
DEMO_EMAIL = "demo@pixweb.local"


@click.group()
def main() -> None:
    """pixweb: self-hosted PIX payment gateway."""


def _database_url() -> str:
    try:
        return load_config().database_url
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _with_database(work: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        await db.open_database(_database_url())
        try:
            return await work()
        finally:
            await db.close_database()

    return asyncio.run(runner())


@main.command()
def migrate() -> None:
    """Apply the database migrations."""
    url = _database_url()
    _with_database(lambda: db.apply_migrations(url))
    click.echo("migrations applied")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Development server: creates a demo merchant when there is none."""
    if load_config().production:
        raise click.ClickException("`pixweb run` is for development; use `pixweb serve`")
    _with_database(_ensure_demo_merchant)
    _serve(host, port, workers=1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve with hypercorn (what production runs)."""
    _serve(host, port, workers=workers)


def _serve(host: str, port: int, *, workers: int) -> None:
    from pixweb import serving

    try:
        config = load_config()  # fail fast, before binding, on a bad configuration
        serving.check_workers(config, workers)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pixweb listening on http://{host}:{port} ({workers} worker(s))")
    serving.serve(config, host, port, workers=workers)


async def _ensure_demo_merchant() -> None:
    from pixweb.models import Merchant
    from pixweb.services import merchants

    if await Merchant.exists():
        return
    password = secrets.token_urlsafe(12)
    await merchants.register_merchant(
        name="Loja Demonstração",
        email=DEMO_EMAIL,
        password=password,
        city="São Paulo",
        pix_key="123e4567-e89b-42d3-a456-426614174000",
    )
    click.echo(f"demo merchant created: e-mail {DEMO_EMAIL}  password {password}")


@main.group()
def merchant() -> None:
    """Manage merchants."""


@merchant.command("create")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True)
@click.option("--city", required=True)
@click.option("--pix-key", required=True)
def merchant_create(**fields: Any) -> None:
    """Create a merchant account."""
    from pixweb.services import merchants

    try:
        created = _with_database(lambda: merchants.register_merchant(**fields))
    except PixwebError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"merchant {created.id} created: {created.email} ({created.pix_key_type} key)")


@main.group("brcode")
def brcode_group() -> None:
    """Inspect BR Codes (Pix Copia e Cola)."""


@brcode_group.command("decode")
@click.argument("code")
def brcode_decode(code: str) -> None:
    """Decode and validate CODE; exit 1 when it has errors."""
    decoded = brcode.decode(code)
    click.echo(json.dumps(decoded.to_dict(), indent=2, ensure_ascii=False))
    sys.exit(0 if decoded.valid else 1)


if __name__ == "__main__":
    main()
