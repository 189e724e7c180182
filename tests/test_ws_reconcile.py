"""A Pix that paid no charge, live: the dashboard socket's fragments ("Pix a conciliar",
one toast, the notice) and the seed's `/ws` `notificacao`."""

from __future__ import annotations

from typing import Any

from quart.typing import TestClientProtocol as Client

from pixweb import money
from pixweb.config import Config
from pixweb.models import Merchant, ReceivedPix
from pixweb.ws.bank import NOTIFICATION_FIELDS
from tests import test_ws_bank as bank
from tests.test_ws_dashboard import dashboard, nothing_more, receive
from tests.web.test_auth import login, page
from tests.web.test_dashboard_reconcile import KEY, charge, connection, expire, pix

NBSP = "\u00a0"


async def test_a_late_pix_joins_pix_a_conciliar_live_with_one_toast_and_leaves_when_attached(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    token = await login(client)
    order = await charge(merchant, broker, 3000, "Pedido 1042")
    await expire(order)
    async with dashboard(client) as (socket, resync):
        assert 'id="to-reconcile"' in resync and 'data-count="0" hx-swap-oob="true">0<' in resync
        record = await pix(merchant, broker, 1, 3000, order.txid)
        credit = await receive(socket)  # the movement: balance, row, its notice listed
        assert (
            'data-kind="pix_recebido"' in credit
            and 'hx-swap-oob="afterbegin:#toasts"' not in credit
        )
        notice = await receive(socket)  # the one toast, saying why the Pix waits
        assert notice.count('hx-swap-oob="afterbegin:#toasts"') == 1
        assert 'data-tipo="pix_a_conciliar"' in notice
        said = f"Pix de R${NBSP}30,00 recebido após o vencimento da cobrança Pedido 1042"
        assert said in notice and 'hx-swap-oob="afterbegin:#notifications-list"' in notice
        assert 'id="unread-count" hx-swap-oob="true">2<' in notice
        item = await receive(socket)
        assert 'hx-swap-oob="afterbegin:#to-reconcile-list"' in item
        assert f'id="pix-{record.id}"' in item and "após o vencimento" in item
        assert "Maria da Silva" in item and "***.456.789-**" in item
        assert (
            'id="to-reconcile-count" class="counter" data-count="1" hx-swap-oob="true">1<' in item
        )
        await nothing_more(socket)

        pending = await charge(merchant, broker, 3000, "Pedido 1043")
        assert f'id="charge-{pending.id}"' in await receive(socket)
        form = await page(client, f"/dashboard/received/{record.id}/attach")
        key = KEY.search(form).group(1)  # type: ignore[union-attr]
        response = await client.post(
            f"/dashboard/received/{record.id}/attach",
            form={"key": key, "payment_id": str(pending.id)},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert response.status_code == 200
        pushed = [await receive(socket), await receive(socket)]
        paid = next(html for html in pushed if f'id="charge-{pending.id}"' in html)
        assert 'data-status="paid"' in paid
        gone = next(html for html in pushed if "to-reconcile-count" in html)
        assert f'<li id="pix-{record.id}" hx-swap-oob="delete"></li>' in gone
        assert 'data-count="0" hx-swap-oob="true">0<' in gone
        await nothing_more(socket)  # no movement: no money moved


async def test_a_matched_pix_adds_nothing_to_reconcile(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    order = await charge(merchant, broker, 1250, "Pedido 5")
    async with dashboard(client) as (socket, _):
        await pix(merchant, broker, 1, 1250, order.txid)
        pushed = [await receive(socket), await receive(socket)]
        assert 'hx-swap-oob="afterbegin:#toasts"' in pushed[0]  # the Pix received, as before
        assert 'data-status="paid"' in pushed[1]
        await nothing_more(socket)
        assert "to-reconcile" not in "".join(pushed)


async def test_a_pix_attached_beyond_the_shown_rows_only_updates_the_counter(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    record = await pix(merchant, broker, 1, 500, None)
    # A row the page lacks (listed only after the socket connected) is never deleted.
    await ReceivedPix.filter(id=record.id).update(outcome="matched")
    async with dashboard(client) as (socket, resync):
        assert f'id="pix-{record.id}"' not in resync
        await broker.publish(
            f"account:{merchant.id}",
            {"type": "pix.attached", "pix": {"end_to_end_id": record.end_to_end_id}},
        )
        html = await receive(socket)
        assert 'hx-swap-oob="delete"' not in html and 'data-count="0"' in html


async def test_the_seed_socket_emits_the_notice_of_a_pix_to_reconcile(
    client: Client, merchant: Merchant, broker: Any, config: Config
) -> None:
    async with bank.joined(client, merchant, config) as socket:
        await pix(merchant, broker, 1, 700, None, payer_name="Ana")
        events = [await bank.receive(socket) for _ in range(3)]
        assert [e["event"] for e in events] == ["notificacao", "saldo_atualizado", "notificacao"]
        notice = events[2]["data"]
        assert tuple(notice) == NOTIFICATION_FIELDS
        assert notice["tipo"] == "pix_a_conciliar"
        said = f"Pix de {money.format_brl(700)} recebido direto na chave Pix, sem cobrança"
        assert notice["mensagem"] == said
        assert notice["dados"]["resultado"] == "no_txid"
        await bank.nothing_more(socket)


async def test_the_psp_line_follows_a_connection_made_while_the_dashboard_is_open(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    await login(client)
    async with dashboard(client) as (socket, resync):
        assert "PSP não conectado" in resync
        await connection(merchant, sandbox=True)  # as development does on a first charge
        await charge(merchant, broker, 100, "Primeira")
        html = await receive(socket)
        assert 'id="psp-status" class="psp-status" hx-swap-oob="true"' in html
        assert "PSP de testes (sandbox)" in html and "Última conciliação: nunca" in html
        await charge(merchant, broker, 100, "Segunda")
        assert "psp-status" not in await receive(socket)  # unchanged: not sent again
