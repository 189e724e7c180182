"""NUL and other control characters (and unpaired surrogates) in text: refused with a 400 that
names the field, before any database sees them, the same on SQLite and PostgreSQL.

PostgreSQL refuses NUL in text (the statement fails: a 500) where SQLite stores it silently;
an unpaired surrogate cannot be encoded at all. Every writer (API, pages, CLI) goes through
the services, which check the text; queries, headers and socket messages are checked too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb import validation
from pixweb.config import Config
from pixweb.errors import ControlCharacterError
from pixweb.models import Merchant, Movement, Payment
from pixweb.pix import brcode
from pixweb.services import accounts, merchants, payments, settlement
from tests.conftest import PASSWORD, bearer, make_merchant
from tests.web.test_auth import csrf_token, login

# NUL, a C0 control, ESC, a line break, DEL, a C1 control, an unpaired surrogate.
BAD = ["\x00", "\x01", "\x1b", "\n", "\x7f", "\x9b", "\ud800"]
BAD_IDS = ["NUL", "SOH", "ESC", "LF", "DEL", "CSI", "surrogate"]
REGISTER = {
    "name": "Café Aurora",
    "email": "nova@example.com",
    "password": "s3nha-bem-segura",
    "city": "Recife",
    "pix_key": "nova@example.com",
}
MESSAGE_PT = "Remova os caracteres invisíveis ou de controle deste campo."


def spliced(value: str, bad: str) -> str:
    """`value` with `bad` in the middle (not at an end, where trimming would drop it)."""
    middle = len(value) // 2
    return value[:middle] + bad + value[middle:]


def dumps(payload: Any) -> bytes:
    # ensure_ascii writes a surrogate as \ud800, as a client would send it.
    return json.dumps(payload).encode()


JSON = {"Content-Type": "application/json"}


async def assert_refused(response: Any, field: str, bad: str = "\x00") -> None:
    assert response.status_code == 400, await response.get_data(as_text=True)
    body = await response.get_json()
    # pydantic itself refuses a JSON string holding an unpaired surrogate (still naming it).
    codes = {"invalid_characters", "invalid_input"} if bad == "\ud800" else {"invalid_characters"}
    assert body["error"] in codes, body
    assert field in body["fields"], body
    assert field in body["detail"]


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    with caplog.at_level(logging.ERROR):
        yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# --- the validator ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_check_text_refuses_and_names_the_field(bad: str) -> None:
    with pytest.raises(ControlCharacterError) as refused:
        validation.check_text("city", spliced("Recife", bad))
    assert refused.value.fields == {"city": validation.CONTROL_MESSAGE}


def test_check_text_keeps_ordinary_text() -> None:
    for text in ("São João", "Ação & Cia. (Loja 2) — 100%", "😀 ﬁ Ａ", "\u00a0", ""):
        assert validation.check_text("name", text) == text


# --- registration: API, service, page -----------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("field", list(REGISTER))
async def test_register_refuses_control_characters(client: Client, field: str, bad: str) -> None:
    body = {**REGISTER, field: spliced(REGISTER[field], bad)}
    response = await client.post("/auth/register", data=dumps(body), headers=JSON)
    await assert_refused(response, field, bad)
    assert await Merchant.all().count() == 0


async def test_the_service_refuses_what_the_cli_passes(app: Any) -> None:
    for field in REGISTER:
        with pytest.raises(ControlCharacterError) as refused:
            await make_merchant(**{**REGISTER, field: spliced(REGISTER[field], "\x00")})
        assert list(refused.value.fields or {}) == [field]
    assert await Merchant.all().count() == 0


@pytest.mark.parametrize("field", ["name", "email", "city", "pix_key", "password"])
async def test_sign_up_page_tells_which_field_in_portuguese(client: Client, field: str) -> None:
    form = {**REGISTER, field: spliced(REGISTER[field], "\x00"), "csrf_token": ""}
    form["csrf_token"] = await csrf_token(client, "/register")
    response = await client.post("/register", form=form)
    assert response.status_code == 422
    html = await response.get_data(as_text=True)
    assert MESSAGE_PT in html
    assert await Merchant.all().count() == 0


# --- login ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("field", ["email", "password"])
async def test_login_with_control_characters_is_a_plain_401(
    client: Client, merchant: Merchant, field: str, bad: str
) -> None:
    body = {"email": merchant.email, "password": PASSWORD}
    body[field] = spliced(body[field], bad)
    response = await client.post("/auth/login", data=dumps(body), headers=JSON)
    answer = await response.get_json()
    if bad == "\ud800":  # refused by pydantic, naming the field
        assert (response.status_code, list(answer["fields"])) == (400, [field])
    else:  # no account can have it: the usual answer, and no query was made with it
        assert (response.status_code, answer["error"]) == (401, "unauthorized")


async def test_login_page_with_a_nul_is_the_usual_message(
    client: Client, merchant: Merchant
) -> None:
    form = {"email": "loja\x00@example.com", "password": PASSWORD}
    form["csrf_token"] = await csrf_token(client)
    response = await client.post("/login", form=form)
    assert response.status_code == 422
    assert "E-mail ou senha inválidos." in await response.get_data(as_text=True)


# --- charges, transfers, paying, the bank's confirmation ----------------------------------


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
async def test_charge_description(client: Client, auth: dict[str, str], bad: str) -> None:
    body = {"value": "10.00", "description": spliced("Pedido 42", bad)}
    response = await client.post("/payments/pix", data=dumps(body), headers={**auth, **JSON})
    await assert_refused(response, "description", bad)
    assert await Payment.all().count() == 0


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("field", ["description", "to_email"])
async def test_transfer_fields(
    client: Client, merchant: Merchant, auth: dict[str, str], broker: Any, field: str, bad: str
) -> None:
    await make_merchant("b@example.com", name="Mercado", pix_key="b@example.com")
    await accounts.deposit(merchant, 1000, broker=broker)
    body = {"value": "1.00", "to_email": "b@example.com", "description": "Aluguel"}
    body[field] = spliced(body[field], bad)
    response = await client.post(
        "/accounts/me/transfers", data=dumps(body), headers={**auth, **JSON}
    )
    await assert_refused(response, field, bad)
    assert await Movement.filter(kind="transferencia_enviada").count() == 0


async def test_paying_a_code_with_a_nul(
    client: Client, merchant: Merchant, auth: dict[str, str], broker: Any
) -> None:
    # A code with a NUL in the merchant's name, and a CRC that matches it.
    built = brcode.build(
        key="b@example.com", name="Mercado", city="Recife", amount_cents=100, txid="abcd"
    )
    body = built[:-4].replace("Mercado", "Merc\x00do")
    code = body + brcode.crc16(body.encode())
    await accounts.deposit(merchant, 1000, broker=broker)
    response = await client.post(
        "/accounts/me/payments", data=dumps({"brcode": code}), headers={**auth, **JSON}
    )
    assert 400 <= response.status_code < 500
    assert (await response.get_json())["fields"].keys() == {"brcode"}


@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["NUL", "surrogate"])
async def test_confirmation_with_a_control_character_in_the_txid(
    client: Client, sign: Any, bad: str
) -> None:
    body, headers = sign(dumps({"bank_payment_id": spliced("abc123", bad), "value": "1.00"}))
    response = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    await assert_refused(response, "bank_payment_id", bad)


async def test_services_refuse_what_no_api_type_checked(merchant: Merchant, broker: Any) -> None:
    other = await make_merchant("b@example.com", name="Mercado", pix_key="b@example.com")
    with pytest.raises(ControlCharacterError):
        await payments.create_payment(
            merchant, amount_cents=100, description="a\ud800b", broker=broker
        )
    with pytest.raises(ControlCharacterError):
        await accounts.transfer(merchant, other.email, 100, description="a\ud800", broker=broker)
    with pytest.raises(ControlCharacterError):
        await settlement.confirm_payment(
            txid="a\x00", amount_cents=100, end_to_end_id=None, broker=broker
        )
    with pytest.raises(ControlCharacterError):
        await settlement.pay_brcode(merchant, "0002\ud800", broker=broker)


# --- dashboard forms ----------------------------------------------------------------------


async def dashboard_form(client: Client, token: str, name: str, **form: str) -> tuple[int, str]:
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    response = await client.post(f"/dashboard/{name}", form=form, headers=headers)
    return response.status_code, await response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("charge", {"value": "10,00", "description": "Pedido\x0042", "expires_in": ""}),
        ("transfer", {"value": "1,00", "to_email": "b@example.com", "description": "a\x00b"}),
        ("transfer", {"value": "1,00", "to_email": "b\x00@example.com", "description": ""}),
    ],
)
async def test_dashboard_forms_tell_which_field_in_portuguese(
    client: Client, merchant: Merchant, broker: Any, name: str, form: dict[str, str]
) -> None:
    await make_merchant("b@example.com", name="Mercado", pix_key="b@example.com")
    await accounts.deposit(merchant, 1000, broker=broker)
    token = await login(client)
    status, html = await dashboard_form(client, token, name, **form)
    assert status == 422
    assert MESSAGE_PT in html
    assert await Payment.all().count() == 0
    assert await Movement.filter(kind="transferencia_enviada").count() == 0


# --- query strings and headers --------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/payments?cursor=ab%00cd",
        "/payments?status=pending%00",
        "/accounts/me/movements?kind=deposito%00",
        "/accounts/me/movements?since=2024-05-01T12:00:00Z%00",
        "/notifications?before=1%00",
    ],
)
async def test_query_strings_with_nul_are_400(
    client: Client, auth: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=auth)
    assert response.status_code == 400, await response.get_data(as_text=True)


async def test_idempotency_key_with_a_control_character(
    client: Client, auth: dict[str, str]
) -> None:
    headers = {**auth, "Idempotency-Key": "key\x01one"}
    response = await client.post("/accounts/me/deposits", json={"value": "1.00"}, headers=headers)
    assert response.status_code == 400
    assert "Idempotency-Key" in (await response.get_json())["fields"]


# --- the JSON socket ------------------------------------------------------------------------


async def test_socket_messages_with_surrogates_get_an_erro(
    client: Client, merchant: Merchant, config: Config
) -> None:
    async with client.websocket("/ws") as socket:
        await socket.receive()  # conexao
        for message in (
            {"event": "x\ud800", "data": {}},
            {"event": "autenticar", "data": {"token": "a\ud800b"}},
            {"event": "autenticar", "data": {"token": "a\x00b"}},
        ):
            await socket.send(json.dumps(message))
            answer = json.loads(await asyncio.wait_for(socket.receive(), 2))
            assert answer["event"] == "erro"
            answer["data"]["mensagem"].encode()  # what a real server must encode as UTF-8
        token = bearer(merchant, config)["Authorization"].split()[1]
        await socket.send(json.dumps({"event": "autenticar", "data": {"token": token}}))
        answer = json.loads(await asyncio.wait_for(socket.receive(), 2))
        assert answer["event"] == "autenticado"


async def test_merchants_service_does_not_query_with_a_surrogate(merchant: Merchant) -> None:
    with pytest.raises(merchants.AuthenticationError):
        await merchants.authenticate("loja\ud800@example.com", PASSWORD)
