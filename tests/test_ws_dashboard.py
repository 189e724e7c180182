"""`/ws/dashboard`: session and Origin checks, the resync, and the fragments pushed live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from quart import Quart
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client

from pixweb.broker import QUEUE_SIZE
from pixweb.config import Config
from pixweb.models import Merchant, Payment
from pixweb.services.clock import utcnow
from pixweb.services.events import account_channel
from tests.conftest import bearer, make_merchant
from tests.web.test_auth import login

ORIGIN = {"Origin": "http://localhost"}
Socket = Any


async def receive(socket: Socket, within: float = 2.0) -> str:
    return str(await asyncio.wait_for(socket.receive(), within))


async def nothing_more(socket: Socket, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(socket.receive(), wait)


@asynccontextmanager
async def dashboard(client: Client) -> AsyncIterator[tuple[Socket, str]]:
    """A logged-in client's dashboard socket and the resync it sent on connect."""
    async with client.websocket("/ws/dashboard", headers=ORIGIN) as socket:
        yield socket, await receive(socket)


async def post(client: Client, path: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), await response.get_data()
    return dict(await response.get_json())


async def confirm(client: Client, sign: Any, charge: dict[str, Any]) -> None:
    body, headers = sign({"bank_payment_id": charge["bank_payment_id"], "value": charge["value"]})
    assert (
        await client.post("/payments/pix/confirmation", data=body, headers=headers)
    ).status_code == 200


@pytest.fixture
async def other(app: Quart) -> Merchant:
    return await make_merchant("b@example.com", name="Mercado Boa Vista", pix_key="b@example.com")


@pytest.fixture
async def logged_in(client: Client, merchant: Merchant) -> Client:
    await login(client)
    return client


async def test_without_a_session_the_socket_is_closed_1008(client: Client) -> None:
    async with client.websocket("/ws/dashboard", headers=ORIGIN) as socket:
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1008


@pytest.mark.parametrize(
    "origin",
    [None, "http://evil.example", "http://localhost.evil.example", "http://localhost:8000", "null"],
)
async def test_a_foreign_origin_is_closed_1008(logged_in: Client, origin: str | None) -> None:
    headers = {} if origin is None else {"Origin": origin}
    async with logged_in.websocket("/ws/dashboard", headers=headers) as socket:
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1008


async def test_connect_resyncs_the_whole_state_out_of_band(
    logged_in: Client, auth: dict[str, str]
) -> None:
    await post(logged_in, "/accounts/me/deposits", auth, value="10.00")
    charge = await post(logged_in, "/payments/pix", auth, value="3.00")
    async with dashboard(logged_in) as (socket, resync):
        roots = ("balance", "movements-list", "charges-list", "notifications", "pix-chart")
        roots += ("to-reconcile", "to-reconcile-count", "psp-status")
        for element in roots:
            assert f'id="{element}"' in resync
        assert resync.count('hx-swap-oob="true"') == len(roots)
        assert ">R$\u00a010,00</p>" in resync and 'data-kind="deposito"' in resync
        assert f'id="charge-{charge["id"]}" data-status="pending"' in resync
        assert 'id="unread-count">1<' in resync and "<svg" in resync
        await nothing_more(socket)


async def test_a_transfer_received_pushes_balance_movement_toast_and_unread_count(
    logged_in: Client, config: Config
) -> None:
    sender = await make_merchant("c@example.com", name="Bar <b>do Zé</b>", pix_key="c@example.com")
    theirs = bearer(sender, config)
    await post(logged_in, "/accounts/me/deposits", theirs, value="100.00")
    async with dashboard(logged_in) as (socket, _):
        await post(
            logged_in, "/accounts/me/transfers", theirs, value="25.00", to_email="loja@example.com"
        )
        html = await receive(socket)
        balance = 'id="balance" class="balance" data-cents="2500" hx-swap-oob="true">R$\u00a025,00<'
        assert balance in html
        assert 'hx-swap-oob="afterbegin:#movements-list"' in html
        assert 'data-kind="transferencia_recebida"' in html and "<b>" not in html  # escaped
        assert 'hx-swap-oob="afterbegin:#toasts"' in html
        assert "Você recebeu R$\u00a025,00 de Bar &lt;b&gt;do Zé&lt;/b&gt;" in html
        assert 'id="unread-count" hx-swap-oob="true">1<' in html
        assert 'hx-swap-oob="afterbegin:#notifications-list"' in html
        assert 'id="announce"' not in html  # only a Pix received is announced
        await nothing_more(socket)


async def test_a_charge_is_listed_then_announced_and_marked_paid(
    logged_in: Client, auth: dict[str, str], sign: Any
) -> None:
    async with dashboard(logged_in) as (socket, _):
        charge = await post(logged_in, "/payments/pix", auth, value="12.50", description="<i>")
        row = await receive(socket)
        assert row.lstrip().startswith('<div hx-swap-oob="afterbegin:#charges-list">')
        assert f'id="charge-{charge["id"]}" data-status="pending"' in row
        assert "R$\u00a012,50 · &lt;i&gt;" in row and "<i>" not in row
        await confirm(logged_in, sign, charge)
        pix = await receive(socket)
        assert 'id="announce"' in pix and 'data-speak="Pix recebido: 12 reais e 50 centavos"' in pix
        assert 'id="pix-chart" class="chart" hx-swap-oob="true"' in pix and "R$\u00a012,50" in pix
        assert 'data-kind="pix_recebido"' in pix and ">R$\u00a012,50</p>" in pix
        paid = await receive(socket)
        assert f'id="charge-{charge["id"]}" data-status="paid" hx-swap-oob="true"' in paid
        await nothing_more(socket)


