"""The charge page's refund through the merchant's PSP (the fake mTLS PSP, tests/psp_fake.py):
the form's two steps send one devolução, and the timeline, reloading itself while the refund is
in process, turns it refunded (or not made, the money back) once the PSP says so."""

from __future__ import annotations

import re
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb.broker import Broker
from pixweb.models import Merchant, Payment, PaymentStatus, Refund, RefundStatus
from pixweb.psp.client import PspClient
from pixweb.services import refunds
from tests.api.test_accounts import balance
from tests.api.test_psp_connection import PUBLIC, clients, connected  # noqa: F401 (fixture)
from tests.conftest import make_merchant
from tests.psp_fake import FakePsp
from tests.services.test_ledger import assert_ledger_invariants
from tests.services.test_refunds import e2e, payment, psp_client, puts  # noqa: F401 (fixtures)
from tests.web.test_auth import login, page
from tests.web.test_charge_page import KEY, brl, refund_step

POLL = 'hx-trigger="every 2s"'
EVENTS = re.compile(r'data-event="(\w+)"')


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


async def timeline(client: Client, order: Payment) -> str:
    path = f"/dashboard/charges/{order.id}/timeline"
    response = await client.get(path, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return (await response.get_data()).decode()


async def refund_through_the_page(client: Client, order: Payment, value: str) -> None:
    token = await login(client)
    html = await page(client, f"/dashboard/charges/{order.id}")
    form = html.split('id="charge-refund"')[1]
    assert "Já devolvi pelo app do banco" not in form  # the PSP refunds this Pix
    key = KEY.search(form).group(1)  # type: ignore[union-attr]
    status, html, _ = await refund_step(client, token, order, step="preview", key=key, value=value)
    assert status == 200 and "Confirmar devolução" in html
    status, _, headers = await refund_step(
        client, token, order, step="confirm", key=key, value=value
    )
    assert status == 200 and headers["HX-Redirect"] == f"/dashboard/charges/{order.id}"


async def test_a_refund_at_the_psp_shows_processing_then_refunded(
    client: Client,
    merchant: Merchant,
    payment: Payment,  # noqa: F811
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
    broker: Broker,
) -> None:
    await refund_through_the_page(client, payment, "25,00")
    (sent,) = puts(psp)  # one devolução, natureza ORIGINAL
    assert sent.path.startswith(f"/pix/{e2e(1)}/devolucao/")
    refund = await Refund.get(payment_id=payment.id)
    assert refund.status == RefundStatus.PROCESSING and await balance(merchant) == 7500

    html = await page(client, f"/dashboard/charges/{payment.id}")
    assert "Situação: em processamento" in html and POLL in html
    assert f'hx-get="/dashboard/charges/{payment.id}/timeline"' in html
    assert f"Pode devolver até {brl('75,00')}" in html
    assert POLL in await timeline(client, payment)  # the PSP has not answered yet

    psp.settle_devolucao(e2e(1), refund.devolucao_id, "DEVOLVIDO")
    await refunds.poll_in_process(merchant.id, psp_client, broker=broker)
    html = await timeline(client, payment)
    assert "Situação: devolvida" in html and POLL not in html  # settled: it stops asking
    assert EVENTS.findall(html) == ["created", "pix", "paid", "refund"]
    status = html.split('id="charge-status"')[1]
    assert 'hx-swap-oob="true"' in status and 'data-status="partially_refunded"' in status
    assert f"devolvido {brl('25,00')}" in status
    assert (await Payment.get(id=payment.id)).status == PaymentStatus.PARTIALLY_REFUNDED
    assert await balance(merchant) == 7500 and len(puts(psp)) == 1
    await assert_ledger_invariants()


async def test_a_refund_the_psp_did_not_make_gives_the_money_back(
    client: Client,
    merchant: Merchant,
    payment: Payment,  # noqa: F811
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
    broker: Broker,
) -> None:
    await refund_through_the_page(client, payment, "")  # empty: all that is left
    refund = await Refund.get(payment_id=payment.id)
    assert refund.amount_cents == 10000 and await balance(merchant) == 0
    html = await page(client, f"/dashboard/charges/{payment.id}")
    assert 'id="charge-refund"' not in html  # all of it asked back: nothing left to offer

    psp.settle_devolucao(e2e(1), refund.devolucao_id, "NAO_REALIZADO", "Conta encerrada")
    await refunds.poll_in_process(merchant.id, psp_client, broker=broker)
    html = await timeline(client, payment)
    assert "Situação: não realizada" in html and "Motivo: Conta encerrada" in html
    assert POLL not in html and 'data-status="paid"' in html
    assert await balance(merchant) == 10000
    html = await page(client, f"/dashboard/charges/{payment.id}")
    assert f"Pode devolver até {brl('100,00')}" in html
    await assert_ledger_invariants()


async def test_the_timeline_is_the_merchants_own(
    client: Client,
    payment: Payment,  # noqa: F811
) -> None:
    path = f"/dashboard/charges/{payment.id}/timeline"
    assert (await client.get(path)).status_code == 302  # logged out: to the login page
    await make_merchant("outra@example.com")
    await login(client, "outra@example.com")
    response = await client.get(path)
    assert (
        response.status_code == 404 and "Pix recebido" not in (await response.get_data()).decode()
    )
