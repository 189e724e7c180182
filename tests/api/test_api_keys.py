"""API keys: made with a login token, shown once, limited to their scopes, revoked at once
on every server (a second app on the same database), never logged nor returned again."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from quart import Quart
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client

from pixweb.app import create_app
from pixweb.config import Config
from pixweb.errors import InsufficientScopeError
from pixweb.models import ApiKey, Merchant
from pixweb.services import api_keys
from pixweb.services.clock import utcnow
from tests.conftest import bearer, make_merchant

Headers = dict[str, str]
ALL = list(api_keys.SCOPES)


async def make_key(
    client: Client, auth: Headers, *scopes: str, name: str = "Loja virtual"
) -> dict[str, Any]:
    response = await client.post(
        "/api-keys", json={"name": name, "scopes": list(scopes)}, headers=auth
    )
    assert response.status_code == 201, await response.get_data()
    return dict(await response.get_json())


def key_auth(created: dict[str, Any]) -> Headers:
    return {"Authorization": f"Bearer {created['key']}"}


async def refused(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data()
    return dict(await response.get_json())


async def test_a_key_is_shown_once_then_listed_without_it(client: Client, auth: Headers) -> None:
    created = await make_key(client, auth, "charges:write", "charges:read")
    key = created["key"]
    assert key.startswith("pxw_") and len(key) == 4 + 43
    assert created["prefix"] == key[:12]
    assert created["scopes"] == ["charges:read", "charges:write"]  # the fixed order
    assert created["last_used_at"] is None and created["revoked_at"] is None
    row = await ApiKey.get(id=created["id"])
    assert row.key_hash == api_keys.key_hash(key) and key not in row.key_hash
    listing = await client.get("/api-keys", headers=auth)
    (item,) = (await listing.get_json())["items"]
    assert set(item) == {
        "id",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert item["prefix"] == created["prefix"]
    body = (await listing.get_data()).decode()
    assert key not in body and key[12:] not in body and row.key_hash not in body


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "x", "scopes": ["charges:read", "payments:all"]}, "scopes", "payments:all"),
        ({"name": "x", "scopes": []}, "scopes", "scopes"),
        ({"name": "   ", "scopes": ["charges:read"]}, "name", "name"),
        ({"name": "a\x1bb", "scopes": ["charges:read"]}, "name", "name"),
        ({"name": "x", "scopes": ["charges:read"], "key": "pxw_mine"}, "key", "key"),
    ],
)
async def test_a_bad_request_names_its_field(
    client: Client, auth: Headers, body: dict[str, Any], field: str, words: str
) -> None:
    answer = await refused(await client.post("/api-keys", json=body, headers=auth), 400)
    assert field in answer["fields"] and words in answer["detail"], answer
    assert await ApiKey.all().count() == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("POST", "/payments/pix", {"value": "10.00"}, "charges:write"),
        ("POST", "/accounts/me/deposits", {"value": "10.00"}, "account:write"),
        ("GET", "/accounts/me", None, "account:read"),
        ("GET", "/accounts/me/movements.csv", None, "account:read"),
        ("POST", "/pix/received/E1/refunds", {}, "refunds:write"),
        ("POST", "/payments/00000000-0000-4000-8000-000000000000/cancel", None, "charges:write"),
    ],
)
async def test_a_route_outside_the_keys_scopes_is_403_naming_the_scope(
    client: Client, auth: Headers, method: str, path: str, body: Any, scope: str
) -> None:
    created = await make_key(client, auth, "charges:read")
    response = await client.open(path, method=method, json=body, headers=key_auth(created))
    answer = await refused(response, 403)
    assert answer == {
        "error": "insufficient_scope",
        "detail": f"this API key lacks the scope {scope}",
    }


async def test_a_key_cannot_make_list_or_revoke_keys(client: Client, auth: Headers) -> None:
    created = await make_key(client, auth, *ALL)
    as_key = key_auth(created)
    body = {"name": "outra", "scopes": ["charges:read"]}
    for response in (
        await client.post("/api-keys", json=body, headers=as_key),
        await client.get("/api-keys", headers=as_key),
        await client.delete(f"/api-keys/{created['id']}", headers=as_key),
        await client.delete("/merchants/me/psp", headers=as_key),
    ):
        answer = await refused(response, 403)
        assert "logged-in merchant" in answer["detail"]
    assert await ApiKey.filter(revoked_at__isnull=True).count() == 1


async def test_a_key_works_on_the_json_api_within_its_scopes(
    client: Client, auth: Headers, merchant: Merchant
) -> None:
    from tests.services.test_ledger import assert_ledger_invariants

    created = await make_key(client, auth, "charges:read", "charges:write", "account:write")
    as_key = key_auth(created)
    response = await client.post("/payments/pix", json={"value": "12.34"}, headers=as_key)
    assert response.status_code == 201, await response.get_data()
    payment = await response.get_json()
    listing = await (await client.get("/payments", headers=as_key)).get_json()
    assert [item["id"] for item in listing["items"]] == [payment["id"]]
    deposit = await client.post("/accounts/me/deposits", json={"value": "5.00"}, headers=as_key)
    assert deposit.status_code == 201
    balance = await (await client.get("/accounts/me", headers=auth)).get_json()
    assert balance["balance"] == "5.00"
    await assert_ledger_invariants()


async def test_another_merchants_key_cannot_be_revoked(client: Client, auth: Headers) -> None:
    created = await make_key(client, auth, "charges:read")
    other = await make_merchant("outra@example.com")
    config: Config = client.app.extensions["pixweb.config"]  # type: ignore[attr-defined]
    other_auth = bearer(other, config)
    await refused(await client.delete(f"/api-keys/{created['id']}", headers=other_auth), 404)
    await refused(await client.delete("/api-keys/999999", headers=auth), 404)
    assert (await (await client.get("/api-keys", headers=other_auth)).get_json())["items"] == []
    assert (await client.get("/payments", headers=key_auth(created))).status_code == 200


async def test_a_revoked_key_is_refused_at_once(client: Client, auth: Headers) -> None:
    created = await make_key(client, auth, "charges:read")
    as_key = key_auth(created)
    assert (await client.get("/payments", headers=as_key)).status_code == 200
    response = await client.delete(f"/api-keys/{created['id']}", headers=auth)
    assert response.status_code == 204 and await response.get_data() == b""
    answer = await refused(await client.get("/payments", headers=as_key), 401)
    assert answer["error"] == "unauthorized"
    again = await client.delete(f"/api-keys/{created['id']}", headers=auth)
    assert again.status_code == 204  # already revoked: no change
    (item,) = (await (await client.get("/api-keys", headers=auth)).get_json())["items"]
    assert item["revoked_at"] is not None


async def test_revocation_is_seen_by_a_second_app_on_the_same_database(
    app: Quart, client: Client, auth: Headers, database_url: str
) -> None:
    """Two app instances (as two workers: each its own caches) share one database: a key
    revoked through one is refused by the other on its very next request."""
    second = create_app({"testing": True, "database_url": database_url, "auto_migrate": False})
    other = second.test_client()
    created = await make_key(client, auth, "charges:read")
    as_key = key_auth(created)
    assert (await other.get("/payments", headers=as_key)).status_code == 200
    assert (await client.get("/payments", headers=as_key)).status_code == 200
    assert (await client.delete(f"/api-keys/{created['id']}", headers=auth)).status_code == 204
    await refused(await other.get("/payments", headers=as_key), 401)
    await refused(await client.get("/payments", headers=as_key), 401)


async def test_a_malformed_key_is_401(client: Client) -> None:
    for token in ("pxw_", "pxw_" + "a" * 43, "pxw_" + "a" * 500):
        headers = {"Authorization": f"Bearer {token}"}
        await refused(await client.get("/payments", headers=headers), 401)


async def test_the_key_is_never_logged_nor_returned_after_creation(
    client: Client, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # Tortoise logs every query with its parameters
    created = await make_key(client, auth, "charges:read")
    key, as_key = created["key"], key_auth(created)
    bodies = [
        await client.get("/api-keys", headers=auth),
        await client.get("/payments", headers=as_key),
        await client.post("/payments/pix", json={"value": "1.00"}, headers=as_key),  # 403
        await client.get("/accounts/me", headers=as_key),  # 403
        await client.delete(f"/api-keys/{created['id']}", headers=auth),
        await client.get("/payments", headers=as_key),  # 401
        await client.get("/api-keys", headers=auth),
    ]
    for response in bodies:
        text = (await response.get_data()).decode() + str(response.headers)
        assert key not in text and key[12:] not in text
    assert caplog.records, "the requests logged nothing: the check would prove nothing"
    assert key not in caplog.text and key[12:] not in caplog.text
    assert created["prefix"] in caplog.text  # what the logs say instead


async def test_last_use_is_written_at_most_once_a_minute(client: Client, auth: Headers) -> None:
    created = await make_key(client, auth, "charges:read")
    as_key = key_auth(created)
    assert (await client.get("/payments", headers=as_key)).status_code == 200
    first = (await ApiKey.get(id=created["id"])).last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    assert (await client.get("/payments", headers=as_key)).status_code == 200
    assert (await ApiKey.get(id=created["id"])).last_used_at == first  # within the minute
    earlier = utcnow() - timedelta(minutes=2)
    await ApiKey.filter(id=created["id"]).update(last_used_at=earlier)
    assert (await client.get("/payments", headers=as_key)).status_code == 200
    latest = (await ApiKey.get(id=created["id"])).last_used_at
    assert latest is not None and latest > earlier + timedelta(minutes=1)
    (item,) = (await (await client.get("/api-keys", headers=auth)).get_json())["items"]
    assert item["last_used_at"] is not None


async def test_the_openapi_document_names_each_routes_scope(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    create = spec["paths"]["/payments/pix"]["post"]
    assert create["security"] == [{"bearer": ["charges:write"]}]
    assert "403" in create["responses"]
    keys = spec["paths"]["/api-keys"]["post"]
    assert keys["security"] == [{"bearer": []}] and "logged-in" in keys["description"]
    assert "204" in spec["paths"]["/api-keys/{key_id}"]["delete"]["responses"]


# The `/ws` JSON socket (the account's balance and movements: `account:read`).


async def _receive(socket: Any, within: float = 2.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(socket.receive(), within)))


async def _authenticate(socket: Any, token: str) -> dict[str, Any]:
    await _receive(socket)  # the greeting
    await socket.send(json.dumps({"event": "autenticar", "data": {"token": token}}))
    return await _receive(socket)


async def test_the_bank_socket_takes_a_key_with_account_read(
    client: Client, auth: Headers, merchant: Merchant
) -> None:
    reader = await make_key(client, auth, "account:read")
    async with client.websocket("/ws") as socket:
        answer = await _authenticate(socket, reader["key"])
        assert answer["event"] == "autenticado" and answer["data"]["usuario_id"] == merchant.id
        await client.post("/accounts/me/deposits", json={"value": "3.00"}, headers=auth)
        assert (await _receive(socket))["event"] == "notificacao"
        assert (await _receive(socket))["data"]["Saldo"] == "3.00"
        # Revoked: the socket joined with it closes (policy), on whichever server holds it.
        await client.delete(f"/api-keys/{reader['id']}", headers=auth)
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                await _receive(socket)
        assert closed.value.args[0] == 1008


async def test_the_bank_socket_refuses_a_key_without_account_read(
    client: Client, auth: Headers
) -> None:
    charges = await make_key(client, auth, "charges:read")
    async with client.websocket("/ws") as socket:
        answer = await _authenticate(socket, charges["key"])
        assert answer == {
            "event": "erro",
            "data": {"mensagem": "Esta chave de API não tem o escopo account:read"},
        }
    revoked = await make_key(client, auth, "account:read")
    await client.delete(f"/api-keys/{revoked['id']}", headers=auth)
    async with client.websocket("/ws") as socket:
        answer = await _authenticate(socket, revoked["key"])
        assert answer == {"event": "erro", "data": {"mensagem": "Token inválido ou expirado"}}


async def test_a_bearer_route_that_declares_no_scope_refuses_keys(
    app: Quart, client: Client, auth: Headers
) -> None:
    """A forgotten `requires_scope` fails closed: the logged-in token passes, a key does not."""
    from pixweb.api.security import bearer_required

    @bearer_required
    async def undeclared() -> str:
        return "ok"

    created = await make_key(client, auth, *ALL)
    async with app.test_request_context("/x", headers=auth):
        assert await undeclared() == "ok"
    async with app.test_request_context("/x", headers=key_auth(created)):
        with pytest.raises(InsufficientScopeError, match="logged-in merchant"):
            await undeclared()
