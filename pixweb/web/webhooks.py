"""The "Webhooks" page: the merchant's endpoints (active or disabled, and why), the form that
registers one (its signing secret shown once, with a copy button), enable/disable, delete,
rotate the secret, "Enviar evento de teste", and each endpoint's delivery log with its
attempts and "Reenviar".

Forms post with HTMX and get the `#webhooks` partial back; without JavaScript they post
plainly and get the whole page. A new secret lives only in the answer that made it: no-store.
The log stays live through `/ws/webhooks` (pixweb/ws/webhooks.py), outside `#webhooks`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from quart import Blueprint, Response, render_template, request
from quart_schema import hide

from pixweb import webhooks_view
from pixweb.deps import check_csrf, get_broker, get_config, session_merchant
from pixweb.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PixwebError,
    UnsafeUrlError,
)
from pixweb.models import Merchant
from pixweb.services import webhook_endpoints as endpoints
from pixweb.services import webhook_log
from pixweb.web import forms

blueprint = Blueprint("web_webhooks", __name__)
blueprint.before_request(check_csrf)

PAGE, PARTIAL = "pages/webhooks.html", "partials/webhooks.html"
MORE = "partials/webhook_deliveries_more.html"
GRACE_CHOICES = {"0": timedelta(0), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
FIELD_MESSAGES = {
    "url": "Informe a URL completa do seu sistema (https://...).",
    "events": "Escolha ao menos um evento.",
    "description": f"Descrição de até {endpoints.DESCRIPTION_MAX} caracteres.",
}
HEADERS = {"Vary": "HX-Request", "Cache-Control": "no-store"}


async def _merchant() -> Merchant:
    merchant = await session_merchant()
    if merchant is None:
        raise AuthenticationError("log in first")
    return merchant


async def _answer(merchant: Merchant, *, status: int = 200, **context: Any) -> Response:
    """The partial for HTMX, else the page; never stored (it may hold a new secret)."""
    partial = request.headers.get("HX-Request") == "true"
    body = await render_template(
        PARTIAL if partial else PAGE,
        merchant=merchant,
        errors=context.pop("errors", {}),
        form=context.pop("form", {}),
        **await webhooks_view.page_context(merchant.id),
        **context,
    )
    return Response(body, status=status, headers=HEADERS)


def _messages(error: PixwebError) -> dict[str, str]:
    """Portuguese messages for the create form's fields at fault."""
    if isinstance(error, UnsafeUrlError):
        return {
            "url": "Endereço recusado: use https e um endereço público da internet "
            f"({(error.fields or {}).get('url', error.detail)})."
        }
    return forms.field_messages(error, FIELD_MESSAGES, "Não foi possível salvar: ")


@blueprint.get("/dashboard/webhooks")
@hide
async def webhooks_page() -> Response:
    """The endpoints, their logs and the form to register one."""
    return await _answer(await _merchant())


@blueprint.post("/dashboard/webhooks")
@hide
async def create_webhook() -> Response:
    """Register an endpoint; the answer shows its secret once."""
    merchant = await _merchant()
    form = await request.form
    kept = {
        "url": form.get("url", ""),
        "events": form.getlist("events"),
        "description": form.get("description", ""),
    }
    config = get_config()
    try:
        created = await endpoints.create(
            merchant.id,
            url=kept["url"],
            events=kept["events"],
            description=kept["description"] or None,
            key=config.encryption_key,
            policy=endpoints.url_policy(config),
        )
    except PixwebError as error:
        return await _answer(merchant, status=422, errors=_messages(error), form=kept)
    return await _answer(merchant, created=created, success="Webhook cadastrado.")


Action = Callable[[int, int], Awaitable[Any]]


