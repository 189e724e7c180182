"""The payer's page and the sandbox, through the test client."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.models import Payment, PaymentStatus
from pixweb.pix import brcode
from tests.support import PRODUCTION

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def create(client: Client, auth: dict[str, str], value: str = "1234.56") -> dict[str, Any]:
    response = await client.post(
        "/payments/pix", json={"value": value, "description": "Bolo de fubá"}, headers=auth
    )
    return dict(await response.get_json())


async def test_page_shows_amount_merchant_qr_code_and_live_wiring(
    client: Client, auth: dict[str, str]
) -> None:
    payment = await create(client, auth)
    response = await client.get(f"/payments/pix/{payment['id']}")
    assert response.status_code == 200
    html = (await response.get_data()).decode()
    assert "R$\u00a01.234,56" in html  # a no-break space: "R$" never wraps alone
    assert "Padaria São João" in html and "Bolo de fubá" in html
    assert payment["brcode"] in html
    assert f'<img src="/payments/pix/qr_code/{payment["id"]}.svg"' in html
    assert 'data-status="pending"' in html
    assert f'ws-connect="/ws/payments/{payment["id"]}"' in html
    assert "/static/vendor/htmx/htmx.min.js" in html and "/static/vendor/htmx/ws.js" in html
    assert "Copiar código" in html and "data-countdown" in html
    assert "Simular pagamento" in html  # development: the sandbox is on
    assert response.headers["Vary"] == "HX-Request"
    assert response.headers["Cache-Control"] == "no-store"


async def test_htmx_request_gets_only_the_status_partial(
    client: Client, auth: dict[str, str]
) -> None:
    payment = await create(client, auth)
    response = await client.get(f"/payments/pix/{payment['id']}", headers={"HX-Request": "true"})
    html = (await response.get_data()).decode()
    assert html.lstrip().startswith('<div id="payment-status"')
    assert "<html" not in html


async def test_unknown_payment_is_a_portuguese_404_page(client: Client) -> None:
    response = await client.get(f"/payments/pix/{UNKNOWN}", headers={"Accept": "text/html"})
    assert response.status_code == 404
    html = (await response.get_data()).decode()
    assert "Página não encontrada" in html and '<html lang="pt-BR">' in html


async def test_simulate_pays_through_the_confirmation_service(
    client: Client, auth: dict[str, str], broker: Any
) -> None:
    payment = await create(client, auth)
    async with broker.subscribe(f"payment:{payment['id']}") as events:
        response = await client.post(f"/payments/pix/{payment['id']}/simulate")
        assert response.status_code == 200
        assert 'data-status="paid"' in (await response.get_data()).decode()
        event = await anext(events)
    assert event["type"] == "payment.paid"
    stored = await Payment.get(id=payment["id"])
    assert stored.status == PaymentStatus.PAID and stored.paid_at is not None
    again = await client.post(f"/payments/pix/{payment['id']}/simulate")
    assert again.status_code == 200  # idempotent, as the bank's call


async def test_simulate_a_cancelled_payment_changes_nothing(
    client: Client, auth: dict[str, str]
) -> None:
    payment = await create(client, auth)
    await client.post(f"/payments/{payment['id']}/cancel", headers=auth)
    response = await client.post(f"/payments/pix/{payment['id']}/simulate")
    assert response.status_code == 409
    assert 'data-status="cancelled"' in (await response.get_data()).decode()
    assert (await Payment.get(id=payment["id"])).status == PaymentStatus.CANCELLED


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return dict(PRODUCTION)

    async def test_no_sandbox_in_production(
        self, app: Quart, client: Client, auth: dict[str, str]
    ) -> None:
        payment = await create(client, auth)
        page = (await (await client.get(f"/payments/pix/{payment['id']}")).get_data()).decode()
        assert "Simular pagamento" not in page
        response = await client.post(f"/payments/pix/{payment['id']}/simulate")
        assert response.status_code == 404
        assert (await Payment.get(id=payment["id"])).status == PaymentStatus.PENDING
        assert brcode.decode(payment["brcode"]).valid


class _CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls: list[str] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(repr(fn))
        return super().submit(fn, *args, **kwargs)


async def test_page_and_socket_render_without_a_thread(
    client: Client, auth: dict[str, str]
) -> None:
    """Every blueprint used to inherit Flask's synchronous template context processor,
    which Quart runs in its thread pool: one thread hand-off for each page and each payer
    socket's fragment, to return nothing."""
    payment = await create(client, auth)
    loop = asyncio.get_running_loop()
    counting = _CountingExecutor()
    loop.set_default_executor(counting)
    try:
        page = await client.get(f"/payments/pix/{payment['id']}")
        assert 'data-status="pending"' in (await page.get_data()).decode()
        async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
            assert 'data-status="pending"' in str(await asyncio.wait_for(socket.receive(), 5))
    finally:
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())
        counting.shutdown()
    assert counting.calls == []
