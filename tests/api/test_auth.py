"""JSON API of merchant accounts: registration, login and the bearer tokens it hands out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from pixweb.deps import TOKENS_KEY
from pixweb.models import Merchant, Payment
from pixweb.services import merchants
from pixweb.services.merchants import TokenCache
from tests.api.test_payments import JSON, UNKNOWN, assert_error, create
from tests.conftest import PASSWORD, bearer, make_merchant

NEW = {
    "name": "Café Aurora",
    "email": "Nova@Example.com",
    "password": "s3nha-bem-segura",
    "city": "Recife",
    "pix_key": "529.982.247-25",
}


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def handmade(header: dict[str, Any], claims: dict[str, Any], secret: str | None) -> str:
    """A JWT built by hand: HMAC-SHA512 when a secret is given, else no signature."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha512).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


# --- register -----------------------------------------------------------------------------


async def test_register_returns_the_merchant_without_secrets(client, app) -> None:
    response = await client.post("/auth/register", json=NEW)
    assert response.status_code == 201
    body = await response.get_json()
    assert set(body) == {"id", "name", "email", "city", "pix_key", "pix_key_type", "created_at"}
    assert not any("password" in str(v) or "argon" in str(v) for v in body.values())
    assert body["email"] == "nova@example.com"
    assert (body["pix_key"], body["pix_key_type"]) == ("52998224725", "cpf")
    stored = await Merchant.get(id=body["id"])
    assert stored.password_hash != NEW["password"] and stored.password_hash.startswith("$argon2")
    login = await client.post(
        "/auth/login", json={"email": "nova@example.com", "password": NEW["password"]}
    )
    assert login.status_code == 200


@pytest.mark.parametrize("email", ["loja@example.com", "LOJA@Example.COM", " loja@example.com "])
async def test_register_with_a_taken_email_conflicts(client, merchant, email) -> None:
    response = await client.post("/auth/register", json={**NEW, "email": email})
    await assert_error(response, 409, "conflict")
    assert await Merchant.all().count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pix_key": "529.982.247-26"}, "pix_key"),  # bad CPF check digit
        ({"pix_key": "4915112345678"}, "pix_key"),  # a foreign phone without '+'
        ({"pix_key": "11999998888"}, "pix_key"),  # phone without '+', CPF-shaped
        ({"pix_key": ""}, "pix_key"),
        ({"password": "1234567"}, "password"),
        ({"password": 12345678}, "password"),
        ({"name": 123}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"city": ["Recife"]}, "city"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"is_admin": True}, "is_admin"),
        ({"password_hash": "$argon2id$..."}, "password_hash"),
    ],
)
async def test_register_refuses_bad_fields(client, app, change, field) -> None:
    response = await client.post("/auth/register", json={**NEW, **change})
    await assert_error(response, 400, "invalid_input", field)
    assert await Merchant.all().count() == 0


@pytest.mark.parametrize("missing", ["name", "email", "password", "city", "pix_key"])
async def test_register_refuses_missing_fields(client, app, missing) -> None:
    payload = {k: v for k, v in NEW.items() if k != missing}
    response = await client.post("/auth/register", json=payload)
    await assert_error(response, 400, "invalid_input", missing)
    assert await Merchant.all().count() == 0


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
@pytest.mark.parametrize("body", [b"", b"{", b"null", b'"x"', b"[]", b"1", b"1e309"])
async def test_auth_bodies_that_are_not_objects_are_refused(client, app, path, body) -> None:
    response = await client.post(path, data=body, headers=JSON)
    await assert_error(response, 400, "invalid_body")
    assert await Merchant.all().count() == 0


# --- login --------------------------------------------------------------------------------


async def test_login_issues_a_working_bearer_token(client, config, merchant) -> None:
    response = await client.post(
        "/auth/login", json={"email": "Loja@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == config.token_ttl_seconds
    claims = jwt.decode(body["access_token"], config.secret_key, algorithms=["HS256"])
    assert claims["sub"] == str(merchant.id)
    assert claims["exp"] - time.time() == pytest.approx(config.token_ttl_seconds, abs=10)
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {body['access_token']}"}
        listing = await client.get("/payments", headers=headers)
        assert listing.status_code == 200
        assert await listing.get_json() == {
            "items": [],
            "next_cursor": None,
            "totals": {"count": 0, "value": "0.00"},
        }


async def test_login_failures_are_indistinguishable(client, merchant) -> None:
    unknown = await client.post(
        "/auth/login", json={"email": "ninguem@example.com", "password": PASSWORD}
    )
    wrong = await client.post(
        "/auth/login", json={"email": merchant.email, "password": PASSWORD + "!"}
    )
    first = await assert_error(unknown, 401, "unauthorized")
    assert await assert_error(wrong, 401, "unauthorized") == first
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "loja@example.com"}, "password"),
        ({"email": "loja@example.com", "password": 1}, "password"),
        ({"email": "loja@example.com", "password": PASSWORD, "remember": True}, "remember"),
    ],
)
async def test_login_refuses_bad_fields(client, merchant, payload, field) -> None:
    await assert_error(await client.post("/auth/login", json=payload), 400, "invalid_input", field)


# --- tokens -------------------------------------------------------------------------------

Headers = Callable[[Merchant, str], dict[str, str]]


def _claims(merchant: Merchant, **extra: Any) -> dict[str, Any]:
    return {
        "sub": str(merchant.id),
        "iat": int(time.time()),
        "exp": int(time.time()) + 300,
        **extra,
    }


