"""Login, logout and sign-up pages: session cookie, CSRF, rate limit, Portuguese errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.models import Merchant
from pixweb.services import accounts
from tests.conftest import PASSWORD, make_merchant
from tests.support import PRODUCTION

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW = {
    "name": "Sorveteria Polo Norte",
    "email": "sorvete@example.com",
    "password": "uma senha bem longa",
    "city": "Recife",
    "pix_key": "+5581999990000",
}


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status_code == status
    return (await response.get_data()).decode()


async def csrf_token(client: Client, path: str = "/login") -> str:
    match = CSRF.search(await page(client, path))
    assert match is not None
    return match.group(1)


async def login(client: Client, email: str = "loja@example.com", password: str = PASSWORD) -> str:
    """Log `client` in through the form; return the session's (new) CSRF token."""
    form = {"email": email, "password": password, "csrf_token": await csrf_token(client)}
    response = await client.post("/login", form=form)
    assert response.status_code == 302 and response.location.endswith("/dashboard")
    return await csrf_token(client, "/dashboard")


async def logged_in_as(client: Client) -> str | None:
    """The e-mail the dashboard shows, or None when it sends the client to /login."""
    response = await client.get("/dashboard")
    if response.status_code == 302:
        assert response.location.endswith("/login")
        return None
    match = re.search(r'<p class="hint">([^ ]+) ·', (await response.get_data()).decode())
    return match.group(1) if match else "?"


def set_cookie(response: Any) -> str:
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return str(cookie)


@pytest.mark.parametrize(
    ("path", "texts"),
    [
        ("/login", ["<title>Entrar · pixweb</title>", "Senha", "Cadastre sua loja"]),
        ("/register", ["Cadastre sua loja", "Nome da loja", "Chave Pix que recebe", "Criar conta"]),
    ],
)
async def test_pages_are_in_portuguese_with_a_csrf_field(
    client: Client, path: str, texts: list[str]
) -> None:
    html = await page(client, path)
    assert '<html lang="pt-BR">' in html and CSRF.search(html)
    for text in texts:
        assert text in html


async def test_logout_is_post_only(client: Client) -> None:
    assert "Método não permitido" in await page(client, "/logout", 405)


