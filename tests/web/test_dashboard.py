"""The dashboard page and its HTMX forms, through a logged-in test client."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.models import Merchant, Payment
from pixweb.services import accounts
from pixweb.web.forms import FIELD_MESSAGES
from tests.conftest import make_merchant
from tests.web.test_auth import csrf_token, login, page


async def balance(merchant: Merchant) -> int:
    return (await accounts.get_account(merchant.id)).balance_cents


async def submit(client: Client, token: str, name: str, **form: str) -> tuple[int, str]:
    """POST a dashboard form as HTMX does; return the status and the form partial."""
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    response = await client.post(f"/dashboard/{name}", form=form, headers=headers)
    return response.status_code, (await response.get_data()).decode()


@pytest.fixture
async def token(client: Client, merchant: Merchant, broker: Any) -> str:
    """Log the merchant in, with R$ 5,00 in the account."""
    await accounts.deposit(merchant, 500, broker=broker)
    return await login(client)


@pytest.fixture
async def other(app: Quart) -> Merchant:
    return await make_merchant("b@example.com", name="Mercado Boa Vista", pix_key="b@example.com")


async def test_page_shows_balance_forms_lists_chart_and_live_wiring(
    client: Client, merchant: Merchant
) -> None:
    await login(client)
    html = await page(client, "/dashboard")
    assert "Padaria São João" in html and "loja@example.com" in html
    assert '<p id="balance" class="balance" data-cents="0">R$ 0,00</p>' in html
    for name in ("deposit", "withdraw", "transfer", "pay", "charge"):
        assert f'id="form-{name}"' in html and f'hx-post="/dashboard/{name}"' in html
    for element in ("charges-list", "movements-list", "notifications", "unread-count"):
        assert f'id="{element}"' in html
    assert 'id="pix-chart"' in html and "<svg" in html
    assert 'id="connection"' in html and 'id="toasts"' in html and 'id="announce"' in html
    assert 'hx-ext="ws" ws-connect="/ws/dashboard"' in html
    assert "/static/vendor/htmx/ws.js" in html and "X-CSRF-Token" in html
    assert "Nenhuma cobrança ainda." in html and "Nenhuma movimentação ainda." in html


INVALID_VALUE = FIELD_MESSAGES["value"]
EXPIRY = FIELD_MESSAGES["expires_in"]


@pytest.mark.parametrize(
    ("name", "form", "status", "text", "after"),
    [
        ("deposit", {"value": "1.234,56"}, 200, "Depósito de R$ 1.234,56 realizado.", 123956),
        ("deposit", {"value": "R$ 10"}, 200, "Depósito de R$ 10,00 realizado.", 1500),
        ("withdraw", {"value": "2,5"}, 200, "Saque de R$ 2,50 realizado.", 250),
        ("withdraw", {"value": "5,01"}, 422, "Saldo insuficiente.", 500),
        ("deposit", {"value": "abc"}, 422, INVALID_VALUE, 500),
        ("deposit", {"value": "0,00"}, 422, INVALID_VALUE, 500),
        ("deposit", {"value": "1,234"}, 422, INVALID_VALUE, 500),
        ("deposit", {"value": "1.000.000,01"}, 422, INVALID_VALUE, 500),
        ("withdraw", {}, 422, INVALID_VALUE, 500),
        ("transfer", {"to_email": "ninguem@example.com", "value": "1,00"}, 422,
         FIELD_MESSAGES["to_email"], 500),
        ("pay", {"brcode": "abc"}, 422, "Código Pix inválido (CRC ou estrutura).", 500),
        ("charge", {"value": "10,00", "expires_in": "abc"}, 422, EXPIRY, 500),
        ("charge", {"value": "10,00", "expires_in": "30"}, 422, EXPIRY, 500),
        ("charge", {"value": "", "expires_in": "900"}, 422, INVALID_VALUE, 500),
    ],
)  # fmt: skip
async def test_forms_answer_their_partial_and_change_the_balance_only_on_success(
    client: Client,
    merchant: Merchant,
    token: str,
    name: str,
    form: dict[str, str],
    status: int,
    text: str,
    after: int,
) -> None:
    code, html = await submit(client, token, name, **form)
    assert code == status
    assert html.lstrip().startswith(f'<form id="form-{name}"') and "<html" not in html
    assert text in html
    assert ('class="form-success"' in html) == (status == 200)
    assert await balance(merchant) == after


async def test_a_failed_form_keeps_what_was_typed(client: Client, token: str) -> None:
    _, html = await submit(client, token, "transfer", to_email="x@example.com", value="9,99")
    assert 'value="x@example.com"' in html and 'value="9,99"' in html


async def test_transfer_moves_money_to_the_other_merchant(
    client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    form = {"to_email": "B@example.com", "value": "1,50", "description": "troco"}
    status, html = await submit(client, token, "transfer", **form)
    assert status == 200 and "Transferência de R$ 1,50 enviada." in html
    assert 'value="B@example.com"' not in html  # a success clears the form
    assert await balance(merchant) == 350 and await balance(other) == 150


async def test_transfer_to_oneself_is_refused_without_claiming_there_is_no_account(
    client: Client, merchant: Merchant, token: str
) -> None:
    status, html = await submit(client, token, "transfer", to_email=merchant.email, value="1,00")
    assert status == 422
    assert FIELD_MESSAGES["to_email"] not in html  # there is an account: it is the sender's
    assert "Não é possível transferir para a sua própria conta." in html
    assert await balance(merchant) == 500


async def test_charge_form_links_to_the_new_payment_page(
    client: Client, merchant: Merchant, token: str
) -> None:
    status, html = await submit(client, token, "charge", value="12,34", description="Pão")
    assert status == 200 and "Cobrança criada" in html
    payment = await Payment.get(merchant_id=merchant.id)
    assert payment.amount_cents == 1234 and payment.description == "Pão"
    link = f'href="/payments/pix/{payment.id}"'
    assert link in html
    assert "R$ 12,34" in await page(client, f"/payments/pix/{payment.id}")


async def test_pay_form_pays_another_merchants_charge_but_not_ones_own(
    app: Quart, client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    theirs = app.test_client()
    their_token = await login(theirs, other.email)
    assert (await submit(theirs, their_token, "charge", value="2,00"))[0] == 200
    code = (await Payment.get(merchant_id=other.id)).brcode
    status, own = await submit(theirs, their_token, "pay", brcode=code)
    assert status == 422 and "Esta cobrança é sua." in own
    status, html = await submit(client, token, "pay", brcode=code)
    assert status == 200 and "Pagamento de R$ 2,00 realizado." in html
    assert await balance(merchant) == 300 and await balance(other) == 200
    status, html = await submit(client, token, "pay", brcode=code)  # paid already
    assert status == 422 and "Operação não permitida no estado atual." in html


async def test_forms_need_a_logged_in_merchant(client: Client, merchant: Merchant) -> None:
    status, _ = await submit(client, await csrf_token(client), "deposit", value="1,00")
    assert status == 401
    assert await balance(merchant) == 0


async def test_a_logged_out_browser_is_sent_to_the_login_page(
    client: Client, merchant: Merchant
) -> None:
    token = await csrf_token(client)
    htmx = await client.post(
        "/dashboard/deposit",
        form={"value": "1,00"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"
    plain = await client.post("/dashboard/deposit", form={"value": "1,00", "csrf_token": token})
    assert plain.status_code == 302 and plain.location.endswith("/login")
    forged = await client.post("/dashboard/deposit", form={"value": "1,00", "csrf_token": "x"})
    assert forged.status_code == 403
    assert "Sessão expirada" in (await forged.get_data()).decode()
    assert await balance(merchant) == 0


async def test_unknown_form_is_404(client: Client, token: str) -> None:
    status, _ = await submit(client, token, "steal", value="1,00")
    assert status == 404


async def test_marking_notifications_read_answers_the_refreshed_list(
    client: Client, token: str
) -> None:
    assert 'id="unread-count">1<' in await page(client, "/dashboard")
    response = await client.post("/dashboard/notifications/read", headers={"X-CSRF-Token": token})
    html = (await response.get_data()).decode()
    assert response.status_code == 200 and html.startswith('<div id="notifications"')
    assert 'id="unread-count">0<' in html and 'class="read"' in html
