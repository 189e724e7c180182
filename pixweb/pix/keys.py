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
# People type phones as "+55 (11) 99999-9999" or "(12) 99876-5432": the separators carry no
# information, and a number without '+' is Brazilian.
_PHONE_SEPARATORS = re.compile(r"[ ().-]")
_PHONE_SHAPE = re.compile(r"(?=.*[0-9])\+?[0-9 ().-]+")
_NATIONAL_PHONE = re.compile(r"(?P<area>[1-9]{2})(?P<number>9[0-9]{8}|[2-5][0-9]{7})")
# ANATEL's 67 area codes (DDD), by first digit: neither digit is 0, and not every pair is used.
_AREA_CODE_UNITS = {
    "1": "123456789", "2": "12478", "3": "1234578", "4": "123456789", "5": "1345",
    "6": "123456789", "7": "134579", "8": "123456789", "9": "123456789",
}  # fmt: skip
_AREA_CODES = frozenset(tens + unit for tens, units in _AREA_CODE_UNITS.items() for unit in units)
_EVP = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The DICT's pattern (bacen/pix-dict-api): its local part has no '%', unlike HTML's. The domain
# needs a dot here, which the DICT's pattern does not ask: a key is for the public internet.
_EMAIL_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"[a-z0-9.!#$&'*+/=?^_`{{|}}~-]+@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})+")
_WHITESPACE = re.compile(r"\s+")
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


def _unbrace(key: str) -> str:
    return key[1:-1] if key.startswith("{") and key.endswith("}") else key


def detect(key: str) -> KeyType | None:
    """Return the key type whose shape the key has (check digits not verified), or None.

    Masks decide, never a guess from the digits: 11 bare digits are a CPF (the DICT's own
    format for one), while a number with an area code in parentheses, spaces, '+' or a 55
    prefix is a phone. See `test_bare_eleven_digits_follow_the_dict_cpf_format`.
    """
    key = _WHITESPACE.sub(" ", key).strip()
    if "@" in key:
        return KeyType.EMAIL
    if _EVP.fullmatch(_unbrace(key).lower()):
        return KeyType.EVP
    if key.startswith("+"):
        return KeyType.PHONE
    if _CPF.fullmatch(key):
        return KeyType.CPF
    if _CNPJ.fullmatch(key.upper()):
        return KeyType.CNPJ
    if _PHONE_SHAPE.fullmatch(key):
        return KeyType.PHONE
    return None


def normalize(key: str) -> tuple[KeyType, str]:
    """Validate a Pix key and return its type and canonical DICT form, or raise."""
    if not isinstance(key, str):
        raise InvalidPixKeyError("A Pix key must be a text.")
    # Pasted text brings tabs and no-break spaces: they count as the spaces a mask may hold.
    key = _WHITESPACE.sub(" ", key).strip()
    if not key.isascii():
        # Case mapping would turn look-alikes into ASCII (KELVIN SIGN -> 'k', 'ﬁ' -> 'FI'):
        # refuse them rather than store a key the owner never typed.
        raise InvalidPixKeyError("A Pix key has only ASCII letters, digits and symbols.")
    kind = detect(key)
    if kind is None:
        raise InvalidPixKeyError(
            "The key is not a CPF, CNPJ, e-mail, phone (+55...) or random key (UUID)."
        )
    canonical = _CANONICALIZERS[kind](key)
    return kind, canonical


def _cpf(key: str) -> str:
    digits = _strip_document(key)
    if not is_valid_cpf(digits):
        detail = "The CPF check digits do not match (or all digits are equal)."
        phone = _national_phone(digits)
        if key == digits and phone is not None:
            area, number = phone
            detail += (
                " For a phone key, write it with its area code in parentheses or with +55: "
                f"({area}) {number[:-4]}-{number[-4:]} or +55 {area} {number}."
            )
        raise InvalidPixKeyError(detail)
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


def _national_phone(digits: str) -> tuple[str, str] | None:
    """Split a Brazilian number without country code into area code and number, if it is one."""
    match = _NATIONAL_PHONE.fullmatch(digits)
    if match is None or match["area"] not in _AREA_CODES:
        return None
    return match["area"], match["number"]


def _phone(key: str) -> str:
    phone = _PHONE_SEPARATORS.sub("", key)
    if not phone.startswith("+"):
        # No '+': a Brazilian number, with or without its country code 55.
        national = phone[2:] if len(phone) in (12, 13) and phone.startswith("55") else phone
        parts = _national_phone(national)
        if parts is None:
            raise InvalidPixKeyError(
                "A phone key without '+' is Brazilian: a valid area code (DDD) and 8 digits, or "
                "9 digits starting with 9 for a mobile, as (12) 99876-5432. Another country's "
                "number needs its '+' (in a URL, %2B: a bare '+' arrives as a space)."
            )
        phone = "+55" + "".join(parts)
    if not _PHONE.fullmatch(phone):
        raise InvalidPixKeyError(
            "A phone key is '+', the country code and the number, digits only (+5511999998888)."
        )
    return phone


def _evp(key: str) -> str:
    return _unbrace(key).lower()


_CANONICALIZERS = {
    KeyType.CPF: _cpf,
    KeyType.CNPJ: _cnpj,
    KeyType.EMAIL: _email,
    KeyType.PHONE: _phone,
    KeyType.EVP: _evp,
}