async def test_session_cookie_is_http_only_and_lax_but_not_secure_in_development(
    client: Client, merchant: Merchant
) -> None:
    first = await client.get("/login")
    cookie, before = set_cookie(first), CSRF.findall((await first.get_data()).decode())[0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    response = await client.post(
        "/login", form={"email": merchant.email, "password": PASSWORD, "csrf_token": before}
    )
    cookie = set_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert await csrf_token(client, "/dashboard") != before  # a fresh session on login


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return dict(PRODUCTION)

    async def test_session_cookie_is_secure(self, client: Client, merchant: Merchant) -> None:
        cookie = set_cookie(await client.get("/login"))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        await login(client)
        assert await logged_in_as(client) == merchant.email


async def test_dashboard_without_a_session_redirects_to_login(client: Client) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 302 and response.location.endswith("/login")


async def test_login_page_sends_a_logged_in_merchant_to_the_dashboard(
    client: Client, merchant: Merchant
) -> None:
    await login(client)
    response = await client.get("/login")
    assert response.status_code == 302 and response.location.endswith("/dashboard")


async def test_logout_ends_the_session(client: Client, merchant: Merchant) -> None:
    token = await login(client)
    assert await logged_in_as(client) == merchant.email
    response = await client.post("/logout", form={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert await logged_in_as(client) is None


async def test_logout_kills_copies_of_the_session_cookie(
    app: Quart, client: Client, merchant: Merchant
) -> None:
    """A cookie copied before logout (another tab, a stolen copy) stops working too."""
    token = await login(client)
    thief = app.test_client()
    assert client.cookie_jar is not None and thief.cookie_jar is not None
    for cookie in client.cookie_jar:
        thief.cookie_jar.set_cookie(cookie)
    assert await logged_in_as(thief) == merchant.email
    await client.post("/logout", form={"csrf_token": token})
    assert await logged_in_as(thief) is None
    await login(client)  # logging in again works, with a fresh session
    assert await logged_in_as(client) == merchant.email


CSRF_TARGETS = {
    "/login": {"email": "b@example.com", "password": PASSWORD},
    "/register": NEW,
    "/logout": {},
    "/dashboard/deposit": {"value": "10,00"},
}


@pytest.mark.parametrize("path", CSRF_TARGETS)
@pytest.mark.parametrize("sent", ["missing", "wrong", "another session's", "no session at all"])
async def test_state_changing_posts_without_the_sessions_csrf_token_are_403(
    app: Quart, client: Client, merchant: Merchant, path: str, sent: str
) -> None:
    other = await make_merchant("b@example.com", name="Mercado Boa Vista")
    token = await login(client)
    form = dict(CSRF_TARGETS[path])
    if sent == "wrong":
        form["csrf_token"] = token[:-2] + "xx"
    elif sent == "another session's":
        form["csrf_token"] = await csrf_token(app.test_client())
    poster = app.test_client() if sent == "no session at all" else client
    response = await poster.post(path, form=form)
    assert response.status_code == 403
    assert await logged_in_as(client) == merchant.email  # neither logged out nor switched
    assert await Merchant.all().count() == 2
    for person in (merchant, other):
        assert (await accounts.get_account(person.id)).balance_cents == 0
    header = await client.post(path, form=CSRF_TARGETS[path], headers={"X-CSRF-Token": "nope"})
    assert header.status_code == 403


@pytest.mark.parametrize(
    ("email", "shown"),
    [
        ("loja@example.com", "loja@example.com"),
        ("ninguem@example.com", "ninguem@example.com"),
        ('"><script>x()</script>', "&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"),
    ],
)
async def test_wrong_credentials_are_422_with_one_message_and_no_session(
    client: Client, merchant: Merchant, email: str, shown: str
) -> None:
    form = {"email": email, "password": "senha errada", "csrf_token": await csrf_token(client)}
    response = await client.post("/login", form=form)
    assert response.status_code == 422
    html = (await response.get_data()).decode()
    assert "E-mail ou senha inválidos." in html and f'value="{shown}"' in html
    assert "<script>" not in html
    assert await logged_in_as(client) is None


async def test_the_eleventh_login_within_a_minute_is_429_in_portuguese(
    client: Client, merchant: Merchant
) -> None:
    token = await csrf_token(client)
    for _ in range(10):  # PIXWEB_AUTH_RATE_LIMIT's default (more in tests/test_rate_limits.py)
        form = {"email": merchant.email, "password": "senha errada", "csrf_token": token}
        assert (await client.post("/login", form=form)).status_code == 422
    form = {"email": merchant.email, "password": PASSWORD, "csrf_token": token}
    response = await client.post("/login", form=form)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    html = (await response.get_data()).decode()
    assert "Muitas tentativas. Aguarde" in html and 'role="alert"' in html
    assert await logged_in_as(client) is None


async def test_register_creates_the_merchant_and_logs_it_in(client: Client) -> None:
    response = await client.post("/register", form={**NEW, "csrf_token": await csrf_token(client)})
    assert response.status_code == 302 and response.location.endswith("/dashboard")
    assert await logged_in_as(client) == NEW["email"]
    created = await Merchant.get(email=NEW["email"])
    assert created.name == NEW["name"] and created.password_hash != NEW["password"]
    assert (await accounts.get_account(created.id)).balance_cents == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pix_key": "123"}, "Chave Pix inválida: use CPF, CNPJ, e-mail, telefone com +55"),
        ({"pix_key": "111.111.111-11"}, "Chave Pix inválida"),
        ({"email": "LOJA@example.com"}, "Já existe uma conta com este e-mail."),
        ({"email": "sem-arroba"}, "Informe um e-mail válido."),
        ({"password": "curta"}, "A senha deve ter de 8 a 256 caracteres."),
        ({"name": "   "}, "Informe um nome com letras ou números"),
    ],
)
async def test_register_refusals_are_422_in_portuguese_and_create_nothing(
    client: Client, merchant: Merchant, change: dict[str, str], message: str
) -> None:
    form = {**NEW, **change, "csrf_token": await csrf_token(client, "/register")}
    response = await client.post("/register", form=form)
    assert response.status_code == 422
    html = (await response.get_data()).decode()
    assert message in html and 'class="field-error"' in html
    assert NEW["password"] not in html and "curta" not in html  # never echoed
    assert await Merchant.all().count() == 1
    assert await logged_in_as(client) is None
