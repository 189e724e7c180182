"""A charge paid from another merchant's balance, as its open pages and API sockets see it."""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.config import Config
from pixweb.models import Account, Merchant, Movement, Payment, PaymentStatus
from pixweb.services import accounts
from tests.conftest import bearer, make_merchant
from tests.test_ws import create, nothing_more, receive
from tests.web.test_auth import login

PAYER = "pagador@example.com"


@pytest.fixture
async def payer(app: Quart, broker: Any) -> Merchant:
    """Another merchant, with R$ 50,00 to pay with."""
    other = await make_merchant(PAYER, name="Mercado Bom Preço", pix_key=PAYER)
    await accounts.deposit(other, 5000, broker=broker)
    return other


async def pay_by_api(app: Quart, payer: Merchant, config: Config, code: str) -> None:
    headers = bearer(payer, config)
    response = await app.test_client().post(
        "/accounts/me/payments", json={"brcode": code}, headers=headers
    )
    assert response.status_code == 201, await response.get_json()


async def pay_by_form(app: Quart, payer: Merchant, config: Config, code: str) -> None:
    browser = app.test_client()
    token = await login(browser, payer.email)
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    review = await browser.post("/dashboard/pay", form={"brcode": code}, headers=headers)
    key = re.search(r'name="key" value="(\w+)"', (await review.get_data()).decode())
    assert review.status_code == 200 and key, "the review step shows the charge first"
    form = {"brcode": code, "key": key[1], "step": "confirm"}
    response = await browser.post("/dashboard/pay", form=form, headers=headers)
    html = (await response.get_data()).decode()
    assert response.status_code == 200 and "R$\u00a010,00" in html, html


async def assert_balances_are_their_movements(*merchants: Merchant) -> None:
    for merchant in merchants:
        account = await Account.get(merchant_id=merchant.id)
        moved = await Movement.filter(account_id=account.id).values_list("amount_cents", flat=True)
        assert account.balance_cents == sum(moved), merchant.email


@pytest.mark.parametrize("pay", [pay_by_api, pay_by_form], ids=["api", "dashboard-form"])
async def test_a_charge_paid_from_a_balance_reaches_every_watching_socket(
    app: Quart,
    client: Client,
    merchant: Merchant,
    auth: dict[str, str],
    config: Config,
    payer: Merchant,
    pay: Any,
) -> None:
    charge = await create(client, auth, value="10.00")
    url = f"/ws/payments/{charge['id']}"
    async with AsyncExitStack() as stack:
        pages = [await stack.enter_async_context(client.websocket(url)) for _ in range(2)]
        apis = [await stack.enter_async_context(client.websocket(f"{url}?format=json"))]
        apis.append(await stack.enter_async_context(client.websocket(f"{url}?format=json")))
        for socket in pages:
            assert 'data-status="pending"' in await receive(socket)
        for socket in apis:
            assert json.loads(await receive(socket))["data"]["status"] == "pending"
        before = datetime.now(UTC)

        await pay(app, payer, config, charge["brcode"])

        stored = await Payment.get(id=charge["id"])
        assert stored.status == PaymentStatus.PAID and stored.paid_at is not None
        for socket in pages:
            fragment = await receive(socket)
            assert 'data-status="paid"' in fragment and "Pagamento confirmado" in fragment
            assert "Recebido em" in fragment
        for socket in apis:
            message = json.loads(await receive(socket))
            assert message["event"] == f"payment-confirmed-{charge['id']}"
            assert message["data"]["status"] == "paid"
            paid_at = datetime.fromisoformat(message["data"]["paid_at"])
            assert before <= paid_at <= datetime.now(UTC) and paid_at == stored.paid_at
            fetched = await client.get(f"/payments/{charge['id']}", headers=auth)
            assert message["data"] == await fetched.get_json()
        for socket in [*pages, *apis]:
            await nothing_more(socket)  # still open: nothing closed them
    assert (await Account.get(merchant_id=merchant.id)).balance_cents == 1000
    assert (await Account.get(merchant_id=payer.id)).balance_cents == 4000
    await assert_balances_are_their_movements(merchant, payer)


def test_a_paid_event_without_its_paid_at_is_not_applied() -> None:
    """A room reads the payment back rather than render a paid state with no date."""
    from uuid import uuid4

    from pixweb.services.payments import apply_status_event

    payment = Payment(id=uuid4(), status=PaymentStatus.PENDING, paid_at=None)
    event = {"type": "payment.paid", "payment_id": str(payment.id), "status": "paid"}
    assert not apply_status_event(payment, {**event, "paid_at": None})
    assert not apply_status_event(payment, event)
    assert (payment.status, payment.paid_at) == (PaymentStatus.PENDING, None)
