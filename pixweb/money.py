"""Money: integer centavos in the domain, "1234.56" strings at the edges."""

from __future__ import annotations

import re
from decimal import Decimal

from pixweb.errors import InvalidAmountError

MAX_CENTS = 100_000_000  # R$ 1,000,000.00 per operation
_AMOUNT_TEXT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


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
