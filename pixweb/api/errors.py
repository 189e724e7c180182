"""Every API failure as JSON `{"error", "detail", "fields"?}`: one table of statuses."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import Response, jsonify
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing.exceptions import WebsocketMismatch

from pixweb.errors import (
    AuthenticationError,
    ConflictError,
    EncryptionError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PixwebError,
    PspAuthError,
    PspError,
    PspTlsError,
    PspUnavailableError,
    RateLimitedError,
    UnprocessableError,
)
from pixweb.jsonload import TooDeepError

log = logging.getLogger(__name__)

STATUS: dict[type[PixwebError], int] = {
    InvalidInputError: 400,
    AuthenticationError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    UnprocessableError: 422,
    RateLimitedError: 429,
    # The merchant's PSP (a PspRejectedError is an UnprocessableError: 422). Refused
    # credentials or certificate are the merchant's to fix, not a gateway failure: 422.
    PspUnavailableError: 503,
    PspTlsError: 422,
    PspAuthError: 422,
    PspError: 502,
    EncryptionError: 500,
}


def error_response(
    status: int,
    code: str,
    detail: str,
    fields: dict[str, Any] | None = None,
    *,
    retry_after: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Build the JSON error body every API route answers with."""
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    body.update(extra or {})
    if retry_after is not None:
        body["retry_after"] = retry_after
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_pixweb_error(error: PixwebError) -> Response:
    """Map a domain error to its status by the nearest class in STATUS."""
    status = next((s for cls, s in STATUS.items() if isinstance(error, cls)), 400)
    retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
    extra: dict[str, Any] = {}
    if isinstance(error, PspError):  # where the PSP failed, and its own status
        extra = {"step": error.step, "psp_status": error.psp_status}
    return error_response(
        status, error.code, error.detail, error.fields, retry_after=retry_after, extra=extra
    )


# pydantic error types meaning the body (or query) itself is not an object.
NOT_AN_OBJECT = {"model_type", "model_attributes_type", "dict_type"}


def _field_errors(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(name, item["msg"].removeprefix("Value error, "))
    return fields


def handle_validation_error(error: RequestSchemaValidationError) -> Response:
    """Turn quart-schema's bare 400 into one that names each bad field."""
    cause = error.validation_error
    if isinstance(cause, ValidationError):
        if any(item["type"] in NOT_AN_OBJECT for item in cause.errors()):
            return error_response(400, "invalid_body", "the body must be a JSON object")
        fields = _field_errors(cause)
        if "body" in fields:  # a rule across fields (a model validator) says it best
            return error_response(400, "invalid_input", fields["body"], fields)
        names = ", ".join(sorted(fields))
        return error_response(400, "invalid_input", f"invalid fields: {names}", fields)
    return error_response(400, "invalid_input", str(cause))


def handle_http_error(error: HTTPException) -> Response:
    """Answer routing and protocol errors (404, 405, malformed JSON...) in JSON."""
    status = error.code or 500
    if isinstance(error, WebsocketMismatch):  # a plain request to a socket's path
        return error_response(
            400, "websocket_required", "this path only accepts WebSocket connections"
        )
    if status == 400:
        # Quart raises BadRequest while handling the parser's error: say what it was.
        cause = error.__context__
        detail = str(cause) if isinstance(cause, TooDeepError) else "the body is not valid JSON"
        return error_response(400, "invalid_body", detail)
    code = (error.name or "error").lower().replace(" ", "_")
    response = error_response(status, code, error.description or code)
    # A 405 names the methods the resource has (RFC 9110): keep werkzeug's Allow header.
    response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() == "allow")
    return response


def handle_unexpected_error(error: Exception, request_id: str) -> Response:
    """Log the traceback under the request's id; tell the client only the id."""
    log.error(
        "unhandled error, request id %s",
        request_id,
        exc_info=error,
        extra={"request_id": request_id},
    )
    return error_response(500, "internal_error", f"unexpected error (request id {request_id})")
