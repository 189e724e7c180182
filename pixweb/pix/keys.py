"""Pix key formats of the DICT (CPF, CNPJ, e-mail, phone, EVP): detection and validation."""

from __future__ import annotations

import re
from enum import StrEnum

from pixweb.errors import InvalidPixKeyError

EMAIL_MAX = 77

# Punctuation is optional so both "12345678909" and "123.456.789-09" are read as a CPF.
_CPF = re.compile(r"[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}")
# Alphanumeric CNPJ (from 2026): 12 characters [0-9A-Z], then 2 numeric check digits.
_CNPJ = re.compile(r"[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?[0-9]{2}")
_PHONE = re.compile(r"\+[1-9][0-9][0-9]{1,14}")
# People type phones as "+55 (11) 99999-9999": those separators carry no information.
_PHONE_SEPARATORS = re.compile(r"[ ()-]")
_EVP = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The DICT's pattern (bacen/pix-dict-api): its local part has no '%', unlike HTML's. The domain
# needs a dot here, which the DICT's pattern does not ask: a key is for the public internet.
_EMAIL_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"[a-z0-9.!#$&'*+/=?^_`{{|}}~-]+@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})+")
_DIGITS = re.compile(r"[0-9]+")
_CNPJ_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


class KeyType(StrEnum):
    """The five kinds of Pix key the DICT stores."""

    CPF = "cpf"
    CNPJ = "cnpj"
    EMAIL = "email"
    PHONE = "phone"
    EVP = "evp"


def _mod11_digit(values: list[int], weights: tuple[int, ...]) -> int:
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def is_valid_cpf(digits: str) -> bool:
    """Tell whether 11 plain digits form a CPF with valid check digits."""
    if len(digits) != 11 or not _DIGITS.fullmatch(digits) or len(set(digits)) == 1:
        return False
    values = [int(c) for c in digits]
    first = _mod11_digit(values[:9], tuple(range(10, 1, -1)))
    second = _mod11_digit(values[:10], tuple(range(11, 1, -1)))
    return values[9:] == [first, second]


def is_valid_cnpj(value: str) -> bool:
    """Tell whether 14 plain characters form a (numeric or alphanumeric) CNPJ with valid DVs."""
    if len(value) != 14 or not _CNPJ.fullmatch(value) or len(set(value)) == 1:
        return False
    # Receita Federal's rule for the alphanumeric CNPJ: each character counts as ord(c) - 48,
    # which leaves digits at their face value and maps 'A'..'Z' to 17..42.
    values = [ord(c) - 48 for c in value]
    first = _mod11_digit(values[:12], _CNPJ_WEIGHTS[1:])
    second = _mod11_digit(values[:13], _CNPJ_WEIGHTS)
    return values[12:] == [first, second]


def _strip_document(key: str) -> str:
    return key.replace(".", "").replace("-", "").replace("/", "")


def detect(key: str) -> KeyType | None:
    """Return the key type whose shape the key has (check digits not verified), or None."""
    key = key.strip()
    if "@" in key:
        return KeyType.EMAIL
    if key.startswith("+"):
        return KeyType.PHONE
    if _EVP.fullmatch(key.lower()):
        return KeyType.EVP
    if _CPF.fullmatch(key):
        return KeyType.CPF
    if _CNPJ.fullmatch(key.upper()):
        return KeyType.CNPJ
    return None


def normalize(key: str) -> tuple[KeyType, str]:
    """Validate a Pix key and return its type and canonical DICT form, or raise."""
    if not isinstance(key, str):
        raise InvalidPixKeyError("A Pix key must be a text.")
    key = key.strip()
    if not key.isascii():
        # Case mapping would turn look-alikes into ASCII (KELVIN SIGN -> 'k', 'ﬁ' -> 'FI'):
        # refuse them rather than store a key the owner never typed.
        raise InvalidPixKeyError("A Pix key has only ASCII letters, digits and symbols.")
    kind = detect(key)
    if kind is None:
        raise InvalidPixKeyError(_unrecognized_detail(key))
    canonical = _CANONICALIZERS[kind](key)
    return kind, canonical


def _unrecognized_detail(key: str) -> str:
    if _DIGITS.fullmatch(key):
        # A phone key sent unencoded in a URL query loses its '+' (it decodes to a space).
        return (
            f"The key has {len(key)} digits: a CPF has 11 and a CNPJ 14; a phone key must start "
            "with '+' (a '+' not URL-encoded as %2B arrives as a space)."
        )
    return "The key is not a CPF, CNPJ, e-mail, phone (+55...) or random key (UUID)."


def _cpf(key: str) -> str:
    digits = _strip_document(key)
    if not is_valid_cpf(digits):
        raise InvalidPixKeyError("The CPF check digits do not match (or all digits are equal).")
    return digits


def _cnpj(key: str) -> str:
    value = _strip_document(key.upper())
    if not is_valid_cnpj(value):
        raise InvalidPixKeyError(
            "The CNPJ check digits do not match (or all characters are equal)."
        )
    return value


def _email(key: str) -> str:
    email = key.lower()
    if len(email) > EMAIL_MAX:
        raise InvalidPixKeyError(f"An e-mail key has at most {EMAIL_MAX} characters.")
    if not _EMAIL.fullmatch(email):
        raise InvalidPixKeyError("The e-mail key is not a valid address.")
    return email


def _phone(key: str) -> str:
    phone = _PHONE_SEPARATORS.sub("", key)
    if not _PHONE.fullmatch(phone):
        raise InvalidPixKeyError(
            "A phone key is '+', the country code and the number, digits only (+5511999998888)."
        )
    return phone


def _evp(key: str) -> str:
    return key.lower()


_CANONICALIZERS = {
    KeyType.CPF: _cpf,
    KeyType.CNPJ: _cnpj,
    KeyType.EMAIL: _email,
    KeyType.PHONE: _phone,
    KeyType.EVP: _evp,
}
