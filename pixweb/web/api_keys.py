"""The "Chaves de API" page: the merchant's keys (name, prefix, scopes, created, last use,
revoked), the form that makes one (shown once, with a copy button) and revoking one.

Forms post to the server with HTMX (no inline script: the page runs under the strict CSP);
without JavaScript they post plainly and get the whole page. An HTMX answer is the
`#api-keys` partial, so the created key lives only in that one answer: no-store, and
never in a page that can be reloaded from history.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, render_template, request
from quart_schema import hide

from pixweb.deps import check_csrf, get_broker, session_merchant
from pixweb.errors import AuthenticationError, PixwebError
from pixweb.models import Merchant
from pixweb.services import api_keys
from pixweb.web import forms

blueprint = Blueprint("web_api_keys", __name__)
blueprint.before_request(check_csrf)

PAGE, PARTIAL = "pages/api_keys.html", "partials/api_keys.html"
FIELD_MESSAGES = {
    "name": f"Dê um nome à chave (até {api_keys.NAME_MAX} caracteres), como o sistema que a usa.",
    "scopes": "Escolha ao menos uma permissão.",
}


async def _merchant() -> Merchant:
    merchant = await session_merchant()
    if merchant is None:
        raise AuthenticationError("log in first")
    return merchant


async def _answer(merchant: Merchant, *, status: int = 200, **context: Any) -> Response:
    """The partial for HTMX, else the page; never stored (it may hold a new key)."""
    partial = request.headers.get("HX-Request") == "true"
    body = await render_template(
        PARTIAL if partial else PAGE,
        merchant=merchant,
        keys=await api_keys.list_keys(merchant.id),
        scopes=api_keys.SCOPES,
        errors=context.pop("errors", {}),
        form=context.pop("form", {}),
        **context,
    )
    headers = {"Vary": "HX-Request", "Cache-Control": "no-store"}
    return Response(body, status=status, headers=headers)


def _messages(error: PixwebError) -> dict[str, str]:
    messages = forms.field_messages(error, FIELD_MESSAGES, "Não foi possível criar a chave: ")
    if str((error.fields or {}).get("scopes", "")).startswith("unknown scope"):  # forged form
        messages["scopes"] = "Permissão desconhecida."
    return messages


@blueprint.get("/dashboard/api-keys")
@hide
async def api_keys_page() -> Response:
    """The keys and the form to make one."""
    return await _answer(await _merchant())


@blueprint.post("/dashboard/api-keys")
@hide
async def create_api_key() -> Response:
    """Make a key; the answer shows it once."""
    merchant = await _merchant()
    form = await request.form
    name, scopes = form.get("name", ""), form.getlist("scopes")
    try:
        row, key = await api_keys.create_key(merchant.id, name, scopes)
    except PixwebError as error:
        kept = {"name": name, "scopes": scopes}
        return await _answer(merchant, status=422, errors=_messages(error), form=kept)
    return await _answer(merchant, created=row, key=key)


@blueprint.post("/dashboard/api-keys/<int:key_id>/revoke")
@hide
async def revoke_api_key(key_id: int) -> Response:
    """Revoke a key (every server refuses it from now on)."""
    merchant = await _merchant()
    row = await api_keys.revoke_key(merchant.id, key_id, broker=get_broker())
    return await _answer(merchant, revoked=row)
