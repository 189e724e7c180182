"""Encryption at rest of the secrets pixweb keeps for merchants (PSP client secrets, private
keys), with AES-256-GCM under `PIXWEB_ENCRYPTION_KEY`.

The key is 32 random bytes in URL-safe base64 (`generate_key()`). A ciphertext is text:

    v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>

The key id (8 hex digits of the key's SHA-256) tells a wrong key from an altered ciphertext,
and says so: decrypting under another key is an EncryptionError, never a crash. Give
`associated_data` naming the record and field ("merchant:42:client_secret"): a ciphertext
copied to another merchant or field then fails to decrypt instead of leaking there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pixweb.errors import EncryptionError

VERSION = "v1"
_NONCE = 12
_TAG = 16


def generate_key() -> str:
    """A new key for PIXWEB_ENCRYPTION_KEY: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def parse_key(key: str) -> bytes:
    """The key's 32 bytes, or an EncryptionError saying what is wrong with it."""
    try:
        text = key.strip()
        raw = base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise EncryptionError(
            "PIXWEB_ENCRYPTION_KEY must be 32 random bytes in URL-safe base64 (44 characters); "
            'generate one with: python -c "from pixweb.crypto import generate_key; '
            'print(generate_key())"'
        )
    return raw


def key_id(key: str) -> str:
    """8 hex digits identifying a key without revealing it (logs, errors, rotation)."""
    return hashlib.sha256(parse_key(key)).hexdigest()[:8]


def encrypt(key: str, plaintext: bytes, *, associated_data: str = "") -> str:
    """Encrypt `plaintext`, bound to `associated_data` (not secret, not stored)."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(parse_key(key)).encrypt(nonce, plaintext, associated_data.encode())
    body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return f"{VERSION}.{key_id(key)}.{body}"


def decrypt(key: str, token: str, *, associated_data: str = "") -> bytes:
    """The plaintext of `encrypt`'s output, given the same key and associated data."""
    raw_key = parse_key(key)
    version, kid, body = (token.split(".", 2) + ["", ""])[:3]
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        data = b""
    if version != VERSION or len(kid) != 8 or len(data) < _NONCE + _TAG:
        raise EncryptionError("the stored secret is not a pixweb ciphertext (v1.<key id>.<data>)")
    if kid != key_id(key):
        raise EncryptionError(
            f"the stored secret was encrypted with another PIXWEB_ENCRYPTION_KEY (key id {kid}; "
            f"the configured key's id is {key_id(key)}): restore the key it was encrypted with"
        )
    try:
        return AESGCM(raw_key).decrypt(data[:_NONCE], data[_NONCE:], associated_data.encode())
    except InvalidTag:
        raise EncryptionError(
            "the stored secret does not authenticate: it was altered, or belongs to another "
            "record or field"
        ) from None
