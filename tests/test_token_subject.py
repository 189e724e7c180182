"""Validly signed credentials naming an id the database cannot hold: 401 (or 404), never 500.

A token or cookie signed with the app's secret but carrying an out-of-range merchant id
(2**70 overflows BIGINT: a 500 on PostgreSQL) is refused like any other bad credential.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb import validation
from pixweb.config import Config
from pixweb.models import Merchant, Notification
from pixweb.services import merchants
from pixweb.services.clock import utcnow
from tests.web.test_auth import login

# Each is refused by the token's own rules or names no merchant: the refusal is the same.
BAD_SUBJECTS: list[Any] = [
    str(2**70),
    str(2**63),  # one past BIGINT
    str(2**31),  # one past INT, Merchant.id's type
    "9" * 5000,  # past Python's int() digit limit
    "-1",
    "0",
    " 1",
    "1 ",
    "1_0",
    "+1",
    "01",
    "١",  # an Arabic-Indic digit one: int() reads it as 1
    "1.5",
    "1e3",
    "",
    "abc",
    2**70,
    1,
    -1,
    1.5,
    True,
    None,
    [1],
    {"id": 1},
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_token(claims_json: str, secret: str) -> str:
    """An HS256 token over exactly this claims text (JSON the encoder would not write)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{head}.{b64(claims_json.encode())}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def token_for(subject: Any, config: Config, exp: Any = None) -> str:
    exp = int(utcnow().timestamp()) + 300 if exp is None else exp
    return signed_token(json.dumps({"sub": subject, "exp": exp}), config.secret_key)


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.parametrize("subject", BAD_SUBJECTS, ids=repr)
async def test_bearer_with_an_out_of_range_subject_is_401(
    client: Client,
    merchant: Merchant,
    config: Config,
    subject: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {"Authorization": f"Bearer {token_for(subject, config)}"}
    with caplog.at_level(logging.ERROR):
        for _ in range(2):  # the second goes through the token cache
            response = await client.get("/accounts/me", headers=headers)
            assert response.status_code == 401, await response.get_data(as_text=True)
            assert (await response.get_json())["error"] == "unauthorized"
    no_errors_logged(caplog)


async def test_a_good_subject_still_authenticates(
    client: Client, merchant: Merchant, config: Config
) -> None:
    response = await client.get(
        "/accounts/me", headers={"Authorization": f"Bearer {token_for(str(merchant.id), config)}"}
    )
    assert response.status_code == 200


async def test_an_expiry_past_any_float_is_not_a_500(
    client: Client, merchant: Merchant, config: Config
) -> None:
    # PyJWT takes any integer `exp`; float(10**400) overflows.
    token = token_for(str(merchant.id), config, exp=10**400)
    response = await client.get("/accounts/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in {200, 401}


async def test_service_refuses_the_subject_directly(merchant: Merchant, config: Config) -> None:
    for subject in (str(2**70), "-1", " 1"):
        with pytest.raises(merchants.AuthenticationError):
            await merchants.merchant_from_token(
                token_for(subject, config), secret=config.secret_key
            )


@pytest.mark.parametrize("subject", [str(2**70), str(2**31), "-1", "١"], ids=repr)
async def test_socket_autenticar_with_an_out_of_range_subject(
    client: Client,
    merchant: Merchant,
    config: Config,
    subject: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        async with client.websocket("/ws") as socket:
            await socket.receive()  # conexao
            message = {"event": "autenticar", "data": {"token": token_for(subject, config)}}
            await socket.send(json.dumps(message))
            answer = json.loads(await asyncio.wait_for(socket.receive(), 2))
            assert answer == {"event": "erro", "data": {"mensagem": "Token inválido ou expirado"}}
    no_errors_logged(caplog)


# --- the session cookie -------------------------------------------------------------------


@pytest.mark.parametrize("merchant_id", [2**70, 2**63, 2**31, -1, 0, True, 1.0, "1"], ids=repr)
async def test_session_with_an_out_of_range_merchant_id_is_logged_out(
    client: Client, merchant: Merchant, merchant_id: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert merchant.id == 1  # so True and 1.0 would name it, were they taken as ids
    async with client.session_transaction() as session:
        session["merchant_id"] = merchant_id
        session["version"] = merchant.session_version
    with caplog.at_level(logging.ERROR):
        response = await client.get("/dashboard")
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/login")
    no_errors_logged(caplog)


# --- integer path parameters --------------------------------------------------------------


async def test_int_path_parameters_stop_at_the_database_range(app: Quart) -> None:
    seen: list[int] = []

    @app.get("/test-only/merchants/<int:item_id>")
    async def merchant_item(item_id: int) -> str:
        await Merchant.get_or_none(id=item_id)  # the query an id route would make
        seen.append(item_id)
        return "ok"

    @app.get("/test-only/notifications/<bigint:item_id>")
    async def notification_item(item_id: int) -> str:
        await Notification.get_or_none(id=item_id)
        seen.append(item_id)
        return "ok"

    client = app.test_client()
    int_max, bigint_max = validation.INT_MAX, validation.BIGINT_MAX
    assert (await client.get(f"/test-only/merchants/{int_max}")).status_code == 200
    assert (await client.get(f"/test-only/notifications/{bigint_max}")).status_code == 200
    for path in ("merchants", "notifications"):
        for bad in (str(2**63), str(2**70), "9" * 5000, "١", "-1"):
            response = await client.get(f"/test-only/{path}/{bad}")
            assert response.status_code == 404, bad
    assert (await client.get(f"/test-only/merchants/{2**31}")).status_code == 404
    assert seen == [int_max, bigint_max]


def test_id_ranges_are_the_columns() -> None:
    for model, maximum in ((Merchant, validation.INT_MAX), (Notification, validation.BIGINT_MAX)):
        assert model._meta.pk.constraints["le"] == maximum
    assert Merchant._meta.pk.constraints["le"] == merchants.MERCHANT_ID_MAX


def test_parse_and_check_ids() -> None:
    assert validation.parse_id("1", validation.INT_MAX) == 1
    assert validation.parse_id(str(validation.BIGINT_MAX), validation.BIGINT_MAX) is not None
    assert validation.parse_id(str(2**31), validation.INT_MAX) is None
    assert validation.checked_id(1, validation.INT_MAX) == 1
    for bad in BAD_SUBJECTS:
        assert validation.parse_id(bad, validation.INT_MAX) is None, bad
        if bad != 1:
            assert validation.checked_id(bad, validation.INT_MAX) is None, bad


# --- integers typed into forms ------------------------------------------------------------


@pytest.mark.parametrize("typed", ["²", "9" * 5000, "١٢٠", "-60", "60.0"])
async def test_dashboard_charge_expiry_takes_ascii_seconds_only(
    client: Client, merchant: Merchant, typed: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`"²".isdigit()` is True but int("²") fails; int() refuses 5,000 digits: each was a 500."""
    token = await login(client)
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    form = {"value": "10,00", "description": "", "expires_in": typed}
    with caplog.at_level(logging.ERROR):
        response = await client.post("/dashboard/charge", form=form, headers=headers)
    assert response.status_code == 422
    no_errors_logged(caplog)
