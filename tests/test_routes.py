"""App-wide invariants, checked by walking the URL map rather than listing routes by hand."""

from __future__ import annotations

import re
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE

# Routes that change state without a token, signature or CSRF token, on purpose: API
# account creation and login, and the development sandbox (404 in production).
PUBLIC_WRITES = {"/auth/register", "/auth/login", "/payments/pix/<uuid:payment_id>/simulate"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Routes whose credential is a secret token in the path (the PSP's webhook intake): an
# unknown one is a 404; tests/api/test_webhooks_in.py checks their bodies with a real token.
PATH_TOKEN_WRITES = {"/webhooks/pix/<token>", "/webhooks/pix/<token>/pix"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def _sample_url(rule: str) -> str:
    rule = re.sub(r"<(?:big)?int:[^>]+>", "1", rule)
    return re.sub(r"<(?:uuid:)?[^>]+>", "00000000-0000-4000-8000-000000000000", rule)


async def test_every_json_route_is_documented_and_no_page_is(app: Quart, client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        for method in methods:
            key = (_openapi_path(rule.rule), method)
            if blueprint.startswith("api_"):
                assert key in documented, f"{method} {rule.rule} missing from OpenAPI"
            elif blueprint.startswith("web_"):
                assert key not in documented, f"page {rule.rule} leaked into OpenAPI"


async def test_every_state_changing_route_needs_credentials(app: Quart, client: Client) -> None:
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.websocket or rule.rule in PUBLIC_WRITES:
            continue
        for method in (rule.methods or set()) & STATE_CHANGING:
            response = await client.open(_sample_url(rule.rule), method=method, json={})
            # 401: no token or signature; 403: a page form without its session's CSRF token.
            refused = {404} if rule.rule in PATH_TOKEN_WRITES else {401, 403}
            assert response.status_code in refused, f"{method} {rule.rule} answered"
            checked += 1
    assert checked >= 3


async def test_api_docs_load_no_asset_from_another_host(client: Client) -> None:
    page = (await (await client.get("/docs")).get_data()).decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets, "the docs page should load Swagger UI"
    for asset in assets:
        assert asset.startswith("/static/"), f"external asset {asset}"
        assert (await client.get(asset)).status_code == 200


NOT_AN_OBJECT = [b"", b"{", b"null", b'"x"', b"[]", b"1e309", b"NaN", b"\xff"]


async def test_every_json_body_route_refuses_a_body_that_is_not_an_object(
    app: Quart, client: Client, auth: dict[str, str], sign: Any
) -> None:
    """On every route that reads a JSON body (the signed confirmation included), past its
    credentials: 400 `invalid_body`, whatever the route."""
    routes = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api_")
        and hasattr(app.view_functions[rule.endpoint], QUART_SCHEMA_REQUEST_ATTRIBUTE)
        and rule.rule not in PATH_TOKEN_WRITES
    ]
    assert len(routes) >= 8
    for rule in routes:
        (method,) = (rule.methods or set()) & STATE_CHANGING
        for body in NOT_AN_OBJECT:
            _, headers = sign(body)  # the confirmation's signature; harmless elsewhere
            response = await client.open(
                _sample_url(rule.rule), method=method, data=body, headers={**headers, **auth}
            )
            assert response.status_code == 400, (rule.rule, body)
            assert (await response.get_json())["error"] == "invalid_body", (rule.rule, body)


async def test_every_operation_declares_the_errors_its_shape_implies(client: Client) -> None:
    """Credentials: 401; a body: 400, 413 (and the body is required); query: 400; path: 404.
    Every error response has the error body's `error` and `detail`."""
    spec = await (await client.get("/openapi.json")).get_json()
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            where = f"{method.upper()} {path}"
            locations = {parameter["in"] for parameter in operation.get("parameters", [])}
            if operation.get("security"):
                assert "401" in declared, where
            if "requestBody" in operation:
                assert {"400", "413"} <= declared, where
                assert operation["requestBody"]["required"] is True, where
            if "query" in locations:
                assert "400" in declared, where
            if "path" in locations:
                assert "404" in declared, where
            for status in declared - {"200", "201", "204", "503"}:
                content = operation["responses"][status]["content"]
                schema = content["application/json"]["schema"]
                if "$ref" in schema:
                    schema = spec["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
                assert {"error", "detail"} <= set(schema["required"]), (where, status)
                checked += 1
    assert checked >= 30


async def test_non_json_responses_declare_their_media_types(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    qr = spec["paths"]["/payments/pix/qr_code/{filename}"]["get"]["responses"]["200"]
    assert set(qr["content"]) == {"image/png", "image/svg+xml"}
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]
    assert set(metrics["content"]) == {"text/plain"}


async def test_a_wrong_method_names_the_allowed_ones(client: Client) -> None:
    response = await client.open("/payments", method="TRACE")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert (await response.get_json())["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "value", ["0.5", "1700000000", "2024-05-01 12:00:00Z", "2024-05-01T12:00Z", "2024-05-01"]
)
async def test_date_time_query_parameters_are_rfc_3339(
    client: Client, auth: dict[str, str], value: str
) -> None:
    """The document says `format: date-time`; "0.5" used to pass as a Unix time."""
    for name in ("since", "until"):
        response = await client.get(
            "/accounts/me/movements", query_string={name: value}, headers=auth
        )
        assert response.status_code == 400, (name, value)
        assert name in (await response.get_json())["fields"]
    valid = {"since": "2024-05-01T12:00:00Z", "until": "2024-05-01T12:00:00.5-03:00"}
    response = await client.get("/accounts/me/movements", query_string=valid, headers=auth)
    assert response.status_code == 200


async def test_every_authenticated_json_route_declares_and_enforces_a_scope(
    app: Quart, client: Client, auth: dict[str, str]
) -> None:
    """Every route behind a bearer token names the API key scope it needs (or that only a
    logged-in merchant may call it), and refuses a key without it: 403 naming the scope,
    before its body or path is even looked at."""
    from pixweb.deps import LOGIN_ONLY, SCOPE_ATTRIBUTE
    from pixweb.services import api_keys

    async def key(*scopes: str) -> str:
        body = {"name": "chave", "scopes": list(scopes)}
        return str(
            (await (await client.post("/api-keys", json=body, headers=auth)).get_json())["key"]
        )

    # For each scope, a key with every other one; and one with them all.
    keys = {
        s: await key(*(other for other in api_keys.SCOPES if other != s)) for s in api_keys.SCOPES
    }
    every = {"Authorization": f"Bearer {await key(*api_keys.SCOPES)}"}
    spec = await (await client.get("/openapi.json")).get_json()
    checked = 0
    for rule in app.url_map.iter_rules():
        func = app.view_functions[rule.endpoint]
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = spec["paths"].get(_openapi_path(rule.rule), {}).get(method.lower(), {})
            if not operation.get("security"):
                continue
            scope = getattr(func, SCOPE_ATTRIBUTE, None)
            assert scope is not None, f"{method} {rule.rule} declares no scope"
            key = keys["charges:read" if scope == LOGIN_ONLY else scope]
            response = await client.open(
                _sample_url(rule.rule),
                method=method,
                data=b"not json",
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 403, f"{method} {rule.rule} answered"
            detail = (await response.get_json())["detail"]
            assert scope in detail or scope == LOGIN_ONLY, (rule.rule, detail)
            # With the scope, the key gets past the guards (to the body or the lookup).
            response = await client.open(
                _sample_url(rule.rule), method=method, data=b"not json", headers=every
            )
            allowed = response.status_code != 403
            assert allowed is (scope != LOGIN_ONLY), f"{method} {rule.rule}: {response.status_code}"
            checked += 1
    assert checked >= 25
