"""The "Webhooks" page in Chromium against a real development server and its delivery worker:
register an endpoint (the secret shown once), then a test event sent through the API appears
in the open page's log and turns "entregue" live as the worker delivers it to a local
receiver, which verifies the Standard Webhooks signature with the secret the page showed;
"Reenviar" delivers the same event id again."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from tests.e2e.harness import Recorded, Server, register_in_browser

LIVE = 10_000  # the worker's wake-up, the POST, the attempt's push


class Receiver:
    """A merchant's endpoint on 127.0.0.1: records each POST and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                answer = b'{"recebido": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/webhooks/pix"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's server, allowed to deliver to the receiver on 127.0.0.1."""
    running = Server(tmp_path_factory.mktemp("pixweb"), env={"PIXWEB_ALLOW_PRIVATE_URLS": "1"})
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    try:
        yield running
    finally:
        running.http.shutdown()
        running.http.server_close()


def test_a_test_event_is_delivered_and_shown_live(
    server: Server,
    new_tab: Callable[..., Page],
    recorded: Recorded,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    shots = Path(os.environ.get("PIXWEB_SHOTS", tmp_path))
    tab = new_tab("a")
    register_in_browser(tab, server, "webhooks@loja.example", "Loja Webhooks")
    tab.get_by_role("link", name="Webhooks").click()
    expect(tab).to_have_title("Webhooks · Loja Webhooks · pixweb")
    expect(tab.locator("#connection")).to_have_class("connection online", timeout=5_000)
    tab.evaluate("window.__marker = 1")  # gone if the page ever reloads

    form = tab.locator("#webhook-form")
    form.locator("input[name=url]").fill(receiver.url)
    form.get_by_label("Cobrança paga").check()
    form.get_by_label("Pix recebido").check()
    form.locator("input[name=description]").fill("Loja virtual")
    form.get_by_role("button", name="Cadastrar webhook").click()
    secret = tab.locator("#new-secret-value").inner_text()
    assert secret.startswith("whsec_")
    expect(tab.locator(".endpoint-url")).to_have_text(receiver.url)
    expect(tab.locator(".endpoint-status")).to_contain_text("ativo")

    token = server.login("webhooks@loja.example")
    auth = {"Authorization": f"Bearer {token}"}
    status, listed = server.call("GET", "/webhook-endpoints", headers=auth)
    endpoint_id = listed["items"][0]["id"]
    status, test = server.call("POST", f"/webhook-endpoints/{endpoint_id}/test", headers=auth)
    assert status == 201, test

    row = tab.locator(f"#delivery-{test['id']}")
    expect(row).to_be_visible(timeout=LIVE)  # pushed: the page was not asked
    expect(row.locator(".badge")).to_have_text("entregue", timeout=LIVE)
    expect(row.locator(".http")).to_have_text("HTTP 200")
    expect(row.locator(".attempts")).to_have_text("1 tentativa")
    assert tab.evaluate("window.__marker") == 1

    headers, body = receiver.requests[0]
    assert headers["webhook-id"] == test["event_id"]
    event = Webhook(secret).verify(body, headers)  # raises on a bad signature
    assert event["type"] == "webhook.test" and event["id"] == test["event_id"]

    row.locator("summary").click()
    expect(row.locator(".attempts-list li")).to_have_count(1)
    expect(row.locator("pre.answer")).to_have_text('{"recebido": true}')
    tab.screenshot(path=str(shots / "webhooks.png"), full_page=True)

    row.get_by_role("button", name="Reenviar").click()
    expect(tab.locator("#webhooks .form-success")).to_have_text(
        "Evento reenviado: acompanhe no registro."
    )
    rows = tab.locator(f"#deliveries-{endpoint_id} .delivery")
    expect(rows).to_have_count(2, timeout=LIVE)
    expect(rows.first.locator(".badge")).to_have_text("entregue", timeout=LIVE)
    assert len(receiver.requests) == 2
    assert receiver.requests[1][0]["webhook-id"] == test["event_id"]  # the same event
    assert json.loads(receiver.requests[1][1])["id"] == test["event_id"]
    assert tab.evaluate("window.__marker") == 1
    assert not recorded.console_errors and not recorded.page_errors, recorded.summary()
