"""A merchant's connection to its own PSP: connect, read, disconnect, rotate the webhook.

Connecting proves the credentials before anything is stored, in the order a failure is
easiest to act on: the URLs (netguard), the PEMs, the TLS handshake and the token
(`step` "tls" / "token"), the token's scopes and one read call, `GET /webhook/{chave}`
("permission"), then the webhook's registration, `PUT /webhook/{chave}` ("webhook"). Only
then is the connection stored, in one transaction, its secrets encrypted.

The webhook token: the PSP calls `<public URL>/webhooks/pix/<token>`, and the intake finds
the merchant by the token's SHA-256 (`webhook_token_hash`, unique). The URL itself is stored
encrypted like the other secrets (re-registering it needs the token): a read of the database
alone gives no one a working intake URL. The token is kept across reconnections to the same
PSP and key (deliveries in flight still land) and replaced on any other change and by
`rotate_webhook_token`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb import netguard, validation
from pixweb.errors import (
    ConflictError,
    EncryptionError,
    NotFoundError,
    PixwebError,
    PspAuthError,
    PspError,
    PspNotFoundError,
    PspUnavailableError,
    UnprocessableError,
)
from pixweb.models import Merchant, PspConnection
from pixweb.psp.client import PspClient
from pixweb.psp.tls import certificate_info
from pixweb.services import sql
from pixweb.services.clock import utcnow
from pixweb.services.psp_clients import PspClients, decrypt_field, encrypt_field

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/pix/"
# What pixweb calls: charges (cob), received Pix (pix.read) and its webhook.
REQUIRED_SCOPES = ("cob.write", "cob.read", "pix.read", "webhook.write", "webhook.read")
EXPIRING_SOON = timedelta(days=30)
CONNECT_SECONDS = 60.0  # the whole proof: a PSP that hangs is named, not waited on forever
DISCONNECT_SECONDS = 10.0
NOT_CONNECTED = "no PSP is connected: connect one with PUT /merchants/me/psp"


@dataclass(frozen=True)
class Credentials:
    """What a merchant gives to connect (PEM texts; a .p12 is converted before)."""

    base_url: str
    client_id: str
    client_secret: str
    certificate_pem: str
    private_key_pem: str
    token_url: str | None = None
    server_ca_pem: str | None = None


@dataclass(frozen=True)
class ConnectionView:
    """What the merchant may see of its connection: never a secret."""

    base_url: str
    token_url: str
    client_id: str
    chave: str
    certificate_subject: str
    certificate_issuer: str
    certificate_not_after: datetime
    certificate_expiring_soon: bool  # within EXPIRING_SOON (or expired)
    certificate_expired: bool
    webhook_url: str | None  # None when it cannot be decrypted: `problem` says why
    connected_at: datetime
    last_reconciliation_at: datetime | None
    last_reconciliation: dict[str, Any] | None  # what it found: reconcile.Run.summary
    problem: str | None


@dataclass(frozen=True)
class Disconnection:
    webhook_removed: bool
    detail: str


def webhook_token_hash(token: str) -> str:
    """How a webhook token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


async def find_by_webhook_token(token: str) -> PspConnection | None:
    """The connection whose webhook URL carries `token` (the intake's lookup)."""
    return await sql.get_or_none(PspConnection, webhook_token_hash=webhook_token_hash(token))


def view(row: PspConnection, *, encryption_key: str) -> ConnectionView:
    """Describe a stored connection; a secret that cannot be decrypted is reported, not
    raised, so the merchant still sees (and can replace) its connection."""
    now = utcnow()
    problem, webhook_url = None, None
    try:
        webhook_url = decrypt_field(encryption_key, row, "webhook_url")
    except EncryptionError as exc:
        problem = f"{exc.detail}; connect the PSP again"
    return ConnectionView(
        base_url=row.base_url,
        token_url=row.token_url,
        client_id=row.client_id,
        chave=row.chave,
        certificate_subject=row.certificate_subject,
        certificate_issuer=row.certificate_issuer,
        certificate_not_after=row.certificate_not_after,
        certificate_expiring_soon=row.certificate_not_after - now <= EXPIRING_SOON,
        certificate_expired=row.certificate_not_after <= now,
        webhook_url=webhook_url,
        connected_at=row.connected_at,
        last_reconciliation_at=row.last_reconciliation_at,
        last_reconciliation=row.last_reconciliation,
        problem=problem,
    )


