"""The signing secrets of merchant webhook endpoints: their format and their storage.

A secret is Standard Webhooks' `whsec_` + base64 of 24 random bytes, which any Standard
Webhooks library (the `standardwebhooks` package among them) accepts as given. It is kept
encrypted (pixweb.crypto) and bound to its merchant, so a ciphertext copied to another
merchant's endpoint does not decrypt there. During a rotation's grace period the previous
secret signs too: a receiver still holding it keeps verifying.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime

from pixweb import crypto
from pixweb.models import WebhookEndpoint

PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    """A new signing secret: whsec_ + base64 of 24 random bytes."""
    return PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def associated_data(merchant_id: int) -> str:
    """What binds a stored secret to its merchant (see pixweb.crypto)."""
    return f"webhook-endpoint-secret:{merchant_id}"


def encrypt_secret(key: str, merchant_id: int, secret: str) -> str:
    """The stored form of `secret` for `merchant_id`'s endpoints."""
    return crypto.encrypt(key, secret.encode(), associated_data=associated_data(merchant_id))


def decrypt_secret(key: str, merchant_id: int, token: str) -> str:
    """A stored secret in the clear (EncryptionError when the key or the record differ)."""
    return crypto.decrypt(key, token, associated_data=associated_data(merchant_id)).decode()


def signing_secrets(endpoint: WebhookEndpoint, *, key: str, now: datetime) -> list[str]:
    """The secrets that sign for `endpoint` at `now`: the current one first, then the
    previous one while its grace period lasts."""
    secrets = [decrypt_secret(key, endpoint.merchant_id, endpoint.secret)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(decrypt_secret(key, endpoint.merchant_id, endpoint.previous_secret))
    return secrets
