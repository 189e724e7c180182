"""The dashboard page and its HTMX forms, through a logged-in test client."""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import quote

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.models import Merchant, Movement, Payment
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
    assert '<p id="balance" class="balance" data-cents="0">R$\u00a00,00</p>' in html
    for name in ("deposit", "withdraw", "transfer", "pay", "charge"):
        assert f'id="form-{name}"' in html and f'hx-post="/dashboard/{name}"' in html
    # "Nova cobrança" first, right after the balance: on a phone it was two screens down.
    forms = [html.index(f'id="form-{name}"') for name in ("charge", "pay", "transfer")]
    assert html.index('id="balance"') < forms[0] < forms[1] < forms[2]
    assert html.index('id="form-charge"') < html.index('id="pix-chart"')
    for element in ("charges-list", "movements-list", "notifications", "unread-count"):
        assert f'id="{element}"' in html
    assert 'id="pix-chart"' in html and "<svg" in html
    assert 'id="connection"' in html and 'id="toasts"' in html and 'id="announce"' in html
    assert 'hx-ext="ws" ws-connect="/ws/dashboard"' in html
    assert "/static/vendor/htmx/ws.js" in html and "X-CSRF-Token" in html
    assert "Nenhuma cobrança ainda." in html and "Nenhuma movimentação ainda." in html


INVALID_VALUE = FIELD_MESSAGES["value"]
EXPIRY = FIELD_MESSAGES["expires_in"]
NBSP = "\u00a0"


def nb(text: str) -> str:
    """`text` as the pages print it: "R$" and its number held together by a no-break space."""
    return text.replace("R$ ", "R$" + NBSP)


