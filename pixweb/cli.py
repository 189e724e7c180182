"""The `pixweb` command: run, serve, migrate, merchant, reconcile, webhooks, expire, brcode."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from pixweb import db
from pixweb.config import Config, ConfigError, load_config
from pixweb.errors import PixwebError
from pixweb.pix import brcode

T = TypeVar("T")
DEMO_EMAIL = "demo@pixweb.local"
DEMO_FILE = "demo-merchant.txt"  # in the instance folder, readable by its owner only
READY_TIMEOUT = 30.0


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
    """Development server: creates a demo merchant when there is none.

    Its e-mail and password are kept in instance/demo-merchant.txt and printed once the
    server listens, after hypercorn's start-up lines, on every start: the request log
    scrolled them away when they were printed first, and only once.
    """
    try:
        config = load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if config.production:
        raise click.ClickException("`pixweb run` is for development; use `pixweb serve`")
    demo = Path(config.instance_path) / DEMO_FILE
    kept = _read_kept(demo)
    credentials, created = _with_database(lambda: _demo_merchant(kept))
    if created and credentials is not None:
        _keep(demo, credentials)
    _announce_when_listening(host, port, _banner(host, port, demo, credentials))
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


Credentials = tuple[str, str]  # e-mail, password


async def _demo_merchant(kept: Credentials | None) -> tuple[Credentials | None, bool]:
    """The demo merchant's credentials, and whether it was just made (with the first merchant).

    When merchants exist: the kept credentials if they still log in, else None.
    """
    from pixweb.errors import AuthenticationError
    from pixweb.models import Merchant
    from pixweb.services import merchants

    if await Merchant.exists():
        if kept is None:
            return None, False
        try:
            await merchants.authenticate(*kept)
        except AuthenticationError:
            return None, False
        return kept, False
    password = secrets.token_urlsafe(12)
    await merchants.register_merchant(
        name="Loja Demonstração",
        email=DEMO_EMAIL,
        password=password,
        city="São Paulo",
        pix_key="123e4567-e89b-42d3-a456-426614174000",
    )
    return (DEMO_EMAIL, password), True


def _read_kept(path: Path) -> Credentials | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    if "e-mail" not in fields or "password" not in fields:
        return None
    return fields["e-mail"], fields["password"]


def _keep(path: Path, credentials: Credentials) -> None:
    """Write the credentials for the developer, readable by the file's owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as kept:
        os.fchmod(kept.fileno(), 0o600)  # also when the file was there before, wider
        kept.write("e-mail: {}\npassword: {}\n".format(*credentials))


def _banner(host: str, port: int, path: Path, credentials: Credentials | None) -> str:
    rule = "-" * 64
    lines = [rule, f"pixweb is ready: http://{host}:{port}/"]
    if credentials is None:
        lines.append(f"demo merchant: none kept in {path} (create one: pixweb merchant create)")
    else:
        email, password = credentials
        lines += [f"demo merchant: e-mail {email}  password {password}", f"(kept in {path})"]
    return "\n".join([*lines, rule])


def _announce_when_listening(host: str, port: int, banner: str) -> None:
    """Print `banner` once the server accepts connections, after its own start-up lines."""

    def wait_then_print() -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            return
        time.sleep(0.2)  # hypercorn logs "Running on" just after it listens
        click.echo(banner)

    threading.Thread(target=wait_then_print, name="announce", daemon=True).start()


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


@main.command()
@click.option("--merchant", "email", help="Only this merchant (its e-mail).")
@click.option(
    "--since",
    help="Page from this ISO 8601 moment (UTC if no offset) instead of the checkpoint; "
    "a later one than the checkpoint leaves it where it is.",
)
def reconcile(email: str | None, since: str | None) -> None:
    """Record the Pix the merchants' PSPs list that pixweb missed (one pass, as the server's
    job does every PIXWEB_RECONCILE_SECONDS); exit 1 when a merchant's run failed."""
    from pixweb.services import reconcile as service

    start = _moment(since) if since else None
    try:
        config = load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        runs = _with_database(lambda: _reconcile(config, email, start))
    except PixwebError as exc:
        raise click.ClickException(exc.detail) from exc
    if not runs:
        click.echo("no merchant has a PSP connected")
    for run, who in runs:
        recorded = ", ".join(f"{n} {outcome}" for outcome, n in sorted(run.recorded.items()))
        until = run.reconciled_until.isoformat() if run.reconciled_until else "none"
        click.echo(
            f"{who}: {run.status}, {run.pages} page(s), recorded {sum(run.recorded.values())}"
            f"{f' ({recorded})' if recorded else ''}, {run.already_recorded} already recorded"
            f"{''.join(f', {n} skipped ({why})' for why, n in sorted(run.skipped.items()))}"
            f", checkpoint {until}{f': {run.error}' if run.error else ''}"
        )
    sys.exit(1 if any(run.status == service.RunStatus.FAILED for run, _ in runs) else 0)


