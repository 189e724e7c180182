"""The app's error handlers: JSON for the API, pages for browsers, a refusal or a close for
sockets.

Quart runs the same handlers for HTTP requests and WebSocket handshakes, and a socket has
no `request`: everything here first asks which of the two it is serving.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from quart import Quart, Response, current_app, has_websocket_context, request, websocket
from quart.wrappers import Websocket
from quart_schema import RequestSchemaValidationError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing.exceptions import WebsocketMismatch

from pixweb import observability
from pixweb.api import errors as api_errors
from pixweb.errors import AuthenticationError, ForbiddenError, NotFoundError, PixwebError
from pixweb.web import errors as web_errors

CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011


class TrackedWebsocket(Websocket):
    """Quart's websocket, remembering whether it was accepted and closed, so a failing
    socket handler is refused with an HTTP error before the handshake and closed after."""

    accepted = False
    closed = False

    async def accept(
        self, headers: dict[str, str] | Headers | None = None, subprotocol: str | None = None
    ) -> None:
        await super().accept(headers, subprotocol)
        self.accepted = True

    async def close(self, code: int, reason: str = "") -> None:
        await super().close(code, reason)
        self.closed = True


def init_app(app: Quart) -> None:
    """Register the handlers, and the websocket class they rely on."""
    app.websocket_class = TrackedWebsocket

    @app.errorhandler(PixwebError)
    async def pixweb_error(error: PixwebError) -> Any:
        if has_websocket_context():
            return await _socket_error(error)
        if _wants_html():
            if isinstance(error, NotFoundError):
                return await web_errors.error_page(404)
            if isinstance(error, AuthenticationError):
                return web_errors.to_login()
            if isinstance(error, ForbiddenError):
                return await web_errors.error_page(403)
        return api_errors.handle_pixweb_error(error)

    @app.errorhandler(RequestSchemaValidationError)
    async def validation_error(error: RequestSchemaValidationError) -> Response:
        return api_errors.handle_validation_error(error)

    @app.errorhandler(UnicodeDecodeError)
    async def undecodable_body(error: UnicodeDecodeError) -> Any:
        if has_websocket_context():
            return await _socket_error(error)
        # Quart decodes the body as UTF-8 before parsing JSON, outside its error handling.
        return api_errors.error_response(400, "invalid_body", "the body is not UTF-8 JSON")

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        if has_websocket_context():
            return await _socket_error(error)
        if _wants_html():
            return await web_errors.error_page(error.code or 500)
        return api_errors.handle_http_error(error)

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Any:
        if has_websocket_context():
            return await _socket_error(error)
        response = api_errors.handle_unexpected_error(error, observability.request_id())
        if _wants_html():
            return await web_errors.error_page(500, request_id=observability.request_id())
        return response


async def _socket_error(error: Exception) -> Response | None:
    """Before the handshake is accepted, refuse it with the JSON error (a 404 for an unknown
    path); after, close the socket: 1008 for a refusal, 1011 for a failure (logged once)."""
    if isinstance(error, NotFound | MethodNotAllowed | WebsocketMismatch):
        # No socket route matched (or only a page's did): for a socket, nothing is there.
        detail = "no WebSocket endpoint at this path"
        response, code = api_errors.error_response(404, "not_found", detail), CLOSE_POLICY
    elif isinstance(error, PixwebError):
        response, code = api_errors.handle_pixweb_error(error), CLOSE_POLICY
    elif isinstance(error, HTTPException):
        response, code = api_errors.handle_http_error(error), CLOSE_POLICY
    else:
        request_id = observability.request_id()
        response = api_errors.handle_unexpected_error(error, request_id)
        code = CLOSE_INTERNAL_ERROR
    socket = cast(TrackedWebsocket, websocket._get_current_object())  # type: ignore[attr-defined]
    if not socket.accepted:
        return response
    if not socket.closed:
        # The client may be gone already: a failed close is not worth a second traceback.
        with contextlib.suppress(Exception):
            await socket.close(code, "internal error" if code == CLOSE_INTERNAL_ERROR else "")
    return None


def _blueprint() -> str | None:
    """The blueprint of the request's path, even when its method did not match (405)."""
    if request.blueprint is not None:
        return request.blueprint
    adapter = current_app.create_url_adapter(request)
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            endpoint, _ = adapter.match(method=method)  # type: ignore[union-attr]
        except HTTPException:
            continue
        return str(endpoint).partition(".")[0]
    return None


def _wants_html() -> bool:
    blueprint = _blueprint()
    if blueprint is not None:
        return blueprint.startswith("web_")
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"
