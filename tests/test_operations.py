"""Operations: health, readiness, metrics, request logs and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.app import create_app
from tests.e2e.harness import Server
from tests.support import PRODUCTION


async def test_healthz_says_the_process_is_up(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_readyz_checks_database_and_broker(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok", "database": True, "broker": True}


class TestNotReady:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        # Nothing listens on port 1: the broker cannot be reached.
        return {"broker_url": "redis://127.0.0.1:1/0"}

    async def test_unreachable_broker_is_503(self, client: Client) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = await response.get_json()
        assert body == {"status": "unavailable", "database": True, "broker": False}


async def test_metrics_count_requests_sockets_and_pushes(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    created = await client.post("/payments/pix", json={"value": "5.00"}, headers=auth)
    payment = await created.get_json()
    async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
        await asyncio.wait_for(socket.receive(), 2)
        open_now = (await (await client.get("/metrics")).get_data()).decode()
        assert 'pixweb_open_websockets{kind="payment"} 1.0' in open_now
        body, headers = sign({"bank_payment_id": payment["bank_payment_id"], "value": "5.00"})
        await client.post("/payments/pix/confirmation", data=body, headers=headers)
        await asyncio.wait_for(socket.receive(), 2)
    text = (await (await client.get("/metrics")).get_data()).decode()
    route = 'method="POST",route="/payments/pix",status="201"'
    assert f"pixweb_http_requests_total{{{route}}} 1.0" in text
    assert "pixweb_confirmation_push_seconds_count 1.0" in text
    assert 'pixweb_broker_events_total{outcome="published"}' in text
    assert 'pixweb_open_websockets{kind="payment"} 0.0' in text


async def test_every_response_carries_a_request_id(client: Client) -> None:
    response = await client.get("/healthz")
    assert len(response.headers["X-Request-ID"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    forged = await client.get("/healthz", headers={"X-Request-ID": '"}, "admin": true'})
    assert len(forged.headers["X-Request-ID"]) == 32  # replaced, never logged as sent


class TestProductionLogs:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return dict(PRODUCTION)

    async def test_one_json_line_per_request(
        self, app: Quart, client: Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        logger = logging.getLogger("pixweb.access")
        logger.addHandler(caplog.handler)  # the access logger does not propagate
        try:
            with caplog.at_level(logging.INFO, logger="pixweb.access"):
                response = await client.get("/healthz", headers={"X-Request-ID": "req-1"})
        finally:
            logger.removeHandler(caplog.handler)
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pixweb.access"]
        assert len(lines) == 1
        assert lines[0]["request_id"] == "req-1" == response.headers["X-Request-ID"]
        assert (lines[0]["method"], lines[0]["route"], lines[0]["status"]) == (
            "GET",
            "/healthz",
            200,
        )

    @pytest.mark.parametrize(
        ("trusted", "logged"), [((), "127.0.0.1"), (("127.0.0.1/32",), "203.0.113.9")]
    )
    async def test_the_log_names_the_client_behind_a_trusted_proxy_only(
        self,
        app_overrides: dict[str, Any],
        database_url: str,
        caplog: pytest.LogCaptureFixture,
        trusted: tuple[str, ...],
        logged: str,
    ) -> None:
        application = create_app(
            {
                **app_overrides,
                "testing": True,
                "database_url": database_url,
                "auto_migrate": True,
                "trusted_proxies": ",".join(trusted),
            }
        )
        logger = logging.getLogger("pixweb.access")
        logger.addHandler(caplog.handler)
        try:
            async with application.test_app():
                with caplog.at_level(logging.INFO, logger="pixweb.access"):
                    await application.test_client().get(
                        "/healthz",
                        headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
                        scope_base={"client": ("127.0.0.1", 50000)},
                    )
        finally:
            logger.removeHandler(caplog.handler)
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pixweb.access"]
        assert [line["remote"] for line in lines] == [logged]


def test_a_log_stream_that_stops_taking_lines_stalls_no_request(tmp_path: Path) -> None:
    """Production logs a JSON line per request to stderr. A pipe nobody reads (a stuck log
    collector) fills after a few hundred lines; a write there then blocks, and must block
    only the thread that writes the log, not the event loop serving every request."""
    unread, output = os.pipe()
    server = Server(tmp_path, environment="production", output=output)
    try:
        server.start()
        for n in range(2_000):  # ~150 bytes a line: 300 KB, several times a pipe's 64 KiB
            with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
                assert response.status == 200, n
        os.set_blocking(unread, False)
        written = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(unread, 1 << 16):
                written += chunk
        assert b'"route": "/healthz"' in written
        assert len(written) > 60_000  # the pipe (64 KiB) had filled: its writer was stuck
    finally:
        reader = threading.Thread(target=_drain, args=(unread,), daemon=True)
        reader.start()  # let the log's thread finish, so the server stops in time
        server.stop()
        os.close(output)
        reader.join(5)  # the pipe's end: the server and this process closed their ends
        os.close(unread)


def _drain(descriptor: int) -> None:
    os.set_blocking(descriptor, True)
    with contextlib.suppress(OSError):
        while os.read(descriptor, 1 << 16):
            pass


async def test_sigterm_closes_sockets_with_1012_then_exits(tmp_path: Path) -> None:
    """htmx's ws extension reconnects after 1012 (not 1001): pages move to a live worker."""
    import websockets

    server = Server(tmp_path)
    await asyncio.to_thread(server.start)
    try:
        async with websockets.connect(server.url.replace("http", "ws") + "/ws") as socket:
            await asyncio.wait_for(socket.recv(), 5)  # conexao
            assert server.process is not None
            server.process.terminate()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert await asyncio.to_thread(server.process.wait, 10) == 0
    finally:
        await asyncio.to_thread(server.stop)


def test_the_server_listens_with_room_for_a_reconnect_storm(tmp_path: Path) -> None:
    """Thousands of payer pages reconnecting after a deploy: the kernel's accept queue holds
    them (hypercorn's default of 100 dropped handshakes, which then waited 1-7 s to retry)."""
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    from pixweb.serving import LISTEN_BACKLOG

    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    server = Server(tmp_path)
    server.start()
    try:
        port = urlsplit(server.url).port
        listing = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert int(listing[2]) == min(LISTEN_BACKLOG, somaxconn) > 100  # Send-Q: the backlog
    finally:
        server.stop()
