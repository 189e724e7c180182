"""Who calls the sandbox PSP: OAuth2 client credentials and the access tokens it issues.

Each merchant has one sandbox client: `sandbox-<merchant id>`, whose secret is an HMAC of
that id under the app's secret key, so nothing is stored and rotating the app's secret
revokes every sandbox credential and token at once. Tokens are itsdangerous signatures of
(merchant, scopes), valid `TOKEN_SECONDS`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_SECONDS = 3600
SCOPES = ("cob.write", "cob.read", "pix.write", "pix.read", "webhook.write", "webhook.read")
_CLIENT_ID = re.compile(r"sandbox-([1-9][0-9]{0,9})")
_SECRET_CONTEXT = b"pixweb.sandbox-psp.client-secret:"
_TOKEN_SALT = "pixweb.sandbox-psp.token"


class CredentialsError(Exception):
    """OAuth2's `error` code (RFC 6749 §5.2) and a description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def client_id(merchant_id: int) -> str:
    return f"sandbox-{merchant_id}"


def client_secret(secret_key: str, merchant_id: int) -> str:
    """The merchant's sandbox client secret, derived from the app's secret key."""
    digest = hmac.new(
        secret_key.encode(), _SECRET_CONTEXT + str(merchant_id).encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def client_credentials(secret_key: str, merchant_id: int) -> tuple[str, str]:
    """(client_id, client_secret) a merchant gives its PspClient to reach the sandbox."""
    return client_id(merchant_id), client_secret(secret_key, merchant_id)


def check_client(secret_key: str, given_id: str, given_secret: str) -> int:
    """The merchant id of valid client credentials; CredentialsError otherwise."""
    match = _CLIENT_ID.fullmatch(given_id)
    if match is None:
        raise CredentialsError("invalid_client", "unknown client_id (sandbox-<merchant id>)")
    merchant_id = int(match.group(1))
    expected = client_secret(secret_key, merchant_id)
    if not hmac.compare_digest(expected.encode(), given_secret.encode()):
        raise CredentialsError("invalid_client", "wrong client_secret")
    return merchant_id


def granted_scopes(asked: str | None) -> tuple[str, ...]:
    """Every scope when none is asked, else the asked ones, all of which must exist."""
    if not asked or not asked.strip():
        return SCOPES
    wanted = tuple(dict.fromkeys(asked.split()))
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise CredentialsError("invalid_scope", f"unknown scope {unknown[0]!r}")
    return wanted


@dataclass(frozen=True)
class Grant:
    merchant_id: int
    scopes: tuple[str, ...]


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_TOKEN_SALT)


def issue_token(secret_key: str, merchant_id: int, scopes: tuple[str, ...]) -> str:
    return str(_serializer(secret_key).dumps({"m": merchant_id, "s": " ".join(scopes)}))


def read_token(secret_key: str, token: str) -> Grant | None:
    """The grant a token carries, or None when it is forged, malformed or expired."""
    try:
        data = _serializer(secret_key).loads(token, max_age=TOKEN_SECONDS)
    except BadSignature:  # SignatureExpired is one
        return None
    if not isinstance(data, dict):
        return None
    merchant_id, scopes = data.get("m"), data.get("s")
    if not isinstance(merchant_id, int) or not isinstance(scopes, str):
        return None
    return Grant(merchant_id, tuple(scopes.split()))
