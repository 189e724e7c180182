"""Encryption at rest: round trips, and every way decryption can fail is a clear EncryptionError."""

from __future__ import annotations

import base64

import pytest

from pixweb import crypto
from pixweb.errors import EncryptionError

SECRET = b"-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n"
CONTEXT = "merchant:42:private_key_pem"


def test_round_trip_with_associated_data() -> None:
    key = crypto.generate_key()
    token = crypto.encrypt(key, SECRET, associated_data=CONTEXT)
    assert crypto.decrypt(key, token, associated_data=CONTEXT) == SECRET
    assert SECRET not in token.encode()
    assert token.startswith(f"v1.{crypto.key_id(key)}.")
    # A fresh nonce each time: the same secret never gives the same ciphertext.
    assert crypto.encrypt(key, SECRET, associated_data=CONTEXT) != token


def test_generated_keys_are_32_random_bytes_in_url_safe_base64() -> None:
    key = crypto.generate_key()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert len(key) == 44
    assert crypto.generate_key() != key
    assert crypto.parse_key(key.rstrip("=")) == crypto.parse_key(key)  # padding optional


def test_a_wrong_key_is_named_not_a_crash() -> None:
    token = crypto.encrypt(crypto.generate_key(), SECRET)
    other = crypto.generate_key()
    with pytest.raises(EncryptionError, match="another PIXWEB_ENCRYPTION_KEY") as caught:
        crypto.decrypt(other, token)
    assert crypto.key_id(other) in caught.value.detail


def test_a_ciphertext_moved_to_another_record_or_field_does_not_decrypt() -> None:
    key = crypto.generate_key()
    token = crypto.encrypt(key, SECRET, associated_data=CONTEXT)
    for elsewhere in ("merchant:43:private_key_pem", "merchant:42:client_secret", ""):
        with pytest.raises(EncryptionError, match="another record or field"):
            crypto.decrypt(key, token, associated_data=elsewhere)


def test_an_altered_ciphertext_does_not_decrypt() -> None:
    key = crypto.generate_key()
    token = crypto.encrypt(key, SECRET)
    prefix, body = token.rsplit(".", 1)
    flipped = body[:-5] + ("A" if body[-5] != "A" else "B") + body[-4:]
    with pytest.raises(EncryptionError, match="altered"):
        crypto.decrypt(key, f"{prefix}.{flipped}")


@pytest.mark.parametrize(
    "token", ["", "plain text", "v2.0000abcd.AAAA", "v1.short.AAAA", "v1.0000abcd.!!"]
)
def test_what_is_not_a_ciphertext_is_named(token: str) -> None:
    with pytest.raises(EncryptionError, match="not a pixweb ciphertext"):
        crypto.decrypt(crypto.generate_key(), token)


@pytest.mark.parametrize(
    "key",
    ["", "too-short", base64.urlsafe_b64encode(b"x" * 16).decode(), "é" * 44, "*" * 44],
)
def test_a_malformed_key_is_named(key: str) -> None:
    with pytest.raises(EncryptionError, match="PIXWEB_ENCRYPTION_KEY must be 32 random bytes"):
        crypto.encrypt(key, SECRET)
    with pytest.raises(EncryptionError, match="PIXWEB_ENCRYPTION_KEY must be 32 random bytes"):
        crypto.decrypt(key, "v1.0000abcd.AAAA")