async def get_connection(merchant: Merchant, *, clients: PspClients) -> ConnectionView:
    """The merchant's connection, or NotFoundError when none."""
    row = await PspConnection.get_or_none(merchant_id=merchant.id)
    if row is None:
        raise NotFoundError(NOT_CONNECTED)
    return view(row, encryption_key=clients.encryption_key)


def _urls(given: Credentials) -> tuple[str, str]:
    base_url = validation.check_text("base_url", given.base_url.strip()).rstrip("/")
    token_url = validation.check_text("token_url", (given.token_url or "").strip())
    return base_url, token_url or f"{base_url}/oauth/token"


async def connect(
    merchant: Merchant, given: Credentials, *, clients: PspClients, public_base: str
) -> ConnectionView:
    """Prove the credentials, register the webhook at the PSP, then store the connection."""
    # What needs no network first: a mistake in the input is named before any call.
    base_url, token_url = _urls(given)
    urls = (("base_url", base_url), ("token_url", token_url))
    for field, url in urls:
        netguard.check_syntax(url, clients.url_policy, field=field)
    client_id = validation.check_text("client_id", given.client_id.strip())
    validation.check_text("client_secret", given.client_secret)
    certificate = certificate_info(given.certificate_pem)
    if certificate.not_after <= utcnow():
        message = f"expired on {certificate.not_after:%Y-%m-%d}: ask the PSP for a new one"
        raise UnprocessableError(f"certificate_pem {message}", fields={"certificate_pem": message})
    existing = await PspConnection.get_or_none(merchant_id=merchant.id)
    token = _kept_token(existing, base_url, merchant.pix_key, clients.encryption_key)
    token = token or secrets.token_urlsafe(32)
    webhook_url = f"{public_base.rstrip('/')}{WEBHOOK_PATH}{token}"
    client = clients.build(
        base_url=base_url,
        token_url=token_url,
        client_id=client_id,
        client_secret=given.client_secret,
        certificate_pem=given.certificate_pem,
        private_key_pem=given.private_key_pem,
        server_ca_pem=given.server_ca_pem or None,
    )
    try:
        for field, url in urls:
            await netguard.check_url(url, clients.url_policy, field=field)
        await _prove(client, merchant, webhook_url)
        values: dict[str, Any] = {
            "base_url": base_url,
            "token_url": token_url,
            "client_id": client_id,
            "certificate_pem": given.certificate_pem,
            "server_ca_pem": given.server_ca_pem or None,
            "certificate_subject": certificate.subject,
            "certificate_issuer": certificate.issuer,
            "certificate_not_after": certificate.not_after,
            "chave": merchant.pix_key,
            "webhook_token_hash": webhook_token_hash(token),
            "connected_at": utcnow(),
            "last_reconciliation_at": None,
            "sandbox": False,  # a real PSP replaces the development sandbox's connection
            **_encrypted(clients.encryption_key, merchant.id, given, webhook_url),
        }
        row = await _store(merchant, existing, values)
    except BaseException:
        await client.aclose()
        raise
    clients.install(row, client)
    log.info("merchant %s connected its PSP at %s", merchant.id, base_url)
    return view(row, encryption_key=clients.encryption_key)


def _encrypted(key: str, merchant_id: int, given: Credentials, webhook_url: str) -> dict[str, str]:
    plain = {
        "client_secret": given.client_secret,
        "private_key_pem": given.private_key_pem,
        "webhook_url": webhook_url,
    }
    return {field: encrypt_field(key, merchant_id, field, text) for field, text in plain.items()}


def _kept_token(existing: PspConnection | None, base_url: str, chave: str, key: str) -> str | None:
    """The current webhook token, when reconnecting to the same PSP and key."""
    if existing is None or (existing.base_url, existing.chave) != (base_url, chave):
        return None
    try:
        return decrypt_field(key, existing, "webhook_url").rsplit("/", 1)[-1]
    except EncryptionError:
        return None


