"""API keys: a merchant's own systems call the JSON API with one, limited to its scopes.

A key is `pxw_` + 32 random bytes (URL-safe base64), shown once when made; only its SHA-256
is stored (32 random bytes need no slow hash), with its first characters to recognise it.
Every use looks the hash up in the database, so a revocation holds on every worker at once;
no process keeps keys in memory. The key itself is never logged nor stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from tortoise.expressions import Q

from pixweb import validation
from pixweb.broker import Broker
from pixweb.errors import AuthenticationError, InvalidInputError, NotFoundError
from pixweb.models import ApiKey, Merchant
from pixweb.services.clock import utcnow
from pixweb.services.events import account_channel

log = logging.getLogger(__name__)

KEY_PREFIX = "pxw_"
SHOWN_CHARS = 12  # "pxw_" + 8 characters of the random part: enough to tell keys apart
NAME_MAX = 100
KEYS_MAX = 100  # live keys per merchant
# One conditional UPDATE a minute per key at most: a busy integration does not write a row
# on every request, and "last used" to the minute is what a person reading it needs.
TOUCH_EVERY = timedelta(minutes=1)
# What a key's scopes can name, and what each allows (the dashboard shows these words).
SCOPES = {
    "charges:read": "Consultar cobranças, Pix recebidos, devoluções e exportações",
    "charges:write": "Criar e cancelar cobranças, vincular Pix recebidos",
    "refunds:write": "Pedir devoluções",
    "account:read": "Consultar saldo, movimentações e notificações",
    "account:write": "Depositar, sacar, transferir e pagar com o saldo",
    "webhooks:manage": "Gerenciar os webhooks",
}
REVOKED_EVENT = "api_key.revoked"
# A key looks like this; anything else is not worth a query (and is no JWT either).
KEY_LENGTH = len(KEY_PREFIX) + 43


@dataclass(frozen=True)
class Caller:
    """Who an API key speaks for, and what it may do."""

    merchant: Merchant
    scopes: frozenset[str]
    key_id: int


def is_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (rather than a login JWT)."""
    return token.startswith(KEY_PREFIX)


def key_hash(key: str) -> str:
    """The stored form of a key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, deduplicated in the fixed order; InvalidInputError names an unknown one."""
    for scope in scopes:
        validation.check_text("scopes", scope)
        if scope not in SCOPES:
            shown = validation.shown(scope[:50])
            raise InvalidInputError(
                f"unknown scope {shown}; valid: {', '.join(SCOPES)}",
                fields={"scopes": f"unknown scope {shown}"},
            )
    if not scopes:
        raise InvalidInputError("give at least one scope", fields={"scopes": "empty"})
    return [scope for scope in SCOPES if scope in scopes]


def _check_name(name: str) -> str:
    name = validation.check_text("name", name).strip()
    if not name or len(name) > NAME_MAX:
        message = f"1 to {NAME_MAX} characters"
        raise InvalidInputError(f"name: {message}", fields={"name": message})
    return name


async def create_key(merchant_id: int, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Make a key for the merchant; return its row and the key, which is never seen again."""
    name, scopes = _check_name(name), check_scopes(scopes)
    live = ApiKey.filter(merchant_id=merchant_id, revoked_at__isnull=True)
    if await live.count() >= KEYS_MAX:
        raise InvalidInputError(f"at most {KEYS_MAX} live keys per merchant: revoke one first")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await ApiKey.create(
        merchant_id=merchant_id,
        name=name,
        prefix=key[:SHOWN_CHARS],
        key_hash=key_hash(key),
        scopes=scopes,
        created_at=utcnow(),
    )
    log.info("api key %s (%s) created for merchant %s", row.id, row.prefix, merchant_id)
    return row, key


async def list_keys(merchant_id: int) -> list[ApiKey]:
    """The merchant's keys, newest first, revoked ones included."""
    return await ApiKey.filter(merchant_id=merchant_id).order_by("-created_at", "-id")


async def revoke_key(merchant_id: int, key_id: int, *, broker: Broker) -> ApiKey:
    """Revoke one of the merchant's keys now (again: no change); 404 for anyone else's.

    Requests see it at once (they read the database); sockets opened with the key hear
    `api_key.revoked` on the merchant's channel and close."""
    row = await ApiKey.get_or_none(id=key_id, merchant_id=merchant_id)
    if row is None:
        raise NotFoundError("no API key with this id")
    if row.revoked_at is None:
        now = utcnow()
        await ApiKey.filter(id=row.id, revoked_at__isnull=True).update(revoked_at=now)
        await row.refresh_from_db(fields=["revoked_at"])
        log.info("api key %s (%s) revoked by merchant %s", row.id, row.prefix, merchant_id)
        event = {"type": REVOKED_EVENT, "key_id": row.id}
        await broker.publish(account_channel(merchant_id), event)
    return row


async def authenticate(key: str) -> Caller:
    """The merchant and scopes of a live key, read from the database on every call."""
    if len(key) != KEY_LENGTH or not is_api_key(key):
        raise AuthenticationError("invalid API key")
    row = (
        await ApiKey.filter(key_hash=key_hash(key), revoked_at__isnull=True)
        .select_related("merchant")
        .first()
    )
    if row is None:
        raise AuthenticationError("invalid or revoked API key")
    await _touch(row)
    return Caller(row.merchant, frozenset(row.scopes), row.id)


async def _touch(row: ApiKey) -> None:
    """Record the use, unless another request (on any worker) did within TOUCH_EVERY."""
    now = utcnow()
    if row.last_used_at is not None and now - row.last_used_at < TOUCH_EVERY:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_EVERY)
    await ApiKey.filter(stale, id=row.id).update(last_used_at=now)