@pytest.mark.parametrize(
    ("name", "form", "status", "text", "after"),
    [
        ("deposit", {"value": "1.234,56"}, 200, "Depósito de R$ 1.234,56 realizado.", 123956),
        ("deposit", {"value": "R$ 10"}, 200, "Depósito de R$ 10,00 realizado.", 1500),
        ("deposit", {"value": "10.50"}, 200, "Depósito de R$ 10,50 realizado.", 1550),
        ("deposit", {"value": "10,5"}, 200, "Depósito de R$ 10,50 realizado.", 1550),
        ("deposit", {"value": "1234,56"}, 200, "Depósito de R$ 1.234,56 realizado.", 123956),
        ("deposit", {"value": "1.234"}, 200, "Depósito de R$ 1.234,00 realizado.", 123900),
        ("withdraw", {"value": "2,5"}, 200, "Saque de R$ 2,50 realizado.", 250),
        ("withdraw", {"value": "2.50"}, 200, "Saque de R$ 2,50 realizado.", 250),
        ("withdraw", {"value": "5,01"}, 422, "Saldo insuficiente: disponível R$ 5,00.", 500),
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
    assert nb(text) in html
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
    assert status == 200 and nb("Transferência de R$ 1,50 enviada.") in html
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


async def test_a_refused_withdrawal_says_so_once_with_the_balance(
    client: Client, merchant: Merchant, token: str
) -> None:
    for name, form in [("withdraw", {"value": "5,01"}), ("transfer", {"value": "9,00"})]:
        if name == "transfer":
            await make_merchant("c@example.com", name="Loja C", pix_key="c@example.com")
            form["to_email"] = "c@example.com"
        status, html = await submit(client, token, name, **form)
        assert status == 422
        assert html.count('role="alert"') == 1 and 'class="field-error"' not in html
        assert nb("Saldo insuficiente: disponível R$ 5,00.") in html
        assert INVALID_VALUE not in html  # the amount was well typed: the balance was short
        assert 'value="' + form["value"] + '"' in html  # kept, to correct
    assert await balance(merchant) == 500


async def test_charge_form_shows_the_new_charge_ready_to_share(
    client: Client, merchant: Merchant, token: str
) -> None:
    status, html = await submit(client, token, "charge", value="12,34", description="Pão & café")
    assert status == 200 and "Cobrança criada." in html
    payment = await Payment.get(merchant_id=merchant.id)
    assert payment.amount_cents == 1234 and payment.description == "Pão & café"
    assert f'href="/payments/pix/{payment.id}"' in html
    assert "<svg" in html and 'class="qr created-qr"' in html  # the QR, to scan from the screen
    code = escape(payment.brcode)  # "Pao & cafe" is in the code
    assert f">{code}</textarea>" in html and f'data-copy="{code}"' in html
    absolute = re.search(rf'data-copy="(https?://[^"/]+/payments/pix/{payment.id})"', html)
    assert absolute, html  # the link to pass on is absolute
    text = quote(f"Pague R$ 12,34 (Pão & café) com Pix: {absolute[1]}", safe="")
    assert f'href="https://wa.me/?text={text}"' in html
    assert nb("R$ 12,34") in await page(client, f"/payments/pix/{payment.id}")
    assert "onclick" not in html and "<script" not in html and "style=" not in html


async def their_charge(app: Quart, other: Merchant, value: str = "2,00") -> Payment:
    """A charge of `other`, made through its own dashboard."""
    theirs = app.test_client()
    their_token = await login(theirs, other.email)
    status, _ = await submit(theirs, their_token, "charge", value=value, description="Pedido 7")
    assert status == 200
    return await Payment.filter(merchant_id=other.id).order_by("-created_at").first()


def review_key(html: str) -> str:
    match = re.search(r'name="key" value="([0-9a-f]{32})"', html)
    assert match, html
    return match.group(1)


async def movements_sum(merchant: Merchant) -> int:
    account = await accounts.get_account(merchant.id)
    return sum(m.amount_cents for m in await Movement.filter(account_id=account.id))


async def test_paying_a_code_shows_who_and_how_much_before_any_money_moves(
    app: Quart, client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    charge = await their_charge(app, other)
    status, html = await submit(client, token, "pay", brcode=f"  {charge.brcode}\n")
    assert status == 200 and "data-review" in html
    assert "Mercado Boa Vista" in html and "São Paulo" in html  # recipient, from its account
    assert nb("R$ 2,00") in html and "Pedido 7" in html
    assert f'name="brcode" value="{charge.brcode}"' in html
    assert 'value="confirm"' in html and 'value="cancel"' in html
    assert await balance(merchant) == 500 and await balance(other) == 0  # nothing moved
    assert (await Payment.get(id=charge.id)).status == "pending"

    key = review_key(html)
    confirm = {"brcode": charge.brcode, "key": key, "step": "confirm"}
    status, html = await submit(client, token, "pay", **confirm)
    assert status == 200
    assert nb("Pagamento de R$ 2,00 para Mercado Boa Vista realizado.") in html
    status, again = await submit(client, token, "pay", **confirm)  # a double click
    assert status == 200 and nb("Pagamento de R$ 2,00") in again
    assert await balance(merchant) == 300 and await balance(other) == 200  # once
    for who in (merchant, other):
        assert await movements_sum(who) == await balance(who)
    assert (await Payment.get(id=charge.id)).status == "paid"

    status, html = await submit(client, token, "pay", brcode=charge.brcode)  # paid already
    assert status == 422 and "Esta cobrança já foi paga." in html
    fresh = {"brcode": charge.brcode, "key": "f" * 32, "step": "confirm"}
    status, html = await submit(client, token, "pay", **fresh)
    assert status == 422 and "Esta cobrança já foi paga." in html
    assert await balance(merchant) == 300 and await balance(other) == 200


async def test_a_payment_review_can_be_cancelled_and_confirming_needs_one(
    app: Quart, client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    charge = await their_charge(app, other)
    _, html = await submit(client, token, "pay", brcode=charge.brcode)
    cancel = {"brcode": charge.brcode, "key": review_key(html), "step": "cancel"}
    status, html = await submit(client, token, "pay", **cancel)
    assert status == 200 and "data-review" not in html and charge.brcode not in html
    for key in ("", "x" * 32, "../" + "a" * 29):  # no review, or not one the review made
        confirm = {"brcode": charge.brcode, "key": key, "step": "confirm"}
        status, html = await submit(client, token, "pay", **confirm)
        assert status == 422 and 'class="field-error"' in html
    assert await balance(merchant) == 500 and await balance(other) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5,01", "Saldo insuficiente: disponível R$ 5,00."),
        ("5,00", None),  # exactly the balance: fine
    ],
)
async def test_the_review_tells_a_short_balance_before_confirming(
    app: Quart,
    client: Client,
    merchant: Merchant,
    other: Merchant,
    token: str,
    value: str,
    message: str | None,
) -> None:
    charge = await their_charge(app, other, value)
    status, html = await submit(client, token, "pay", brcode=charge.brcode)
    if message is None:
        assert status == 200 and "data-review" in html
    else:
        assert status == 422 and nb(message) in html and "data-review" not in html
        assert html.count('role="alert"') == 1 and 'class="field-error"' not in html
    assert await balance(merchant) == 500


async def test_reviewing_refuses_what_paying_would(
    app: Quart, client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    charge = await their_charge(app, other)
    theirs = app.test_client()
    status, html = await submit(
        theirs, await login(theirs, other.email), "pay", brcode=charge.brcode
    )
    assert status == 422 and "Esta cobrança é sua." in html
    damaged = charge.brcode[:-1] + ("1" if charge.brcode.endswith("0") else "0")
    status, html = await submit(client, token, "pay", brcode=damaged)
    assert status == 422 and "Código Pix inválido" in html
    await Payment.filter(id=charge.id).update(status="cancelled")
    status, html = await submit(client, token, "pay", brcode=charge.brcode)
    assert status == 422 and "Esta cobrança foi cancelada." in html
    assert await balance(merchant) == 500


async def test_a_received_pix_names_the_charge_it_paid(
    app: Quart, client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    charge = await their_charge(app, other)
    _, html = await submit(client, token, "pay", brcode=charge.brcode)
    confirm = {"brcode": charge.brcode, "key": review_key(html), "step": "confirm"}
    assert (await submit(client, token, "pay", **confirm))[0] == 200
    theirs = app.test_client()
    await login(theirs, other.email)
    received = await page(theirs, "/dashboard")
    row = received[received.index('data-kind="pix_recebido"') :].split("</li>")[0]
    assert "Pix recebido · Padaria São João" in row
    assert f'href="/payments/pix/{charge.id}"' in row and ">Pedido 7</a>" in row
    paid = await page(client, "/dashboard")
    row = paid[paid.index('data-kind="pagamento"') :].split("</li>")[0]
    assert f'href="/payments/pix/{charge.id}"' in row and ">Pedido 7</a>" in row


async def test_home_sends_visitors_to_login_and_merchants_to_their_dashboard(
    client: Client, merchant: Merchant
) -> None:
    response = await client.get("/")
    assert response.status_code == 302 and response.location.endswith("/login")
    await login(client)
    response = await client.get("/")
    assert response.status_code == 302 and response.location.endswith("/dashboard")


async def test_balance_is_the_sum_of_movements_after_every_form(
    app: Quart, client: Client, merchant: Merchant, other: Merchant, token: str
) -> None:
    """Successes and refusals alike: the balance is what the movements add up to."""
    charge = await their_charge(app, other, "3,00")
    steps = [
        ("deposit", {"value": "1.000,00"}),
        ("withdraw", {"value": "2.000"}),  # refused: short
        ("withdraw", {"value": "10.5"}),
        ("transfer", {"to_email": other.email, "value": "0,99"}),
        ("transfer", {"to_email": other.email, "value": "1,234"}),  # refused: ambiguous
        ("pay", {"brcode": charge.brcode, "key": "0" * 32, "step": "confirm"}),
        ("pay", {"brcode": charge.brcode, "key": "1" * 32, "step": "confirm"}),  # paid
    ]
    for name, form in steps:
        await submit(client, token, name, **form)
        for who in (merchant, other):
            assert await movements_sum(who) == await balance(who)
    assert await balance(merchant) == 500 + 100000 - 1050 - 99 - 300
    assert await balance(other) == 99 + 300


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
