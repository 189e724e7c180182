"""The PixwebError tree: every domain failure pixweb raises on purpose.

Each class carries a stable `code` (sent to API clients as `error`) and the layers
at the edge (api/, web/, ws) map classes to HTTP statuses or socket events.
"""

from __future__ import annotations

from typing import Any


class PixwebError(Exception):
    """Base of every error pixweb raises on purpose."""

    code = "error"

    def __init__(self, detail: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields


class InvalidInputError(PixwebError):
    """The input is malformed or of the wrong type (HTTP 400)."""

    code = "invalid_input"


class BRCodeError(InvalidInputError):
    """A text cannot be read as a BR Code, or a BR Code cannot be built from the inputs."""

    code = "invalid_brcode"


class InvalidPixKeyError(InvalidInputError):
    """A Pix key does not match any DICT format or fails its check digits."""

    code = "invalid_pix_key"


class InvalidAmountError(InvalidInputError):
    """An amount is not a positive value with at most two decimals within the limits."""

    code = "invalid_amount"


class AuthenticationError(PixwebError):
    """Missing, invalid or expired credentials (HTTP 401)."""

    code = "unauthorized"


class SignatureError(AuthenticationError):
    """A webhook call without a valid HMAC signature (HTTP 401)."""

    code = "invalid_signature"


class ForbiddenError(PixwebError):
    """Authenticated, or not, but this request is not allowed: a bad CSRF token (HTTP 403)."""

    code = "forbidden"


class NotFoundError(PixwebError):
    """The resource does not exist, or is not visible to the caller (HTTP 404)."""

    code = "not_found"


class ConflictError(PixwebError):
    """The request clashes with the resource's current state (HTTP 409)."""

    code = "conflict"


class UnprocessableError(PixwebError):
    """Well-formed input that the business rules refuse (HTTP 422)."""

    code = "unprocessable"


class RateLimitedError(PixwebError):
    """Too many attempts: the client may try again after `retry_after` seconds (HTTP 429)."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
