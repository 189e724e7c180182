"""The "Webhooks" page: register (secret shown once), enable/disable, rotate, delete, test
event and resend, the log with its attempts, errors in Portuguese, and `/ws/webhooks`
pushing a delivery's progress live."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb.config import Config
from pixweb.models import DeliveryStatus, Merchant, WebhookDelivery, WebhookEndpoint
from pixweb.services.clock import utcnow
from pixweb.services.delivery_outcome import record_attempt
from pixweb.services.webhook_sender import Answer
from tests.conftest import bearer, make_merchant
from tests.web.test_auth import login

PAGE = "/dashboard/webhooks"
URL = "https://8.8.8.8/webhooks/pix"
ORIGIN = {"Origin": "http://localhost"}
HX = {"HX-Request": "true"}


async def text(response: Any) -> str:
    return str((await response.get_data()).decode())


async def register(client: Client, csrf: str, **form: Any) -> tuple[int, str]:
    fields = {"csrf_token": csrf, "url": URL, "events": "charge.paid", **form}
    response = await client.post(PAGE, form=fields, headers=HX)
    return response.status_code, await text(response)


@pytest.fixture
async def csrf(client: Client, merchant: Merchant) -> str:
    return await login(client)


async def test_the_page_needs_a_session(client: Client) -> None:
    response = await client.get(PAGE)
    assert response.status_code in (302, 401)


async def test_the_dashboard_links_to_the_page(client: Client, csrf: str) -> None:
    assert 'href="/dashboard/webhooks"' in await text(await client.get("/dashboard"))
    page = await text(await client.get(PAGE))
    assert "Nenhum webhook cadastrado" in page and "Cobrança paga" in page
    assert "<script>" not in page  # strict CSP: no inline script


async def test_registering_shows_the_secret_once(client: Client, csrf: str) -> None:
    status, body = await register(client, csrf, description="Loja virtual")
    assert status == 200
    secret = re.search(r'id="new-secret-value">(whsec_[^<]+)<', body)
    assert secret and "Copiar segredo" in body and "Loja virtual" in body
    assert 'id="webhooks"' in body and "<html" not in body  # the partial, for HTMX
    page = await text(await client.get(PAGE))
    assert URL in page and secret.group(1) not in page and "ativo" in page
    response = await client.post(PAGE, form={"csrf_token": csrf, "url": URL, "events": "x"})
    assert response.status_code == 422 and "<html" in await text(response)  # no JS: the page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"events": []}, "Escolha ao menos um evento."),
        ({"url": "http://127.0.0.1:9/h"}, "Endereço recusado: use https e um endereço público"),
        ({"url": "isso não"}, "Informe a URL completa"),
        ({"description": "a\x1bb"}, "Remova os caracteres invisíveis"),
    ],
)
async def test_a_refused_form_comes_back_422_with_the_message(
    client: Client, csrf: str, form: dict[str, Any], message: str
) -> None:
    status, body = await register(client, csrf, **form)
    assert status == 422 and message in body
    assert await WebhookEndpoint.all().count() == 0


async def test_disable_enable_rotate_and_delete(client: Client, csrf: str) -> None:
    await register(client, csrf)
    endpoint = await WebhookEndpoint.get()
    base = f"{PAGE}/{endpoint.id}"
    form = {"csrf_token": csrf}
    body = await text(await client.post(f"{base}/disable", form=form, headers=HX))
    assert "Webhook desativado." in body and "desativado pelo lojista" in body
    assert "Enviar evento de teste" not in body
    body = await text(await client.post(f"{base}/enable", form=form, headers=HX))
    assert "Webhook ativado." in body and (await WebhookEndpoint.get()).enabled
    response = await client.post(f"{base}/rotate", form={**form, "grace": "7d"}, headers=HX)
    body = await text(response)
    assert "Novo segredo gerado." in body and 'id="new-secret-value">whsec_' in body
    assert "O segredo anterior também assina até" in body
    body = await text(await client.post(f"{base}/delete", form=form, headers=HX))
    assert "Webhook excluído." in body and "Nenhum webhook cadastrado" in body
    assert (await client.post(f"{base}/enable", form=form, headers=HX)).status_code == 404


async def test_without_the_csrf_token_nothing_changes(client: Client, csrf: str) -> None:
    response = await client.post(PAGE, form={"url": URL, "events": "charge.paid"})
    assert response.status_code == 403
    assert await WebhookEndpoint.all().count() == 0


async def test_another_merchants_endpoint_is_404(client: Client, csrf: str, config: Config) -> None:
    other = await make_merchant("outra@example.com")
    body = {"url": URL, "events": ["charge.paid"]}
    created = await client.post("/webhook-endpoints", json=body, headers=bearer(other, config))
    theirs = (await created.get_json())["id"]
    response = await client.post(f"{PAGE}/{theirs}/test", form={"csrf_token": csrf}, headers=HX)
    assert response.status_code == 404
    assert await WebhookDelivery.all().count() == 0
    assert URL not in await text(await client.get(PAGE))


async def test_test_event_then_resend_are_logged_with_their_attempts(
    client: Client, csrf: str, broker: Any
) -> None:
    await register(client, csrf)
    endpoint = await WebhookEndpoint.get()
    base = f"{PAGE}/{endpoint.id}"
    body = await text(await client.post(f"{base}/test", form={"csrf_token": csrf}, headers=HX))
    assert "Evento de teste enviado" in body and "Evento de teste" in body
    delivery = await WebhookDelivery.get()
    answer = Answer(status_code=500, body="erro interno do lojista", error=None, duration_ms=42)
    started = utcnow()
    await record_attempt(delivery, endpoint, answer, started_at=started, broker=broker)
    page = await text(await client.get(PAGE))
    assert "HTTP 500" in page and "42 ms" in page and "erro interno do lojista" in page
    assert "1 tentativa" in page and "pendente" in page
    resend = f"{base}/deliveries/{delivery.id}/resend"
    body = await text(await client.post(resend, form={"csrf_token": csrf}, headers=HX))
    assert "Evento reenviado" in body
    again = await WebhookDelivery.filter(id__not=delivery.id).get()
    assert again.event_id == delivery.event_id and again.manual
    assert body.index(f'id="delivery-{again.id}"') < body.index(f'id="delivery-{delivery.id}"')


async def test_a_disabled_endpoint_refuses_a_test_event_in_portuguese(
    client: Client, csrf: str
) -> None:
    await register(client, csrf)
    endpoint = await WebhookEndpoint.get()
    await WebhookEndpoint.filter(id=endpoint.id).update(enabled=False, disabled_reason="x")
    response = await client.post(
        f"{PAGE}/{endpoint.id}/test", form={"csrf_token": csrf}, headers=HX
    )
    assert response.status_code == 422 and "ative-o antes" in await text(response)


async def test_carregar_mais_pages_the_log(client: Client, csrf: str) -> None:
    await register(client, csrf)
    endpoint = await WebhookEndpoint.get()
    for _ in range(12):
        await client.post(f"{PAGE}/{endpoint.id}/test", form={"csrf_token": csrf}, headers=HX)
    page = await text(await client.get(PAGE))
    assert page.count('class="delivery"') == 10 and "Carregar mais" in page
    more = re.search(r'hx-get="([^"]+/deliveries\?cursor=[^"]+)"', page)
    assert more
    rest = await text(await client.get(more.group(1).replace("&amp;", "&"), headers=HX))
    assert rest.count('class="delivery"') == 2 and "Carregar mais" not in rest


async def receive(socket: Any, within: float = 3.0) -> str:
    return str(await asyncio.wait_for(socket.receive(), within))


async def test_the_socket_resyncs_then_pushes_a_delivery_and_its_attempts(
    client: Client, csrf: str, broker: Any
) -> None:
    await register(client, csrf)
    endpoint = await WebhookEndpoint.get()
    async with client.websocket("/ws/webhooks", headers=ORIGIN) as socket:
        sync = await receive(socket)
        assert 'id="webhook-endpoints"' in sync and 'hx-swap-oob="true"' in sync
        await client.post(f"{PAGE}/{endpoint.id}/test", form={"csrf_token": csrf}, headers=HX)
        delivery = await WebhookDelivery.get()
        pushed = await receive(socket)
        assert f'id="deliveries-{endpoint.id}" hx-swap-oob="true"' in pushed
        assert f'id="delivery-{delivery.id}"' in pushed and "pendente" in pushed
        answer = Answer(status_code=200, body="ok", error=None, duration_ms=7)
        await record_attempt(delivery, endpoint, answer, started_at=utcnow(), broker=broker)
        pushed = await receive(socket)
        assert f'<details id="delivery-{delivery.id}"' in pushed and "entregue" in pushed
        assert 'hx-swap-oob="true"' in pushed and "HTTP 200" in pushed and "7 ms" in pushed
        assert (await WebhookDelivery.get()).status == DeliveryStatus.SUCCEEDED


async def test_the_socket_needs_the_session_and_the_origin(
    client: Client, merchant: Merchant
) -> None:
    from quart.testing.connections import WebsocketDisconnectError

    async with client.websocket("/ws/webhooks", headers=ORIGIN) as socket:
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
        assert closed.value.args[0] == 1008
    await login(client)
    async with client.websocket("/ws/webhooks", headers={"Origin": "http://evil"}) as socket:
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
        assert closed.value.args[0] == 1008


async def test_an_endpoint_the_page_has_not_seen_brings_the_whole_list(
    client: Client, csrf: str, config: Config, merchant: Merchant
) -> None:
    async with client.websocket("/ws/webhooks", headers=ORIGIN) as socket:
        assert "Nenhum webhook cadastrado" in await receive(socket)
        auth = bearer(merchant, config)
        body = {"url": URL, "events": ["charge.paid"]}
        created = await (
            await client.post("/webhook-endpoints", json=body, headers=auth)
        ).get_json()
        test = await client.post(f"/webhook-endpoints/{created['id']}/test", headers=auth)
        delivery = (await test.get_json())["id"]
        pushed = await receive(socket)
        assert pushed.lstrip().startswith(
            '<div id="webhook-endpoints" class="stack" hx-swap-oob="true">'
        )
        assert URL in pushed and f'id="delivery-{delivery}"' in pushed