BAD_TOKENS: dict[str, Headers] = {
    "no header": lambda m, s: {},
    "empty header": lambda m, s: {"Authorization": ""},
    "bearer without token": lambda m, s: {"Authorization": "Bearer "},
    "garbage": lambda m, s: {"Authorization": "Bearer not.a.jwt"},
    "no Bearer prefix": lambda m, s: {"Authorization": jwt.encode(_claims(m), s, "HS256")},
    "Basic scheme": lambda m, s: {"Authorization": "Basic " + jwt.encode(_claims(m), s, "HS256")},
    "expired": lambda m, s: {
        "Authorization": "Bearer "
        + jwt.encode(_claims(m, iat=1_600_000_000, exp=1_600_000_300), s, "HS256")
    },
    "another secret": lambda m, s: {
        "Authorization": "Bearer " + jwt.encode(_claims(m), "another-secret-" * 4, "HS256")
    },
    "alg none": lambda m, s: {
        "Authorization": "Bearer " + handmade({"alg": "none", "typ": "JWT"}, _claims(m), None)
    },
    "HS512 with the right secret": lambda m, s: {
        "Authorization": "Bearer " + handmade({"alg": "HS512", "typ": "JWT"}, _claims(m), s)
    },
    "no exp": lambda m, s: {
        "Authorization": "Bearer " + jwt.encode({"sub": str(m.id)}, s, "HS256")
    },
    "no sub": lambda m, s: {
        "Authorization": "Bearer " + jwt.encode({"exp": int(time.time()) + 300}, s, "HS256")
    },
    "sub not a number": lambda m, s: {
        "Authorization": "Bearer " + jwt.encode(_claims(m, sub="admin"), s, "HS256")
    },
    "sub of nobody": lambda m, s: {
        "Authorization": "Bearer " + jwt.encode(_claims(m, sub="999999"), s, "HS256")
    },
    "tampered payload": lambda m, s: {
        "Authorization": "Bearer "
        + ".".join(
            (lambda p: [p[0], b64(_claims(m, sub="2")), p[2]])(
                jwt.encode(_claims(m), s, "HS256").split(".")
            )
        )
    },
}


@pytest.mark.parametrize("make_headers", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
@pytest.mark.parametrize(
    "request_", [("GET", "/payments"), ("POST", "/payments/pix")], ids=["list", "create"]
)
async def test_bad_tokens_are_refused(client, config, merchant, make_headers, request_) -> None:
    await make_merchant("segunda@example.com")  # sub "2" exists: tampering must still fail
    method, path = request_
    response = await client.open(
        path,
        method=method,
        json={"value": "1.00"},
        headers=make_headers(merchant, config.secret_key),
    )
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_token_of_a_deleted_merchant_is_refused_once_its_cache_entry_ends(
    app, client, config
) -> None:
    now = [1_000_000.0]
    app.extensions[TOKENS_KEY] = TokenCache(config.secret_key, seconds=2, clock=lambda: now[0])
    gone = await make_merchant("sumiu@example.com")
    headers = bearer(gone, config)
    assert (await client.get("/payments", headers=headers)).status_code == 200
    # Rows that belong to the merchant (RESTRICT foreign keys) go first, whatever they are.
    meta = Merchant._meta
    for name in (*meta.backward_o2o_fields, *meta.backward_fk_fields):
        relation = meta.fields_map[name]
        await relation.related_model.filter(**{relation.relation_field: gone.id}).delete()
    await gone.delete()
    assert not await Merchant.exists(id=gone.id)
    now[0] += 1.9  # still remembered: a request reads nothing that could have changed
    assert (await client.get("/payments", headers=headers)).status_code == 200
    now[0] += 0.2
    response = await client.get("/payments", headers=headers)
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_cached_token_is_refused_once_it_expires(app, client, config) -> None:
    app.extensions[TOKENS_KEY] = TokenCache(config.secret_key, seconds=60)
    merchant = await make_merchant("breve@example.com")
    token = merchants.issue_token(merchant, secret=config.secret_key, ttl_seconds=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/payments", headers=headers)).status_code == 200
    await asyncio.sleep(1.1)  # the entry would last 60 s, the token only 1
    await assert_error(await client.get("/payments", headers=headers), 401, "unauthorized")


# --- every API error is JSON --------------------------------------------------------------


async def test_wrong_method_and_huge_body_answer_json(client, auth) -> None:
    payment_id = (await create(client, auth))["id"]
    await assert_error(
        await client.delete(f"/payments/{payment_id}", headers=auth), 405, "method_not_allowed"
    )
    huge = b'{"value": "1.00", "description": "' + b"x" * 70_000 + b'"}'
    response = await client.post("/payments/pix", data=huge, headers={**JSON, **auth})
    await assert_error(response, 413, "request_entity_too_large")
    assert await Payment.all().count() == 1


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/payments", 401),
        ("GET", f"/payments/{UNKNOWN}", 404),
        ("POST", f"/payments/{UNKNOWN}/cancel", 404),
        ("GET", f"/payments/pix/qr_code/{UNKNOWN}.png", 404),
        ("GET", "/payments/pix/qr_code/x.gif", 404),
        ("POST", "/payments/pix", 400),
        ("POST", "/payments/pix/confirmation", 401),
        ("POST", "/auth/login", 400),
        ("GET", "/auth/login", 405),
        ("DELETE", f"/payments/{UNKNOWN}", 405),
    ],
)
async def test_api_errors_are_json_even_for_browsers(client, auth, method, path, status) -> None:
    headers = {**BROWSER, **JSON, **(auth if status != 401 else {})}
    response = await client.open(path, method=method, data=b"{", headers=headers)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = await response.get_json()
    assert set(body) >= {"error", "detail"}
