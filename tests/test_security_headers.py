"""Security headers on every HTTP answer (pages, partials, API, errors, static files), HSTS only
in production, and pages that need nothing inline, so the strict policy holds in a browser
(tests/e2e/test_csp.py checks it in Chromium)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from werkzeug.routing import Rule

from pixweb.models import Merchant
from tests.support import PRODUCTION
from tests.web.test_auth import login

STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
}
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
INLINE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),  # a script without src
    re.compile(r"<style\b", re.I),
    re.compile(r"\sstyle=", re.I),
    re.compile(r"\son[a-z]+=", re.I),  # onclick= and friends
    re.compile(r"\shx-on", re.I),  # htmx compiles these with Function(): eval
    re.compile(r"javascript:", re.I),
]


def directives(response: Any) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    parts = (part.strip().split(" ", 1) for part in policy.split(";"))
    return dict(parts)


def assert_secured(response: Any, *, production: bool = False, docs: bool = False) -> None:
    """The headers, the strict policy (the Swagger UI's adds its script's hash), HSTS or not."""
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, name
    policy = directives(response)
    if docs:
        assert re.fullmatch(r"'self' 'sha256-[A-Za-z0-9+/]{43}='", policy["script-src"])
        policy["script-src"] = STRICT["script-src"]
    assert policy == STRICT
    hsts = response.headers.get("Strict-Transport-Security")
    if production:
        assert hsts is not None and re.fullmatch(r"max-age=(\d+); includeSubDomains", hsts)
        assert int(hsts.split("=")[1].split(";")[0]) >= 31_536_000  # a year at least
    else:
        assert hsts is None


def example_url(rule: Rule, payment_id: str) -> str:
    """`rule` with its arguments filled in: the real payment where a uuid goes."""
    values = {
        name: payment_id if type(converter).__name__ == "UUIDConverter" else "x"
        for name, converter in rule._converters.items()
    }
    url = rule.rule
    for name, value in values.items():
        url = re.sub(rf"<[^>]*\b{name}>", value, url)
    return url


async def make_payment(client: Client, auth: dict[str, str]) -> str:
    response = await client.post("/payments/pix", json={"value": "10.00"}, headers=auth)
    assert response.status_code == 201
    return str((await response.get_json())["id"])


async def test_every_route_answers_with_the_headers(
    app: Quart, client: Client, auth: dict[str, str]
) -> None:
    """Walk the URL map: each HTTP route and method, whatever it answers (200, 302, 400...)."""
    payment_id = await make_payment(client, auth)
    seen = set()
    for rule in app.url_map.iter_rules():
        if rule.websocket:
            continue
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            url = example_url(rule, payment_id)
            response = await client.open(url, method=method, headers=auth)
            assert_secured(response, docs=rule.endpoint == "swagger_ui")
            seen.add(response.status_code)
    assert {200, 302, 400, 404} <= seen  # the walk met answers of every kind


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/login", {}),
        ("/register", {}),
        ("/tools/brcode", {}),
        ("/tools/brcode/report?code=000201", {"HX-Request": "true"}),
        ("/dashboard", {}),
        ("/payments/pix/00000000-0000-4000-8000-000000000000", {"Accept": "text/html"}),
        ("/no/such/page", {"Accept": "text/html"}),
        ("/no/such/resource", {"Accept": "application/json"}),
        ("/static/css/app.css", {}),
        ("/openapi.json", {}),
    ],
)
async def test_pages_partials_errors_and_files(
    client: Client, path: str, headers: dict[str, str]
) -> None:
    assert_secured(await client.get(path, headers=headers))


async def test_the_logged_in_dashboard_and_the_payer_page(
    client: Client, merchant: Merchant, auth: dict[str, str]
) -> None:
    payment_id = await make_payment(client, auth)
    assert_secured(await client.get(f"/payments/pix/{payment_id}"))
    await login(client)
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert_secured(response)


async def test_an_unexpected_error_answers_with_the_headers(app: Quart) -> None:
    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("boom")

    client = app.test_client()
    for accept in ("text/html", "application/json"):
        response = await client.get("/boom", headers={"Accept": accept})
        assert response.status_code == 500
        assert_secured(response)


async def test_pages_need_nothing_inline(
    client: Client, merchant: Merchant, auth: dict[str, str]
) -> None:
    """No inline script, style, style attribute or event handler: the policy refuses them all."""
    payment_id = await make_payment(client, auth)
    pages = ["/login", "/register", "/tools/brcode", f"/payments/pix/{payment_id}", "/no/such"]
    bodies = {p: await client.get(p, headers={"Accept": "text/html"}) for p in pages}
    await login(client)
    bodies["/dashboard"] = await client.get("/dashboard")
    for page, response in bodies.items():
        html = (await response.get_data()).decode()
        assert "<html" in html, page
        found = [pattern.pattern for pattern in INLINE if pattern.search(html)]
        assert found == [], f"{page} has inline code the policy refuses: {found}"


async def test_swagger_ui_allows_its_own_inline_script_and_no_other(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    html = await response.get_data()
    inline = re.findall(rb"<script>(.*?)</script>", html, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert directives(response)["script-src"] == f"'self' 'sha256-{digest}'"
    assert_secured(response, docs=True)


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return dict(PRODUCTION)

    async def test_hsts_on_pages_and_api(self, client: Client, auth: dict[str, str]) -> None:
        payment_id = await make_payment(client, auth)
        for path in ("/login", f"/payments/pix/{payment_id}", "/payments", "/healthz"):
            assert_secured(await client.get(path, headers=auth), production=True)
        assert_secured(await client.get("/nothing/here"), production=True)