async def _prove(client: PspClient, merchant: Merchant, webhook_url: str) -> None:
    step = "token"
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            token = await client.get_token()
            step = "permission"
            granted = set((token.scope or "").split())
            missing = [s for s in REQUIRED_SCOPES if s not in granted]
            if token.scope is not None and missing:
                raise PspAuthError(
                    f"the PSP's token lacks the scopes {' '.join(missing)} (granted: "
                    f"{token.scope or 'none'}): ask the PSP to grant them to this client id",
                    step="permission",
                )
            with contextlib.suppress(PspNotFoundError):  # none yet: the read was allowed
                await client.get_webhook(merchant.pix_key)
            step = "webhook"
            await client.put_webhook(merchant.pix_key, webhook_url)
    except TimeoutError:
        raise PspUnavailableError(
            f"the PSP did not finish answering within {CONNECT_SECONDS:.0f} s", step=step
        ) from None
    except PspError as exc:
        log.info("merchant %s: PSP connection refused at %s: %s", merchant.id, exc.step, exc)
        raise


async def _store(
    merchant: Merchant, existing: PspConnection | None, values: dict[str, Any]
) -> PspConnection:
    """Create or replace the connection, unless it changed since `existing` was read."""
    changed = ConflictError("the PSP connection changed while connecting: try again")
    try:
        async with in_transaction():
            row = await PspConnection.select_for_update().get_or_none(merchant_id=merchant.id)
            if (row is None) != (existing is None) or (
                row is not None and existing is not None and row.revision != existing.revision
            ):
                raise changed
            if row is None:
                return await PspConnection.create(merchant_id=merchant.id, revision=1, **values)
            row.update_from_dict({**values, "revision": row.revision + 1})
            await row.save()
            return row
    except IntegrityError:
        raise changed from None


async def disconnect(merchant: Merchant, *, clients: PspClients) -> Disconnection:
    """Remove the webhook at the PSP if it can be reached, and the connection here anyway."""
    row = await PspConnection.get_or_none(merchant_id=merchant.id)
    if row is None:
        raise NotFoundError(NOT_CONNECTED)
    try:
        client = await clients.for_merchant(merchant.id)
        if client is not None:
            async with asyncio.timeout(DISCONNECT_SECONDS):
                await client.delete_webhook(row.chave)
        removed, detail = True, f"the webhook of {row.chave} was removed at the PSP"
    except PspNotFoundError:
        removed, detail = True, f"the PSP had no webhook registered for {row.chave}"
    except (PixwebError, TimeoutError) as exc:  # unreachable, undecryptable, now refused...
        reason = getattr(exc, "detail", None) or f"no answer within {DISCONNECT_SECONDS:.0f} s"
        removed = False
        detail = (
            f"the PSP could not be reached to remove the webhook of {row.chave} ({reason}): "
            "pixweb ignores its deliveries from now on; remove it in the PSP's portal"
        )
        log.warning("merchant %s disconnected its PSP locally only: %s", merchant.id, reason)
    await PspConnection.filter(id=row.id).delete()
    clients.evict(merchant.id)
    return Disconnection(webhook_removed=removed, detail=f"disconnected; {detail}")


async def rotate_webhook_token(
    merchant: Merchant, *, clients: PspClients, public_base: str
) -> ConnectionView:
    """Register a new webhook URL at the PSP, then retire the old token."""
    row = await PspConnection.get_or_none(merchant_id=merchant.id)
    client = await clients.for_merchant(merchant.id) if row is not None else None
    if row is None or client is None:
        raise NotFoundError(NOT_CONNECTED)
    token = secrets.token_urlsafe(32)
    webhook_url = f"{public_base.rstrip('/')}{WEBHOOK_PATH}{token}"
    await client.put_webhook(row.chave, webhook_url)
    encrypted = encrypt_field(clients.encryption_key, merchant.id, "webhook_url", webhook_url)
    updated = await PspConnection.filter(id=row.id, revision=row.revision).update(
        webhook_token_hash=webhook_token_hash(token),
        webhook_url=encrypted,
        revision=row.revision + 1,
    )
    if not updated:
        raise ConflictError("the PSP connection changed meanwhile: rotate again")
    await row.refresh_from_db()
    log.info("merchant %s rotated its webhook token", merchant.id)
    return view(row, encryption_key=clients.encryption_key)