async def test_a_charge_paid_by_another_merchant_is_announced_too(
    logged_in: Client, auth: dict[str, str], config: Config, other: Merchant
) -> None:
    charge = await post(logged_in, "/payments/pix", auth, value="1.00")
    theirs = bearer(other, config)
    await post(logged_in, "/accounts/me/deposits", theirs, value="5.00")
    async with dashboard(logged_in) as (socket, _):
        await post(logged_in, "/accounts/me/payments", theirs, brcode=charge["brcode"])
        assert 'data-speak="Pix recebido: 1 real"' in await receive(socket)
        assert 'data-status="paid"' in await receive(socket)


async def test_a_payer_on_the_charge_page_shows_as_viewing_until_it_leaves(
    logged_in: Client, auth: dict[str, str]
) -> None:
    charge = await post(logged_in, "/payments/pix", auth, value="2.00")
    row = f'id="charge-{charge["id"]}"'
    async with dashboard(logged_in) as (socket, resync):
        assert "data-viewing" not in resync
        async with logged_in.websocket(f"/ws/payments/{charge['id']}?format=json") as api:
            await receive(api)
            await nothing_more(socket)  # an API client is not a person on the page
        async with logged_in.websocket(f"/ws/payments/{charge['id']}") as payer:
            assert 'id="payment-status"' in await receive(payer)
            viewing = await receive(socket)
            assert row in viewing and "data-viewing" in viewing
        left = await receive(socket)
        assert row in left and "data-viewing" not in left
        await nothing_more(socket)


async def test_a_payer_already_on_the_page_is_seen_by_a_dashboard_connecting_later(
    logged_in: Client, auth: dict[str, str]
) -> None:
    charge = await post(logged_in, "/payments/pix", auth, value="2.00")
    async with logged_in.websocket(f"/ws/payments/{charge['id']}") as payer:
        await receive(payer)
        async with dashboard(logged_in) as (socket, _):
            viewing = await receive(socket)
            assert f'id="charge-{charge["id"]}"' in viewing and "data-viewing" in viewing


async def test_viewing_lasts_while_any_of_two_payers_stays(
    logged_in: Client, auth: dict[str, str]
) -> None:
    charge = await post(logged_in, "/payments/pix", auth, value="2.00")
    path = f"/ws/payments/{charge['id']}"
    async with dashboard(logged_in) as (socket, _):
        async with logged_in.websocket(path) as first:
            await receive(first)
            assert "data-viewing" in await receive(socket)
            async with logged_in.websocket(path) as second:
                await receive(second)
            await nothing_more(socket)  # the first payer is still there: nothing changed
        left = await receive(socket)
        assert f'id="charge-{charge["id"]}"' in left and "data-viewing" not in left


async def test_an_expiring_charge_is_pushed_as_expired_without_any_request(
    logged_in: Client, auth: dict[str, str]
) -> None:
    charge = await post(logged_in, "/payments/pix", auth, value="2.00")
    await Payment.filter(id=charge["id"]).update(expires_at=utcnow() + timedelta(milliseconds=300))
    async with dashboard(logged_in) as (socket, resync):
        assert 'data-status="pending"' in resync
        expired = await receive(socket, within=3)
        assert f'id="charge-{charge["id"]}" data-status="expired"' in expired


async def test_another_merchants_events_never_reach_this_dashboard(
    app: Quart, logged_in: Client, config: Config, other: Merchant, sign: Any
) -> None:
    theirs, their_client = bearer(other, config), app.test_client()
    await login(their_client, other.email)
    async with dashboard(logged_in) as (mine, _), dashboard(their_client) as (their_socket, _):
        await post(logged_in, "/accounts/me/deposits", theirs, value="50.00")
        charge = await post(logged_in, "/payments/pix", theirs, value="4.00")
        async with logged_in.websocket(f"/ws/payments/{charge['id']}") as payer:
            await receive(payer)
            await confirm(logged_in, sign, charge)
            await receive(payer)
        await post(logged_in, "/accounts/me/withdrawals", theirs, value="1.00")
        seen = [await receive(their_socket) for _ in range(7)]
        assert "R$\u00a050,00" in seen[0] and "data-speak" in "".join(seen)
        await nothing_more(their_socket)
        await nothing_more(mine, 0.3)


async def test_a_big_client_frame_closes_the_dashboard_1009(logged_in: Client) -> None:
    async with dashboard(logged_in) as (socket, _):
        await socket.send("x" * 10_000)
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1009


async def test_a_dashboard_that_falls_behind_is_closed_1013_to_resync(
    logged_in: Client, merchant: Merchant, broker: Any
) -> None:
    async with dashboard(logged_in) as (socket, _):
        for _ in range(QUEUE_SIZE + 1):  # no await yields in between: the queue overflows
            await broker.publish(account_channel(merchant.id), {"type": "noise"})
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1013
