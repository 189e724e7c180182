"""The "Chaves de API" page: make a key (shown once, with its copy button), the list,
revoking; HTMX answers the block, plain forms the page; CSRF and login required."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

from quart.typing import TestClientProtocol as Client

from pixweb.models import ApiKey, Merchant
from tests.web.test_auth import login, page

PAGE = "/dashboard/api-keys"
HTMX = {"HX-Request": "true"}


def shown_key(body: str) -> str:
    match = re.search(r'id="new-key-value">(pxw_[A-Za-z0-9_-]{43})<', body)
    assert match is not None, body
    return match.group(1)


async def create(
    client: Client, csrf: str, name: str, *scopes: str, htmx: bool = True
) -> tuple[int, str]:
    form = urlencode({"csrf_token": csrf, "name": name, "scopes": list(scopes)}, doseq=True)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **(HTMX if htmx else {})}
    response = await client.post(PAGE, data=form.encode(), headers=headers)
    return response.status_code, (await response.get_data()).decode()


async def test_the_dashboard_links_the_page_which_needs_a_login(
    client: Client, merchant: Merchant
) -> None:
    response = await client.get(PAGE)
    assert response.status_code == 302 and response.location.endswith("/login")
    await login(client)
    assert f'href="{PAGE}"' in await page(client, "/dashboard")
    body = await page(client, PAGE)
    assert "Chaves de API" in body and "Nenhuma chave criada ainda." in body
    assert body.count('type="checkbox" name="scopes"') == 6


async def test_a_key_is_shown_once_with_a_copy_button(client: Client, merchant: Merchant) -> None:
    csrf = await login(client)
    status, body = await create(client, csrf, "ERP da loja", "charges:read", "account:read")
    assert status == 200
    assert body.startswith('<div id="api-keys"')  # the block, not the page
    key = shown_key(body)
    assert f'data-copy="{key}"' in body
    assert "ela não será mostrada de novo" in body
    row = await ApiKey.get(merchant_id=merchant.id)
    assert row.scopes == ["charges:read", "account:read"] and row.name == "ERP da loja"
    assert f"<code>{row.prefix}…</code>" in body and "Nunca usada" in body
    again = await page(client, PAGE)
    assert key not in again and key[12:] not in again and "ERP da loja" in again
    assert "charges:read, account:read" in again
    # The key works, and the page shows its last use.
    api = await client.get("/payments", headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 200
    assert "Nunca usada" not in await page(client, PAGE)


async def test_the_answer_holding_a_key_is_never_stored(client: Client, merchant: Merchant) -> None:
    csrf = await login(client)
    response = await client.post(
        PAGE, form={"csrf_token": csrf, "name": "PDV", "scopes": "charges:write"}
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = (await response.get_data()).decode()
    assert "<html" in body and shown_key(body)  # without JavaScript: the whole page


async def test_a_form_without_name_or_scope_says_so(client: Client, merchant: Merchant) -> None:
    csrf = await login(client)
    status, body = await create(client, csrf, "Sem permissões")
    assert status == 422 and "Escolha ao menos uma permissão." in body
    assert 'value="Sem permissões"' in body
    status, body = await create(client, csrf, "  ", "charges:read")
    assert status == 422 and "Dê um nome à chave" in body
    assert 'value="charges:read" checked' in body
    status, body = await create(client, csrf, "x", "tudo:liberado")
    assert status == 422 and "Permissão desconhecida." in body
    assert await ApiKey.all().count() == 0


async def test_revoking_a_key_refuses_it_at_once(client: Client, merchant: Merchant) -> None:
    csrf = await login(client)
    _, body = await create(client, csrf, "Loja virtual", "charges:read")
    key = shown_key(body)
    row = await ApiKey.get(merchant_id=merchant.id)
    revoke = f"{PAGE}/{row.id}/revoke"
    assert 'hx-confirm="Revogar a chave' in body and f'hx-post="{revoke}"' in body
    forged = await client.post(revoke, form={"csrf_token": "x"}, headers=HTMX)
    assert forged.status_code == 403
    response = await client.post(revoke, form={"csrf_token": csrf}, headers=HTMX)
    body = html.unescape((await response.get_data()).decode())
    assert response.status_code == 200 and "Chave “Loja virtual” revogada" in body
    assert "Revogada em" in body and f'hx-post="{revoke}"' not in body
    api = await client.get("/payments", headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 401


async def test_another_merchants_key_is_not_found(client: Client, merchant: Merchant) -> None:
    from tests.conftest import make_merchant

    other = await make_merchant("outra@example.com")
    theirs = await ApiKey.create(
        merchant_id=other.id,
        name="deles",
        prefix="pxw_x",
        key_hash="0" * 64,
        scopes=[],
        created_at=merchant.created_at,
    )
    csrf = await login(client)
    response = await client.post(f"{PAGE}/{theirs.id}/revoke", form={"csrf_token": csrf})
    assert response.status_code == 404
    assert (await ApiKey.get(id=theirs.id)).revoked_at is None
    assert "deles" not in await page(client, PAGE)