@main.command()
def expire() -> None:
    """Record the expiry of every pending charge past its due time and send charge.expired,
    once each (one pass, as every server process does every few seconds)."""
    try:
        config = load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    count = _with_database(lambda: _expire(config))
    click.echo(f"{count} expired charge(s) recorded")


async def _expire(config: Config) -> int:
    from pixweb.broker import make_broker
    from pixweb.services import expiry

    broker = make_broker(config.broker_url)  # Redis: the servers' delivery workers wake up
    try:
        return await expiry.sweep(broker=broker)
    finally:
        await broker.close()


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 moment", param_hint="--since"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _reconcile(config: Config, email: str | None, since: datetime | None) -> list[Any]:
    from pixweb.broker import make_broker
    from pixweb.errors import NotFoundError
    from pixweb.models import Merchant, PspConnection
    from pixweb.netguard import UrlPolicy
    from pixweb.services import reconcile as service
    from pixweb.services.psp_clients import PspClients

    ids = None
    if email is not None:
        merchant = await Merchant.get_or_none(email=email.strip().lower())
        if merchant is None:
            raise NotFoundError(f"no merchant with the e-mail {email}")
        if not await PspConnection.exists(merchant_id=merchant.id):
            raise NotFoundError(f"{merchant.email} has no PSP connected")
        ids = [merchant.id]
    policy = UrlPolicy(require_https=config.production, allow_private=config.allow_private_urls)
    clients = PspClients(
        encryption_key=config.encryption_key,
        url_policy=policy,
        # Development's sandbox connections too (the server serving the sandbox answers).
        sandbox_secret_key=None if config.production else config.secret_key,
    )
    broker = make_broker(config.broker_url)  # Redis: the server's pages hear what is recorded
    try:
        runs = await service.reconcile_all(
            clients=clients, broker=broker, merchant_ids=ids, since=since
        )
    finally:
        await clients.aclose()
        await broker.close()
    emails = dict(
        await Merchant.filter(id__in=[run.merchant_id for run in runs]).values_list("id", "email")
    )
    return [(run, emails.get(run.merchant_id, f"merchant {run.merchant_id}")) for run in runs]


@main.group("webhooks")
def webhooks_group() -> None:
    """Merchant webhooks."""


@webhooks_group.command("deliver")
def webhooks_deliver() -> None:
    """Send every merchant-webhook delivery due now (one pass, as each server process's
    worker does continuously); exit 1 when some delivery failed for good."""
    try:
        config = load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    outcomes = _with_database(lambda: _deliver(config))
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    click.echo(f"webhook deliveries: {summary or 'none due'}")
    sys.exit(1 if outcomes.get("failed") else 0)


async def _deliver(config: Config) -> dict[str, int]:
    from pixweb import presenters
    from pixweb.app import create_app
    from pixweb.broker import make_broker
    from pixweb.netguard import UrlPolicy
    from pixweb.services.delivery import DeliveryWorker, event_body
    from pixweb.services.webhook_sender import Sender

    policy = UrlPolicy(require_https=config.production, allow_private=config.allow_private_urls)
    broker = make_broker(config.broker_url)  # Redis: the dashboards hear of each attempt
    worker = DeliveryWorker(
        sender=Sender(policy=policy, timeout=config.webhook_timeout_seconds),
        encryption_key=config.encryption_key,
        broker=broker,
        body_of=getattr(presenters, "webhook_body", event_body),
    )
    try:
        # The bodies' links are built from the app's URL map, as the server's worker does.
        async with create_app().app_context():
            return dict(await worker.run_once())
    finally:
        await worker.sender.aclose()
        await broker.close()


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
