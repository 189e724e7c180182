"""Authenticity of the bank's calls: HMAC-SHA256 over the raw body."""

from __future__ import annotations

import hashlib
import hmac

from pixweb.errors import SignatureError

SIGNATURE_HEADER = "X-Pix-Signature"
_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """Return the header value a sender puts on `body`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """Raise SignatureError unless `header` is the HMAC of `body` under `secret`."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not hmac.compare_digest(header.strip().encode(), sign(body, secret).encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")
