"""What the OpenAPI document says beyond the request and response models.

Every status a route answers is declared, errors included, so that a client generated from
`/openapi.json` (and schemathesis, in `tests/test_openapi_schemathesis.py`) finds no surprise;
and the responses that are not JSON (QR images, Prometheus text) carry their media type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import BaseConverter, Rule, UnicodeConverter, UUIDConverter

from pixweb.deps import LOGIN_ONLY, SCOPE_ATTRIBUTE

T = TypeVar("T", bound=Callable[..., Any])

MEDIA_ATTRIBUTE = "_pixweb_media_responses"


class ErrorOut(BaseModel):
    """An error: a stable code, a sentence, and the fields at fault when there are some."""

    error: str = Field(examples=["invalid_input"])
    detail: str
    fields: dict[str, str] | None = Field(None, description="A message per field at fault")
    retry_after: int | None = Field(None, description="429 only: seconds to wait")
    step: str | None = Field(
        None,
        description="The merchant's PSP failing only: where (tls, token, permission, webhook, "
        "cob, pix, devolucao)",
    )
    psp_status: int | None = Field(None, description="The PSP's own HTTP status, if it answered")


ERRORS_ATTRIBUTE = "_pixweb_error_statuses"
ERROR_SCHEMA = "Error"

# What each status means on every route that declares it.
ERROR_MEANINGS = {
    400: "Invalid input: the body, query or a header breaks a rule `detail` and `fields` name",
    401: "Missing, invalid or expired credentials (bearer token or bank signature)",
    403: "Forbidden: an API key without the route's scope (`detail` names it)",
    404: "No such resource (or not this merchant's)",
    409: "Conflicts with the current state, or an Idempotency-Key reused for another request",
    413: "The body exceeds 64 KiB",
    422: "Understood but refused by a business rule (balance, amount, state)",
    429: "Too many attempts: wait `retry_after` seconds (also in the Retry-After header)",
    502: "The merchant's PSP answered what pixweb cannot use (`step` says where)",
    503: "The merchant's PSP could not be reached or kept failing (`step` says where)",
}


def errors(*statuses: int) -> Callable[[T], T]:
    """Declare the error statuses a route answers beyond those its shape implies."""

    def decorate(func: T) -> T:
        setattr(func, ERRORS_ATTRIBUTE, getattr(func, ERRORS_ATTRIBUTE, frozenset()) | {*statuses})
        return func

    return decorate


def media(status: int, *media_types: str, description: str = "") -> Callable[[T], T]:
    """Declare a response that is not JSON: its status and media types (a string body)."""

    def decorate(func: T) -> T:
        responses = dict(getattr(func, MEDIA_ATTRIBUTE, {}))
        responses[status] = (media_types, description)
        setattr(func, MEDIA_ATTRIBUTE, responses)
        return func

    return decorate


def _implied_errors(operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation answers because of its shape alone."""
    statuses = set()
    if operation.get("security"):
        statuses.add(401)  # bearer_required
    if "requestBody" in operation:
        statuses |= {400, 413}  # a body that breaks its model, or over MAX_CONTENT_LENGTH
    locations = {parameter["in"] for parameter in operation.get("parameters", [])}
    if locations & {"query", "header"}:
        statuses.add(400)
    if "path" in locations:
        statuses.add(404)  # a path parameter naming nothing (or a malformed one: no route)
    return statuses


# What a text path segment can hold: werkzeug's string converter takes no "/", and the services
# refuse control characters (validation.check_text) or find nothing under them.
PATH_TEXT_PATTERN = r"^[^/\x00-\x1f\x7f-\x9f]+$"


class Provider(OpenAPIProvider):
    """quart-schema's document, plus each route's implied errors and its `media` responses.

    Implied errors follow from what the route declares (credentials: 401; a body: 400 and
    413; query or header parameters: 400; path parameters: 404), so a new route cannot
    forget them; `errors` declares the rest (409, 422, 429...).
    """

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, UUIDConverter):
            parameter["schema"] = {"type": "string", "format": "uuid"}
        elif isinstance(converter, UnicodeConverter):
            parameter["schema"] = {"type": "string", "pattern": PATH_TEXT_PATTERN}
        return parameter

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        declared = set(getattr(func, ERRORS_ATTRIBUTE, ()))
        media_responses = getattr(func, MEDIA_ATTRIBUTE, {})
        scope = getattr(func, SCOPE_ATTRIBUTE, None)
        for operations in paths.values():
            for operation in operations.values():
                if scope is not None:
                    _document_scope(operation, scope)
                    declared.add(403)
                if "requestBody" in operation:
                    # validate_request refuses a missing body (400): the body is required.
                    operation["requestBody"] = {**operation["requestBody"], "required": True}
                responses = operation["responses"] = dict(operation["responses"])
                for status in sorted((_implied_errors(operation) | declared) - set(responses)):
                    responses[status] = _error_response(status)
                for status, (media_types, description) in media_responses.items():
                    content = {kind: {"schema": {"type": "string"}} for kind in media_types}
                    responses[status] = {"description": description, "content": content}
        components[ERROR_SCHEMA] = ErrorOut.model_json_schema(mode="serialization")
        return paths, components


def _document_scope(operation: dict[str, Any], scope: str) -> None:
    """Name the route's scope in its security requirement (OpenAPI 3.1 lets a bearer scheme
    list roles) and in its description."""
    if scope == LOGIN_ONLY:
        operation["security"] = [{"bearer": []}]
        note = "Needs a logged-in merchant's token (`/auth/login`): an API key is refused."
    else:
        operation["security"] = [{"bearer": [scope]}]
        note = f"API key scope: `{scope}`."
    operation["description"] = "\n\n".join(filter(None, (operation.get("description"), note)))


def _error_response(status: int) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    return {
        "description": ERROR_MEANINGS[status],
        "content": {"application/json": {"schema": schema}},
    }
