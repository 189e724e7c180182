"""Absolute links (payment_url, QR codes) come from PIXWEB_PUBLIC_URL, never the Host header."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from tests.support import PRODUCTION

EVIL = {"Host": "evil.example"}
DEV_DEFAULT = "http://127.0.0.1:5000"


async def create(client: Client, auth: dict[str, str], host: str | None = None) -> dict[str, Any]:
    headers = {**auth, **({"Host": host} if host else {})}
    body = {"value": "10.00", "description": "Pedido 7"}
    response = await client.post("/payments/pix", json=body, headers=headers)
    assert response.status_code == 201
    return dict(await response.get_json())


async def receive(socket: Any) -> str:
    return str(await asyncio.wait_for(socket.receive(), 2))


def links(payment: dict[str, Any]) -> list[str]:
    return [payment["payment_url"], payment["qr_code"]["png"], payment["qr_code"]["svg"]]


def assert_links_on(payment: dict[str, Any], base: str) -> None:
    pid = payment["id"]
    assert links(payment) == [
        f"{base}/payments/pix/{pid}",
        f"{base}/payments/pix/qr_code/{pid}.png",
        f"{base}/payments/pix/qr_code/{pid}.svg",
    ]


async def test_a_foreign_host_header_never_reaches_a_response(
    client: Client, auth: dict[str, str]
) -> None:
    payment = await create(client, auth, host="evil.example")
    assert_links_on(payment, DEV_DEFAULT)
    pid = payment["id"]
    for path in (f"/payments/{pid}", "/payments", f"/payments/{pid}/cancel"):
        method = client.post if path.endswith("cancel") else client.get
        response = await method(path, headers={**auth, **EVIL})
        assert response.status_code == 200
        assert "evil.example" not in (await response.get_data()).decode()
    for qr in ("png", "svg"):
        image = await client.get(f"/payments/pix/qr_code/{pid}.{qr}", headers=EVIL)
        assert image.status_code == 200 and b"evil.example" not in await image.get_data()


async def test_the_payer_page_ignores_a_foreign_host(client: Client, auth: dict[str, str]) -> None:
    payment = await create(client, auth)
    page = await client.get(f"/payments/pix/{payment['id']}", headers=EVIL)
    assert page.status_code == 200
    assert "evil.example" not in (await page.get_data()).decode()


async def test_json_sockets_never_carry_the_first_watchers_host(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    # Each process renders a payment's messages once for all its watchers: a message
    # built from the first watcher's Host would reach everyone else.
    payment = await create(client, auth)
    path = f"/ws/payments/{payment['id']}?format=json"
    async with (
        client.websocket(path, headers=EVIL) as first,
        client.websocket(path) as second,
    ):
        assert_links_on(json.loads(await receive(first))["data"], DEV_DEFAULT)
        assert_links_on(json.loads(await receive(second))["data"], "http://localhost")
        body, headers = sign({"bank_payment_id": payment["bank_payment_id"], "value": "10.00"})
        response = await client.post("/payments/pix/confirmation", data=body, headers=headers)
        assert response.status_code == 200
        for socket in (first, second):
            pushed = await receive(socket)
            assert json.loads(pushed)["event"] == f"payment-confirmed-{payment['id']}"
            assert "evil.example" not in pushed


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("localhost", "http://localhost"),
        ("localhost:5000", "http://localhost:5000"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("127.10.0.1:8000", "http://127.10.0.1:8000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("evil.example", DEV_DEFAULT),
        ("localhost.evil.example", DEV_DEFAULT),
        ("127.0.0.1@evil.example", DEV_DEFAULT),
        ("192.168.0.10:5000", DEV_DEFAULT),
        ("localhost:evil", DEV_DEFAULT),
    ],
)
async def test_development_without_a_public_url_trusts_only_loopback_hosts(
    client: Client, auth: dict[str, str], host: str, base: str
) -> None:
    assert_links_on(await create(client, auth, host=host), base)


class TestConfigured:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"public_url": "https://pix.example.com/"}

    @pytest.mark.parametrize("host", ["evil.example", "localhost:5000", "pix.example.com"])
    async def test_links_use_the_public_url_whatever_the_host(
        self, client: Client, auth: dict[str, str], host: str
    ) -> None:
        assert_links_on(await create(client, auth, host=host), "https://pix.example.com")


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return dict(PRODUCTION)

    async def test_links_use_the_public_url(
        self, app: Quart, client: Client, auth: dict[str, str]
    ) -> None:
        assert_links_on(await create(client, auth, host="evil.example"), PRODUCTION["public_url"])


ROOT = Path(__file__).resolve().parents[1]
# Quart's `request`, not an httpx response's `response.request` (the PSP client's own calls).
HOST_READERS = re.compile(
    r"(?<!\w)_external|(?<![.\w])request\.(host|url_root|host_url|base_url|url)\b|url_root"
)
# Modules that can see Quart's request at all (services never import quart: an outgoing
# httpx.Request named `request` there is the webhook sender's own).
QUART_MODULE = re.compile(r"^from quart import|^import quart", re.MULTILINE)


def test_one_function_builds_absolute_urls() -> None:
    # url_for(..., _external=True) and request.host_url follow the Host header: only
    # presenters.absolute_url may build an absolute link (relative links are fine).
    modules = [
        path for path in (ROOT / "pixweb").rglob("*.py") if QUART_MODULE.search(path.read_text())
    ]
    sources = [*modules, *(ROOT / "templates").rglob("*.html")]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        if path.name != "presenters.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HOST_READERS.search(line)
    ]
    assert found == [], "use pixweb.presenters.absolute_url instead"