async def _act(endpoint_id: int, action: Action, success: str) -> Response:
    """Run one endpoint action and answer with the block and what happened (or why not)."""
    merchant = await _merchant()
    try:
        outcome = await action(merchant.id, endpoint_id)
    except NotFoundError:
        raise  # another merchant's, or gone: the HTML 404
    except ConflictError:
        failure = "O webhook está desativado: ative-o antes de enviar eventos."
        return await _answer(merchant, status=422, failure=failure)
    except PixwebError as error:
        return await _answer(merchant, status=422, failure="Não foi possível: " + error.detail)
    context: dict[str, Any] = {}
    if isinstance(outcome, endpoints.Created):
        context["created"] = outcome
    return await _answer(merchant, success=success, **context)


def _set_enabled(enabled: bool) -> Action:
    async def change(merchant_id: int, endpoint_id: int) -> Any:
        changes = endpoints.Changes(enabled=enabled)
        policy = endpoints.url_policy(get_config())
        return await endpoints.update(merchant_id, endpoint_id, changes, policy=policy)

    return change


@blueprint.post("/dashboard/webhooks/<int:endpoint_id>/enable")
@hide
async def enable_webhook(endpoint_id: int) -> Response:
    """Enable an endpoint again (its failure streak forgotten)."""
    return await _act(endpoint_id, _set_enabled(True), "Webhook ativado.")


@blueprint.post("/dashboard/webhooks/<int:endpoint_id>/disable")
@hide
async def disable_webhook(endpoint_id: int) -> Response:
    """Stop sending to an endpoint."""
    return await _act(endpoint_id, _set_enabled(False), "Webhook desativado.")


@blueprint.post("/dashboard/webhooks/<int:endpoint_id>/delete")
@hide
async def delete_webhook(endpoint_id: int) -> Response:
    """Delete an endpoint; what was pending for it fails."""
    return await _act(endpoint_id, endpoints.delete, "Webhook excluído.")


@blueprint.post("/dashboard/webhooks/<int:endpoint_id>/rotate")
@hide
async def rotate_webhook_secret(endpoint_id: int) -> Response:
    """A new secret, shown once; the old one signs too for the chosen grace period."""
    grace = GRACE_CHOICES.get((await request.form).get("grace", "24h"), GRACE_CHOICES["24h"])
    key = get_config().encryption_key

    async def rotate(merchant_id: int, endpoint_id: int) -> endpoints.Created:
        return await endpoints.rotate_secret(merchant_id, endpoint_id, grace=grace, key=key)

    return await _act(endpoint_id, rotate, "Novo segredo gerado.")


@blueprint.post("/dashboard/webhooks/<int:endpoint_id>/test")
@hide
async def test_webhook(endpoint_id: int) -> Response:
    """Send a test event to the endpoint now."""

    async def send(merchant_id: int, endpoint_id: int) -> Any:
        return await webhook_log.send_test(merchant_id, endpoint_id, broker=get_broker())

    return await _act(endpoint_id, send, "Evento de teste enviado: acompanhe no registro.")


@blueprint.post("/dashboard/webhooks/<int:endpoint_id>/deliveries/<bigint:delivery_id>/resend")
@hide
async def resend_delivery(endpoint_id: int, delivery_id: int) -> Response:
    """Send one delivery's event again (the same webhook-id)."""

    async def resend(merchant_id: int, endpoint_id: int) -> Any:
        broker = get_broker()
        return await webhook_log.resend(merchant_id, endpoint_id, delivery_id, broker=broker)

    return await _act(endpoint_id, resend, "Evento reenviado: acompanhe no registro.")


@blueprint.get("/dashboard/webhooks/<int:endpoint_id>/deliveries")
@hide
async def more_deliveries(endpoint_id: int) -> Response:
    """The next page of an endpoint's log ("Carregar mais")."""
    merchant = await _merchant()
    cursor = request.args.get("cursor") or None
    page = await webhook_log.list_deliveries(
        merchant.id, endpoint_id, limit=webhooks_view.LOG_SIZE, cursor=cursor
    )
    body = await render_template(MORE, endpoint_id=endpoint_id, log=page)
    return Response(body, headers=HEADERS)
