"""Field types shared by the API's request models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from quart import request

from pixweb import money, validation
from pixweb.errors import InvalidAmountError, InvalidInputError

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_MAX = 255
# Movement and notification ids: a larger cursor would overflow the query, not just miss.
DB_ID_MAX = validation.BIGINT_MAX


class IdempotencyHeaders(BaseModel):
    """Documents the header every money-moving route honours."""

    idempotency_key: str | None = Field(None, max_length=IDEMPOTENCY_MAX)


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


# A positive amount with at most two decimals, as a JSON number or a "100.00" string;
# the app's JSON loader reads numbers as Decimal, so no float ever holds money.
Amount = Annotated[
    int,
    BeforeValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$"},
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000},
            ],
            "examples": ["100.00"],
            "description": "Amount in reais, at most two decimals, up to 1000000.00",
        }
    ),
]
