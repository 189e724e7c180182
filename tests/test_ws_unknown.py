"""WebSocket handshakes that match no socket route, and sockets whose handler fails: a clean
404 or close, one log line at most, never a second traceback from the error handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from quart import Quart, websocket
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError
from quart.typing import TestClientProtocol as Client

from pixweb.observability import REQUEST_ID_HEADER


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def refused(client: Client, path: str, **kwargs: Any) -> Any:
    """Open a socket the server refuses before accepting: the HTTP response it sent."""
    with pytest.raises(WebsocketResponseError) as answer:
        async with client.websocket(path, **kwargs) as socket:
            await asyncio.wait_for(socket.receive(), 2)
    return answer.value.response


@pytest.mark.parametrize(
    "path",
    [
        "/ws/nonexistent",
        "/ws/payments/not-a-uuid",
        "/ws/payments/",
        "/nonexistent",
        "/ws/dashboard/extra",
    ],
)
async def test_unknown_socket_path_is_a_clean_404(
    client: Client, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await refused(client, path)
    assert response.status_code == 404
    body = await response.get_json()
    assert body["error"] == "not_found"
    assert not errors_logged(caplog)


async def test_socket_handshake_to_a_page_is_refused_cleanly(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await refused(client, "/login")
    assert response.status_code == 404
    body = await response.get_json()
    assert body["error"] == "not_found" and "WebSocket" in body["detail"]
    assert not errors_logged(caplog)


async def test_plain_get_of_a_socket_path_names_the_problem(client: Client) -> None:
    response = await client.get("/ws/dashboard", headers={"Accept": "application/json"})
    assert response.status_code == 400
    body = await response.get_json()
    assert "WebSocket" in body["detail"] and "JSON" not in body["detail"]


# --- a socket handler that fails -----------------------------------------------------------


def add_failing_sockets(app: Quart) -> None:
    @app.websocket("/test-only/ws/fails-after-accept")
    async def fails_after_accept() -> None:
        await websocket.accept()
        await websocket.send("hello")
        raise RuntimeError("boom after accept")

    @app.websocket("/test-only/ws/fails-before-accept")
    async def fails_before_accept() -> None:
        raise RuntimeError("boom before accept")

    @app.websocket("/test-only/ws/closes-then-fails")
    async def closes_then_fails() -> None:
        await websocket.accept()
        await websocket.close(1000)
        raise RuntimeError("boom after close")


def one_error_with_the_request_id(caplog: pytest.LogCaptureFixture, request_id: str) -> None:
    errors = errors_logged(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert request_id in errors[0].getMessage()
    assert errors[0].exc_info is not None and "boom" in str(errors[0].exc_info[1])


async def test_failure_after_accept_closes_1011_and_logs_once(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    add_failing_sockets(app)
    client = app.test_client()
    headers = {REQUEST_ID_HEADER: "ws-req-1"}
    with caplog.at_level(logging.WARNING):
        async with client.websocket("/test-only/ws/fails-after-accept", headers=headers) as ws:
            assert await asyncio.wait_for(ws.receive(), 2) == "hello"
            with pytest.raises(WebsocketDisconnectError) as closed:
                await asyncio.wait_for(ws.receive(), 2)
    assert closed.value.args[0] == 1011
    one_error_with_the_request_id(caplog, "ws-req-1")


async def test_failure_before_accept_is_refused_and_logged_once(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    add_failing_sockets(app)
    client = app.test_client()
    headers = {REQUEST_ID_HEADER: "ws-req-2"}
    with caplog.at_level(logging.WARNING):
        response = await refused(client, "/test-only/ws/fails-before-accept", headers=headers)
    assert response.status_code == 500
    assert response.headers[REQUEST_ID_HEADER] == "ws-req-2"
    assert "ws-req-2" in (await response.get_json())["detail"]
    one_error_with_the_request_id(caplog, "ws-req-2")


async def test_failure_after_close_logs_once(app: Quart, caplog: pytest.LogCaptureFixture) -> None:
    add_failing_sockets(app)
    client = app.test_client()
    headers = {REQUEST_ID_HEADER: "ws-req-3"}
    with caplog.at_level(logging.WARNING):
        async with client.websocket("/test-only/ws/closes-then-fails", headers=headers) as ws:
            with pytest.raises(WebsocketDisconnectError) as closed:
                await asyncio.wait_for(ws.receive(), 2)
    assert closed.value.args[0] == 1000
    one_error_with_the_request_id(caplog, "ws-req-3")
