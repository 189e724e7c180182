"""Field types shared by the API's request models."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic.config import JsonDict
from quart import request

from pixweb import money, validation
from pixweb.errors import InvalidAmountError, InvalidInputError

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_MAX = 255
# Movement and notification ids: a larger cursor would overflow the query, not just miss.
DB_ID_MAX = validation.BIGINT_MAX


# The services refuse control characters in text (validation.check_text): the document says
# so. Trimmed fields (names, e-mails, Pix keys) are checked once trimmed, so whitespace controls
# (tab, line breaks...) may stand at either end.
TEXT: JsonDict = {"pattern": r"^[^\x00-\x1f\x7f-\x9f]*$"}
TRIMMED_TEXT: JsonDict = {
    "pattern": r"^[\t-\r\x1c-\x1f\x85]*[^\x00-\x1f\x7f-\x9f]*[\t-\r\x1c-\x1f\x85]*$"
}


class IdempotencyHeaders(BaseModel):
    """Documents the header every money-moving route honours."""

    idempotency_key: str | None = Field(
        None, max_length=IDEMPOTENCY_MAX, json_schema_extra={"pattern": "^[ -~]*$"}
    )


def idempotency_key() -> str | None:
    """The request's Idempotency-Key (printable ASCII, at most 255 characters), if any."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not key:
        return None
    if len(key) > IDEMPOTENCY_MAX or not key.isprintable() or not key.isascii():
        message = f"must be 1 to {IDEMPOTENCY_MAX} printable ASCII characters"
        raise InvalidInputError(
            f"{IDEMPOTENCY_HEADER} {message}", fields={"Idempotency-Key": message}
        )
    return key


def _amount(value: Any) -> int:
    try:
        return money.parse_amount(value)
    except InvalidAmountError as exc:
        # pydantic reports ValueError as a field error naming the field.
        raise ValueError(exc.detail) from exc


AMOUNT_PATTERN = r"^(0*[1-9][0-9]{0,5}(\.[0-9]{1,2})?|0*1000000(\.00?)?|0+\.(0[1-9]|[1-9][0-9]?))$"
# A positive amount with at most two decimals, as a JSON number or a "100.00" string;
# the app's JSON loader reads numbers as Decimal, so no float ever holds money.
Amount = Annotated[
    int,
    BeforeValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                # Above zero and up to 1000000.00, leading zeros allowed, as parse_amount reads.
                {"type": "string", "pattern": AMOUNT_PATTERN},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1_000_000,
                    "multipleOf": 0.01,
                },
            ],
            "examples": ["100.00"],
            "description": "Amount in reais, at most two decimals, up to 1000000.00",
        }
    ),
]


def _integer(value: Any) -> Any:
    # The JSON loader reads 3600.0 as Decimal("3600.0"), which strict models refuse as an int.
    # Bounded, so that 1e999999 is refused rather than expanded into a million digits.
    bounded = isinstance(value, Decimal) and value.is_finite() and abs(value) < 10**18
    return int(value) if bounded and value == value.to_integral_value() else value


# Reads an integer as JSON Schema means one: 3600 or 3600.0, never 3600.5, "3600" or true.
# Put it after the field's constraints (`Annotated[int, Field(ge=1), INTEGER]`): before them,
# pydantic writes them into the document as "ge"/"le" instead of minimum/maximum.
INTEGER = BeforeValidator(_integer)

# RFC 3339 is what the document's "format: date-time" means. pydantic alone also takes "0.5"
# (a Unix time), "2024-05-01 12:00Z" and other forms the document rules out.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with a time zone: 2024-05-01T12:00:00Z")
    return value


# A date-time with its time zone, written as RFC 3339 says.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
