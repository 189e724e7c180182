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


class ControlCharacterError(InvalidInputError):
    """Text holds a control character (NUL, ESC, a line break...) or an unpaired surrogate:
    refused before any database or socket sees it (HTTP 400)."""

    code = "invalid_characters"


class AuthenticationError(PixwebError):
    """Missing, invalid or expired credentials (HTTP 401)."""

    code = "unauthorized"


class SignatureError(AuthenticationError):
    """A webhook call without a valid HMAC signature (HTTP 401)."""

    code = "invalid_signature"


class ForbiddenError(PixwebError):
    """Authenticated, or not, but this request is not allowed: a bad CSRF token (HTTP 403)."""

    code = "forbidden"


class InsufficientScopeError(ForbiddenError):
    """An API key calls a route outside its scopes; the detail names the scope (HTTP 403)."""

    code = "insufficient_scope"


class NotFoundError(PixwebError):
    """The resource does not exist, or is not visible to the caller (HTTP 404)."""

    code = "not_found"


class ConflictError(PixwebError):
    """The request clashes with the resource's current state (HTTP 409)."""

    code = "conflict"


class UnprocessableError(PixwebError):
    """Well-formed input that the business rules refuse (HTTP 422)."""

    code = "unprocessable"


class UnsafeUrlError(UnprocessableError):
    """A URL pixweb's server would call refused: plain http where https is required, or a
    host on a loopback, private, link-local or otherwise non-public address (HTTP 422)."""

    code = "url_refused"


class RateLimitedError(PixwebError):
    """Too many attempts: the client may try again after `retry_after` seconds (HTTP 429)."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PspError(PixwebError):
    """The merchant's PSP failed a call, or answered what pixweb cannot use (HTTP 502).

    `step` names where it failed, for the page and the logs: "tls", "token", "permission",
    or the API Pix resource called ("cob", "pix", "devolucao", "webhook"). `psp_status` is the
    PSP's HTTP status when it answered; `violacoes` its RFC 7807 violations, if any.
    """

    code = "psp_error"

    def __init__(
        self,
        detail: str,
        *,
        step: str,
        psp_status: int | None = None,
        violacoes: list[dict[str, str | None]] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{step}: {detail}", fields=fields)
        self.step = step
        self.psp_status = psp_status
        self.violacoes = violacoes or []


class PspUnavailableError(PspError):
    """The PSP could not be reached, timed out or kept failing (5xx) after retries (HTTP 503)."""

    code = "psp_unavailable"


class PspTlsError(PspError):
    """The mTLS handshake failed: the PSP refused the client certificate, or its own
    certificate is not trusted (HTTP 502)."""

    code = "psp_tls_error"


class PspAuthError(PspError):
    """The PSP refused the client credentials or the token, or denied the call (HTTP 502)."""

    code = "psp_auth_error"


class PspRejectedError(PspError, UnprocessableError):
    """The PSP refused the request (4xx): the detail names its `violacoes` (HTTP 422)."""

    code = "psp_rejected"


class PspNotFoundError(PspRejectedError):
    """The PSP does not know the resource (404): a txid, an e2eid, a refund, a webhook."""

    code = "psp_not_found"


class EncryptionError(PixwebError):
    """A secret cannot be encrypted or decrypted: a malformed or wrong PIXWEB_ENCRYPTION_KEY,
    or a ciphertext that was altered or belongs to another record."""

    code = "encryption_error"
