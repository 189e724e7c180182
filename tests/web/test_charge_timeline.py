"""The charge page's timeline entries kept by the charge itself: when a payer first opened its
page (recorded once, by the payer's page alone), when it was cancelled, when it expired."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.models import Merchant, Payment, PaymentStatus
from pixweb.services.clock import utcnow
from tests.test_ws import receive
from tests.web.test_auth import login, page
from tests.web.test_dashboard_reconcile import charge, expire

VIEWED = "Pagador abriu a página"
EVENTS = re.compile(r'data-event="(\w+)"')


async def first_view(order: Payment) -> Any:
    return (await Payment.get(id=order.id)).first_viewed_at


async def test_the_payers_first_view_is_recorded_once_and_told_in_the_timeline(
    app: Quart, client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    order = await charge(merchant, broker, 1500, "Pedido 12")
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert VIEWED not in html and EVENTS.findall(html) == ["created"]

    payer = app.test_client()  # another browser: no merchant's session
    before = utcnow()
    await page(payer, f"/payments/pix/{order.id}")
    seen = await first_view(order)
    assert seen is not None and before <= seen <= utcnow()
    await page(payer, f"/payments/pix/{order.id}")  # opened again, and by someone else
    await page(app.test_client(), f"/payments/pix/{order.id}")
    assert await first_view(order) == seen

    html = await page(client, f"/dashboard/charges/{order.id}")
    assert html.count(VIEWED) == 1 and EVENTS.findall(html) == ["created", "viewed"]
    assert f'datetime="{seen.isoformat()}"' in html


async def test_the_merchant_viewing_its_charge_does_not_count(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    order = await charge(merchant, broker, 1500, "Pedido 13")
    await page(client, f"/dashboard/charges/{order.id}")
    await page(client, f"/payments/pix/{order.id}")  # "abrir página de pagamento", logged in
    assert await first_view(order) is None
    assert VIEWED not in await page(client, f"/dashboard/charges/{order.id}")


async def test_refreshes_sockets_and_link_previews_do_not_count(
    app: Quart, merchant: Merchant, broker: Any
) -> None:
    order = await charge(merchant, broker, 1500, "Pedido 14")
    payer = app.test_client()
    url = f"/payments/pix/{order.id}"
    partial = await payer.get(url, headers={"HX-Request": "true"})  # the page's own refresh
    assert partial.status_code == 200
    async with payer.websocket(f"/ws/payments/{order.id}") as socket:
        assert 'data-status="pending"' in await receive(socket)
    async with payer.websocket(f"/ws/payments/{order.id}?format=json") as socket:
        await receive(socket)
    whatsapp = {"User-Agent": "WhatsApp/2.23.20.0 A"}  # drawing the shared link's preview
    assert (await payer.get(url, headers=whatsapp)).status_code == 200
    assert await first_view(order) is None
    await page(payer, url)
    assert await first_view(order) is not None


async def test_a_cancelled_charge_says_when_and_an_older_one_without_a_time(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    order = await charge(merchant, broker, 1500, "Pedido 15")
    await Payment.filter(id=order.id).update(status=PaymentStatus.CANCELLED)
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert EVENTS.findall(html) == ["created", "cancelled"] and "Cancelada</strong></p>" in html

    at = utcnow() + timedelta(seconds=5)
    await Payment.filter(id=order.id).update(cancelled_at=at, first_viewed_at=at + timedelta(1))
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert EVENTS.findall(html) == ["created", "cancelled", "viewed"]  # in time order
    assert f'datetime="{at.isoformat()}"' in html.split('data-event="cancelled"')[1]


async def test_an_expired_charge_says_when_it_expired(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    order = await charge(merchant, broker, 1500, "Pedido 16")
    await expire(order)  # a minute ago: created before that
    await Payment.filter(id=order.id).update(created_at=utcnow() - timedelta(minutes=5))
    expires_at = (await Payment.get(id=order.id)).expires_at
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert EVENTS.findall(html) == ["created", "expired"]
    expired = html.split('data-event="expired"')[1]
    assert "Expirada" in expired and f'datetime="{expires_at.isoformat()}"' in expired
