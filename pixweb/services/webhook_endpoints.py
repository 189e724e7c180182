"""Merchant webhook endpoints: where a merchant's events go, and with which secret.

An endpoint's URL is one pixweb's server will call because a merchant chose it, so it passes
netguard as PSP URLs do (https in production; no loopback, private, link-local or metadata
address unless PIXWEB_ALLOW_PRIVATE_URLS). Deleting is soft: the delivery log stays, and
what was still owed to the endpoint is marked failed. The secrets (format, encryption, which
ones sign now) live in webhook_secrets; `signing_secrets` is re-exported for the worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from pixweb import netguard, validation
from pixweb.config import Config
from pixweb.errors import InvalidInputError, NotFoundError, UnprocessableError
from pixweb.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from pixweb.services.clock import utcnow
from pixweb.services.outbox import EVENT_TYPES
from pixweb.services.webhook_secrets import encrypt_secret, new_secret, signing_secrets

__all__ = [
    "Created",
    "create",
    "delete",
    "get",
    "list_endpoints",
    "rotate_secret",
    "signing_secrets",
    "update",
    "url_policy",
]

MAX_ENDPOINTS = 20
URL_MAX = 2000
DESCRIPTION_MAX = 200
GRACE_DEFAULT = timedelta(hours=24)
GRACE_MAX = timedelta(days=7)
# disabled_reason is shown to the merchant as written, in Portuguese as the delivery
# worker's own ("o endereço respondeu 410 Gone", "falhou por 3 dias seguidos").
DISABLED_BY_MERCHANT = "desativado pelo lojista"
DELETED = "endpoint excluído"


@dataclass(frozen=True)
class Created:
    """An endpoint with its secret in the clear: shown once, on creation or rotation."""

    endpoint: WebhookEndpoint
    secret: str


def url_policy(config: Config) -> netguard.UrlPolicy:
    """What an endpoint URL must pass: https in production, public hosts unless allowed."""
    return netguard.UrlPolicy(
        require_https=config.production, allow_private=config.allow_private_urls
    )


async def check_url(url: str, policy: netguard.UrlPolicy) -> str:
    """The URL, once it is short, printable and passes netguard (422 when refused)."""
    url = validation.check_text("url", url.strip())
    if not url or len(url) > URL_MAX:
        raise InvalidInputError(
            "url is empty or too long", fields={"url": f"1 to {URL_MAX} characters"}
        )
    await netguard.check_url(url, policy, field="url")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    """The event types asked for, known and at least one, in the catalogue's order."""
    asked = set(events)
    unknown = sorted(asked - set(EVENT_TYPES))
    if unknown:
        raise InvalidInputError(
            f"unknown event types: {', '.join(unknown)}",
            fields={"events": f"each one of: {', '.join(EVENT_TYPES)}"},
        )
    if not asked:
        raise InvalidInputError(
            "events must name at least one type", fields={"events": "at least one event type"}
        )
    return [type_ for type_ in EVENT_TYPES if type_ in asked]


def check_description(description: str | None) -> str | None:
    """A trimmed description, None when blank."""
    if description is None:
        return None
    text = validation.check_text("description", description.strip())
    if len(text) > DESCRIPTION_MAX:
        raise InvalidInputError(
            "description is too long", fields={"description": f"at most {DESCRIPTION_MAX}"}
        )
    return text or None


async def create(
    merchant_id: int,
    *,
    url: str,
    events: Iterable[str],
    description: str | None = None,
    key: str,
    policy: netguard.UrlPolicy,
) -> Created:
    """Register an endpoint with a new secret (returned in the clear this once)."""
    chosen = check_events(events)
    text = check_description(description)
    url = await check_url(url, policy)
    if await WebhookEndpoint.filter(merchant_id=merchant_id, deleted_at=None).count() >= (
        MAX_ENDPOINTS
    ):
        raise UnprocessableError(f"at most {MAX_ENDPOINTS} webhook endpoints per account")
    secret = new_secret()
    now = utcnow()
    endpoint = await WebhookEndpoint.create(
        merchant_id=merchant_id,
        url=url,
        events=chosen,
        description=text,
        secret=encrypt_secret(key, merchant_id, secret),
        created_at=now,
        updated_at=now,
    )
    return Created(endpoint, secret)


async def list_endpoints(merchant_id: int) -> list[WebhookEndpoint]:
    """The merchant's endpoints (deleted ones aside), oldest first."""
    return await WebhookEndpoint.filter(merchant_id=merchant_id, deleted_at=None).order_by(
        "created_at", "id"
    )


async def get(merchant_id: int, endpoint_id: int) -> WebhookEndpoint:
    """One of the merchant's endpoints; NotFoundError for another's, a deleted or no one."""
    endpoint = await WebhookEndpoint.get_or_none(
        id=endpoint_id, merchant_id=merchant_id, deleted_at=None
    )
    if endpoint is None:
        raise NotFoundError("no webhook endpoint with this id")
    return endpoint


@dataclass(frozen=True)
class Changes:
    """What a PATCH changes; None leaves a field as it is (`clear_description` empties it)."""

    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = None
    description: str | None = None
    clear_description: bool = False


async def update(
    merchant_id: int, endpoint_id: int, changes: Changes, *, policy: netguard.UrlPolicy
) -> WebhookEndpoint:
    """Change an endpoint; re-enabling one forgets why it was disabled and its failures."""
    endpoint = await get(merchant_id, endpoint_id)
    if changes.events is not None:
        endpoint.events = check_events(changes.events)
    if changes.description is not None or changes.clear_description:
        endpoint.description = check_description(changes.description)
    if changes.url is not None:
        endpoint.url = await check_url(changes.url, policy)
    if changes.enabled is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, None, None
    elif changes.enabled is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason = False, DISABLED_BY_MERCHANT
    endpoint.updated_at = utcnow()
    await endpoint.save()
    return endpoint


async def delete(merchant_id: int, endpoint_id: int) -> None:
    """Delete an endpoint (its log stays); what was still owed to it fails."""
    now = utcnow()
    async with in_transaction():
        endpoint = await get(merchant_id, endpoint_id)
        await WebhookEndpoint.filter(id=endpoint.id).update(
            deleted_at=now, enabled=False, disabled_reason=DELETED, updated_at=now
        )
        await WebhookDelivery.filter(endpoint_id=endpoint.id, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, completed_at=now
        )


async def rotate_secret(
    merchant_id: int,
    endpoint_id: int,
    *,
    grace: timedelta = GRACE_DEFAULT,
    key: str,
    now: datetime | None = None,
) -> Created:
    """A new secret; the current one keeps signing for `grace` (at most 7 days, 0: not)."""
    if grace < timedelta(0) or grace > GRACE_MAX:
        raise InvalidInputError(
            "grace period out of range",
            fields={"grace_seconds": f"0 to {int(GRACE_MAX.total_seconds())} seconds"},
        )
    now = now or utcnow()
    endpoint = await get(merchant_id, endpoint_id)
    secret = new_secret()
    keep = grace > timedelta(0)
    await WebhookEndpoint.filter(id=endpoint.id).update(
        previous_secret=endpoint.secret if keep else None,
        previous_secret_expires_at=now + grace if keep else None,
        secret=encrypt_secret(key, merchant_id, secret),
        updated_at=now,
    )
    return Created(await get(merchant_id, endpoint_id), secret)
