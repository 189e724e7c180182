"""`/dashboard/charges/<id>`: one charge's code, its story from the records, and its actions
(cancel, a two-step refund, attaching a waiting Pix), through the test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.deps import BROKER_KEY, PSP_CLIENTS_KEY
from pixweb.models import (
    Merchant,
    Movement,
    Payment,
    PaymentStatus,
    PixSource,
    ReceivedPix,
    Refund,
)
from pixweb.services import psp_sandbox, received, refunds
from pixweb.services.clock import utcnow
from tests.conftest import make_merchant
from tests.services.test_ledger import assert_ledger_invariants
from tests.web.test_auth import login, page
from tests.web.test_dashboard_reconcile import balance, charge, e2e, expire, pix

NBSP = "\u00a0"
KEY = re.compile(r'name="key" value="([0-9a-f]{32})"')


def brl(text: str) -> str:
    return f"R${NBSP}{text}"


@pytest.fixture
async def token(client: Client, merchant: Merchant) -> str:
    return await login(client)


async def post(client: Client, path: str, token: str | None, form: dict[str, str]) -> Any:
    headers = {"HX-Request": "true"}
    if token is not None:
        headers["X-CSRF-Token"] = token
    response = await client.post(path, form=form, headers=headers)
    return response.status_code, (await response.get_data()).decode(), response.headers


async def paid_charge(merchant: Merchant, broker: Any) -> tuple[Payment, ReceivedPix]:
    order = await charge(merchant, broker, 3000, "Pedido 77")
    record = await pix(merchant, broker, 1, 3000, order.txid)
    return await Payment.get(id=order.id), record


async def refund_externally(app: Quart, merchant: Merchant, order: Payment, cents: int) -> Refund:
    refund, created = await refunds.refund_payment(
        merchant.id,
        order.id,
        refunds.Request(value_cents=cents, external=True, description="Troco"),
        clients=app.extensions[PSP_CLIENTS_KEY],
        broker=app.extensions[BROKER_KEY],
    )
    assert created
    return refund


async def test_a_pending_charge_shows_its_code_share_links_and_cancel(
    client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    order = await charge(merchant, broker, 1250, "Bolo de cenoura")
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert brl("12,50") in html and "Bolo de cenoura" in html
    assert 'data-status="pending"' in html and ">aguardando<" in html
    assert f'src="/payments/pix/qr_code/{order.id}.svg"' in html
    assert order.brcode in html and "Copiar código" in html and "Copiar link" in html
    link = f"http://localhost/payments/pix/{order.id}"
    assert f'data-copy="{link}"' in html
    assert "https://wa.me/?text=" in html and "Enviar no WhatsApp" in html
    assert "Cancelar cobrança" in html and "Revisar devolução" not in html
    assert 'data-event="created"' in html and "Cobrança criada" in html
    assert "style=" not in html and " onclick" not in html and "<script>" not in html
    dashboard = await page(client, "/dashboard")
    assert f'href="/dashboard/charges/{order.id}"' in dashboard


async def test_another_merchants_charge_is_not_found(
    client: Client, token: str, broker: Any
) -> None:
    other = await make_merchant("outra@example.com")
    order = await charge(other, broker, 1000, "Dela")
    response = await client.get(f"/dashboard/charges/{order.id}")
    assert response.status_code == 404
    assert "Dela" not in (await response.get_data()).decode()
    status, _, _ = await post(client, f"/dashboard/charges/{order.id}/cancel", token, {})
    assert status == 404
    assert (await Payment.get(id=order.id)).status == PaymentStatus.PENDING


async def test_a_logged_out_visitor_goes_to_login(
    client: Client, merchant: Merchant, broker: Any
) -> None:
    order = await charge(merchant, broker, 1000, "x")
    response = await client.get(f"/dashboard/charges/{order.id}")
    assert response.status_code == 302 and response.location.endswith("/login")


async def test_a_paid_then_refunded_charge_tells_its_story_from_the_records(
    app: Quart, client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    order, record = await paid_charge(merchant, broker)
    await pix(merchant, broker, 2, 3000, order.txid, payer_name="José Souza")  # a duplicate
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert 'data-status="paid"' in html and ">paga<" in html
    assert "qr_code" not in html  # paid: nothing left to scan
    assert "Maria da Silva" in html and "***.456.789-**" in html and "12345678909" not in html
    assert record.end_to_end_id in html and e2e(2) in html and "José Souza" in html
    assert "Resultado: pagou esta cobrança" in html and "Resultado: cobrança já paga" in html
    assert "Revisar devolução" in html and "Já devolvi pelo app do banco" in html
    assert f"Pode devolver até {brl('30,00')}" in html
    assert "Cancelar cobrança" not in html

    await refund_externally(app, merchant, order, 1000)
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert 'data-status="partially_refunded"' in html and "devolvida em parte" in html
    assert f"Devolução de {brl('10,00')}" in html and "Situação: devolvida" in html
    assert "Feita pelo app do banco" in html and "Descrição: Troco" in html
    assert f"Pode devolver até {brl('20,00')}" in html
    events = re.findall(r'data-event="(\w+)"', html)
    assert events == ["created", "pix", "paid", "pix", "refund"]

    await refund_externally(app, merchant, order, 2000)
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert 'data-status="refunded"' in html
    assert re.findall(r'data-event="(\w+)"', html).count("refund") == 2
    assert "Revisar devolução" not in html
    await assert_ledger_invariants()


async def test_cancel_through_the_page(
    client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    order = await charge(merchant, broker, 1000, "Pedido 5")
    path = f"/dashboard/charges/{order.id}/cancel"
    status, _, _ = await post(client, path, None, {})
    assert status == 403  # no CSRF token
    assert (await Payment.get(id=order.id)).status == PaymentStatus.PENDING
    status, _, headers = await post(client, path, token, {})
    assert status == 200 and headers["HX-Redirect"] == f"/dashboard/charges/{order.id}"
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert 'data-status="cancelled"' in html and 'data-event="cancelled"' in html
    assert "Cancelar cobrança" not in html
    status, html, _ = await post(client, path, token, {})
    assert status == 409 and "Esta cobrança já foi cancelada" in html


async def test_an_expired_charge_shows_it_and_offers_a_waiting_pix(
    client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    order = await charge(merchant, broker, 3000, "Pedido 9")
    await expire(order)
    late = await pix(merchant, broker, 3, 3000, order.txid)
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert 'data-event="expired"' in html and "Venceu sem pagamento" in html
    assert "Associar a esta cobrança" in html
    assert f'hx-post="/dashboard/received/{late.id}/attach"' in html
    match = re.search(
        rf'/dashboard/received/{late.id}/attach".*?name="key" value="([0-9a-f]{{32}})"', html, re.S
    )
    assert match is not None
    path = f"/dashboard/received/{late.id}/attach"
    form = {"key": match.group(1), "payment_id": str(order.id)}
    status, body, _ = await post(client, path, token, form)
    assert status == 200 and "associado" in body
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert 'data-status="paid"' in html and "Resultado: pagou esta cobrança" in html
    await assert_ledger_invariants()


async def refund_step(
    client: Client, token: str | None, order: Payment, **form: str
) -> tuple[int, str, Any]:
    return await post(client, f"/dashboard/charges/{order.id}/refund", token, form)  # type: ignore[no-any-return]


async def test_refund_through_the_page_previews_then_moves_the_money_once(
    client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    order, _ = await paid_charge(merchant, broker)
    html = await page(client, f"/dashboard/charges/{order.id}")
    key = KEY.search(html.split('id="charge-refund"')[1]).group(1)  # type: ignore[union-attr]
    before = await balance(merchant)
    moves = await Movement.all().count()

    status, html, _ = await refund_step(
        client, token, order, step="preview", key=key, value="10,5", external="1"
    )
    assert status == 200
    assert (
        f"{brl('10,50')} serão devolvidos ao pagador; seu saldo passa de"
        f" {brl('30,00')} para {brl('19,50')}." in html
    )
    assert "Confirmar devolução" in html and 'name="external" value="1"' in html
    assert await Movement.all().count() == moves and await Refund.all().count() == 0

    status, _, _ = await refund_step(
        client, None, order, step="confirm", key=key, value="10,5", external="1"
    )
    assert status == 403 and await Refund.all().count() == 0  # CSRF

    for _ in range(2):  # sent twice (a double click): one refund
        status, _, headers = await refund_step(
            client, token, order, step="confirm", key=key, value="10,5", external="1"
        )
        assert status == 200 and headers["HX-Redirect"] == f"/dashboard/charges/{order.id}"
    assert await Refund.all().count() == 1
    assert await balance(merchant) == before - 1050
    payment = await Payment.get(id=order.id)
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert payment.refunded_cents == 1050
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert f"Devolução de {brl('10,50')}" in html and f"Pode devolver até {brl('19,50')}" in html
    await assert_ledger_invariants()


async def test_a_refused_refund_changes_nothing_and_says_why(
    client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    order, _ = await paid_charge(merchant, broker)
    key = "ab" * 16
    before, moves = await balance(merchant), await Movement.all().count()
    status, html, _ = await refund_step(
        client, token, order, step="preview", key=key, value="30.01", external="1"
    )
    assert status == 422 and f"no máximo {brl('30,00')}" in html
    status, html, _ = await refund_step(
        client, token, order, step="confirm", key=key, value="30,01", external="1"
    )
    assert status == 422 and f"Valor acima do que resta devolver: no máximo {brl('30,00')}." in html
    status, html, _ = await refund_step(client, token, order, step="confirm", key=key, value="5,00")
    assert status == 422 and "devolva pelo app do banco" in html
    status, html, _ = await refund_step(client, token, order, step="preview", key=key, value="abc")
    assert status == 422 and "Informe um valor maior que zero" in html
    assert await balance(merchant) == before and await Movement.all().count() == moves
    assert await Refund.all().count() == 0
    assert (await Payment.get(id=order.id)).status == PaymentStatus.PAID
    await assert_ledger_invariants()


async def test_with_a_psp_a_pix_it_cannot_name_is_refunded_in_the_bank_app(
    app: Quart, client: Client, token: str, merchant: Merchant, broker: Any
) -> None:
    clients = app.extensions[PSP_CLIENTS_KEY]
    await psp_sandbox.connect_sandbox(merchant, clients=clients, public_base="http://localhost")
    assert await clients.for_merchant(merchant.id) is not None
    order = await charge(merchant, broker, 2000, "Pedido 3")
    record, _ = await received.record_received_pix(
        received.incoming(
            merchant_id=merchant.id,
            end_to_end_id=None,  # the seed's confirmation: keyed by the txid, no PSP can refund it
            amount_cents=2000,
            txid=order.txid,
            paid_at=utcnow(),
            source=PixSource.CONFIRMATION,
        ),
        broker=broker,
    )
    html = await page(client, f"/dashboard/charges/{order.id}")
    assert "Já devolvi pelo app do banco" in html
    assert record.end_to_end_id.startswith("txid:") and "E2EID: txid:" not in html
    key = KEY.search(html.split('id="charge-refund"')[1]).group(1)  # type: ignore[union-attr]
    status, _, _ = await refund_step(
        client, token, order, step="confirm", key=key, value="20,00", external="1"
    )
    assert status == 200
    assert (await Payment.get(id=order.id)).status == PaymentStatus.REFUNDED
    await assert_ledger_invariants()
