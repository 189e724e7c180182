"""Money: integer centavos in the domain, "1234.56" strings at the edges.

The API reads amounts strictly (`parse_amount`: a dot and at most two decimals, as its
document says); forms read them as people type them (`parse_typed_amount`).
"""

from __future__ import annotations

import re
from decimal import Decimal

from pixweb.errors import InvalidAmountError

MAX_CENTS = 100_000_000  # R$ 1,000,000.00 per operation
_AMOUNT_TEXT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
_TYPED_TEXT = re.compile(r"(?:R\$)?\s*([0-9]+(?:[.,][0-9]+)*)", re.IGNORECASE)
_SEPARATOR = re.compile(r"([.,])")


def parse_amount(value: object, *, limit: int = MAX_CENTS) -> int:
    """Turn an API amount (int, Decimal or "12.34" text) into centavos, or raise."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise InvalidAmountError('must be a number or a decimal string such as "100.00"')
    if isinstance(value, str):
        if not _AMOUNT_TEXT.fullmatch(value):
            raise InvalidAmountError('must be a decimal string such as "100.00"')
        value = Decimal(value)
    try:
        amount = Decimal(value)
        if not amount.is_finite():
            raise InvalidAmountError("must be a finite number")
        cents = amount * 100
        if cents != cents.to_integral_value():
            raise InvalidAmountError("must have at most two decimal places")
    except ArithmeticError as exc:  # decimal overflow, e.g. 1e999999999
        raise InvalidAmountError("is out of range") from exc
    if cents <= 0:
        raise InvalidAmountError("must be greater than zero")
    if cents > limit:
        raise InvalidAmountError(f"must be at most {format_amount(limit)}")
    return int(cents)


def parse_typed_amount(text: str, *, limit: int = MAX_CENTS) -> int:
    """Read an amount as people type it into centavos: "1.234,56", "1234,56", "10.50", "R$ 10".

    The last separator (comma or dot) is the decimal one when one or two digits follow it;
    every other separator groups thousands: all the same character, not the decimal one,
    three digits a group. So "1.234" is R$ 1.234,00, "1,234.56" R$ 1.234,56 and "10.5"
    R$ 10,50. A lone comma before three digits ("1,234") is refused, not guessed: in Brazil
    it reads as a decimal comma, elsewhere as thousands, a factor of 1,000 apart.
    """
    match = _TYPED_TEXT.fullmatch(text.strip())
    if not match:
        raise InvalidAmountError('must be an amount such as "10,50" or "1.234,56"')
    parts = _SEPARATOR.split(match.group(1))  # digits, separator, digits, ...
    fraction, decimal = "0", ""
    if len(parts) > 1 and len(parts[-1]) <= 2:
        fraction, decimal, parts = parts[-1], parts[-2], parts[:-2]
    groups, separators = parts[::2], set(parts[1::2])
    grouped = all(len(group) == 3 for group in groups[1:]) and len(groups[0]) <= 3
    if separators and (not grouped or separators == {decimal} or separators == {",", "."}):
        raise InvalidAmountError('must be an amount such as "10,50" or "1.234,56"')
    if separators == {","} and not decimal:
        raise InvalidAmountError('is ambiguous: write "1.234" for a thousand, "1,23" for cents')
    return parse_amount(f"{''.join(groups)}.{fraction.ljust(2, '0')}", limit=limit)


def format_amount(cents: int) -> str:
    """Format centavos as the API's decimal string: 123456 -> "1234.56"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def format_brl(cents: int) -> str:
    """Format centavos for people: 123456 -> "R$ 1.234,56"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}R$ {whole:,}".replace(",", ".") + f",{part:02d}"
