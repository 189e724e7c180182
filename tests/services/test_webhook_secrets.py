"""Webhook signing secrets: Standard Webhooks format, encrypted per merchant, grace period."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from pixweb import crypto
from pixweb.errors import EncryptionError
from pixweb.models import Merchant, WebhookEndpoint
from pixweb.services.webhook_endpoints import signing_secrets
from pixweb.services.webhook_secrets import encrypt_secret, new_secret
from tests.conftest import make_merchant

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_a_secret_is_whsec_and_24_bytes_of_base64() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert new_secret() != secret


async def _endpoint(
    key: str, merchant: Merchant, current: str, previous: str | None, until: datetime | None
) -> WebhookEndpoint:
    return await WebhookEndpoint.create(
        merchant=merchant,
        url="https://loja.example.com/webhooks",
        events=["charge.paid"],
        secret=encrypt_secret(key, merchant.id, current),
        previous_secret=encrypt_secret(key, merchant.id, previous) if previous else None,
        previous_secret_expires_at=until,
        created_at=NOW,
        updated_at=NOW,
    )


async def test_the_previous_secret_signs_until_its_grace_period_ends(merchant: Merchant) -> None:
    key = crypto.generate_key()
    endpoint = await _endpoint(key, merchant, "whsec_new", "whsec_old", NOW + timedelta(hours=1))
    endpoint = await WebhookEndpoint.get(id=endpoint.id)
    assert signing_secrets(endpoint, key=key, now=NOW) == ["whsec_new", "whsec_old"]
    later = NOW + timedelta(hours=1)
    assert signing_secrets(endpoint, key=key, now=later) == ["whsec_new"]
    alone = await _endpoint(key, merchant, "whsec_a", None, None)
    assert signing_secrets(alone, key=key, now=NOW) == ["whsec_a"]


async def test_a_secret_moved_to_another_merchant_does_not_decrypt(merchant: Merchant) -> None:
    key = crypto.generate_key()
    other = await make_merchant("outra@example.com")
    endpoint = await _endpoint(key, merchant, "whsec_new", None, None)
    endpoint.merchant_id = other.id
    with pytest.raises(EncryptionError):
        signing_secrets(endpoint, key=key, now=NOW)
