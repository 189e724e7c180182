"""The sandbox PSP's blueprint, `/sandbox/psp/...`: the API Pix subset pixweb calls, plus the
payments a payer would make. `create_app` registers it outside production only.

Every route but the token's and the location's needs a Bearer token from `/oauth/token`
holding the route's scope. Hidden from pixweb's OpenAPI document: this is the PSP's API.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict
from quart import Blueprint, Response, request
from quart_schema import hide

from pixweb.deps import get_config
from pixweb.models import Merchant, SandboxCob
from pixweb.presenters import public_base
from pixweb.psp.sandbox import auth, cobs, devolucoes, location, payer, received, webhooks
from pixweb.psp.sandbox.http import (
    DEVOLUCAO_ID,
    E2EID,
    TXID,
    WORKER_KEY,
    body,
    caller,
    get_worker,
    json_response,
    key,
    problem_response,
    segment,
)
from pixweb.psp.sandbox.problems import SandboxError, not_found
from pixweb.psp.sandbox.worker import SandboxWorker
from pixweb.psp.schemas import (
    ApiModel,
    CobSolicitada,
    CobStatus,
    DevolucaoSolicitada,
    TokenResponse,
    WebhookSolicitado,
)
from pixweb.services.clock import utcnow

PREFIX = "/sandbox/psp"
LOCATION_TOKEN = re.compile(r"[0-9a-f]{12,32}")

blueprint = Blueprint("sandbox_psp", __name__, url_prefix=PREFIX)
blueprint.register_blueprint(payer.blueprint)


@blueprint.record_once
def _create_worker(state: object) -> None:
    app = state.app  # type: ignore[attr-defined]
    app.extensions[WORKER_KEY] = SandboxWorker(
        refund_seconds=float(app.config.get("SANDBOX_PSP_REFUND_SECONDS", 2.0)),
        attempts=int(app.config.get("SANDBOX_PSP_WEBHOOK_ATTEMPTS", 3)),
        backoff_seconds=float(app.config.get("SANDBOX_PSP_WEBHOOK_BACKOFF_SECONDS", 0.5)),
    )


@blueprint.after_app_serving
async def _close_worker() -> None:
    await get_worker().aclose()


@blueprint.errorhandler(SandboxError)
async def _problem(error: SandboxError) -> Response:
    return problem_response(error)


class _TokenError(ApiModel):
    error: str
    error_description: str


@blueprint.errorhandler(auth.CredentialsError)
async def _oauth_error(error: auth.CredentialsError) -> Response:
    """RFC 6749 §5.2: `{"error", "error_description"}`, 401 for a client refused."""
    status = 401 if error.error == "invalid_client" else 400
    answer = _TokenError(error=error.error, error_description=error.description)
    response = json_response(answer, status)
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="sandbox-psp"'
    return response


@blueprint.post("/oauth/token")
@hide
async def issue_token() -> Response:
    """Client credentials (HTTP Basic, or client_id/client_secret in the form) for a token."""
    secret_key = get_config().secret_key
    form = await request.form
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        given = (basic.username or "", basic.password or "")
    else:
        given = (form.get("client_id", ""), form.get("client_secret", ""))
    merchant_id = auth.check_client(secret_key, *given)
    if not await Merchant.exists(id=merchant_id):
        raise auth.CredentialsError("invalid_client", "unknown client_id")
    if form.get("grant_type") != "client_credentials":
        raise auth.CredentialsError("unsupported_grant_type", "use client_credentials")
    scopes = auth.granted_scopes(form.get("scope"))
    token = TokenResponse(
        access_token=auth.issue_token(secret_key, merchant_id, scopes),
        expires_in=auth.TOKEN_SECONDS,
        scope=" ".join(scopes),
    )
    response = json_response(token)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- cob ------------------------------------------------------------------------------------


@blueprint.put("/cob/<txid>")
@hide
async def put_cob(txid: str) -> Response:
    merchant = await caller("cob.write")
    segment(txid, TXID, "txid", cobs.INVALID)
    asked = await body(CobSolicitada, cobs.INVALID, cobs.INVALID_DETAIL, "cob")
    base = public_base().partition("://")[2] + PREFIX + "/qr"
    made, created = await cobs.put_cob(merchant, txid, asked, location_base=base)
    return json_response(made, 201 if created else 200)


@blueprint.get("/cob/<txid>")
@hide
async def get_cob(txid: str) -> Response:
    merchant = await caller("cob.read")
    segment(txid, TXID, "txid", "CobConsultaInvalida")
    return json_response(await cobs.get_cob(merchant.id, txid))


class _Removal(ApiModel):
    """The only revision the sandbox makes: the receiver removing its charge, alone."""

    model_config = ConfigDict(extra="forbid")

    status: Literal[CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR]


@blueprint.patch("/cob/<txid>")
@hide
async def patch_cob(txid: str) -> Response:
    merchant = await caller("cob.write")
    segment(txid, TXID, "txid", cobs.INVALID)
    await body(_Removal, cobs.INVALID, cobs.INVALID_DETAIL, "cob")
    return json_response(await cobs.remove_cob(merchant.id, txid))


@blueprint.get("/qr/<token>")
@hide
async def location_payload(token: str) -> Response:
    """What the BR Code's location serves the payer's bank: the charge as a JWS."""
    row = None
    if LOCATION_TOKEN.fullmatch(token):  # looked up by token: the host may be written otherwise
        row = await SandboxCob.get_or_none(location__endswith=f"{PREFIX}/qr/{token}")
    if row is None:
        raise not_found("NaoEncontrado")
    signed = location.jws(row, get_config().secret_key, utcnow())
    return Response(signed, content_type="application/jose")


# -- pix ------------------------------------------------------------------------------------


@blueprint.get("/pix/<e2eid>")
@hide
async def get_pix(e2eid: str) -> Response:
    merchant = await caller("pix.read")
    segment(e2eid, E2EID, "e2eid", received.QUERY_INVALID)
    return json_response(await received.get_pix(merchant.id, e2eid))


@blueprint.get("/pix")
@hide
async def list_pix() -> Response:
    merchant = await caller("pix.read")
    query = received.parse_query(request.args)
    return json_response(await received.list_pix(merchant.id, query))


@blueprint.put("/pix/<e2eid>/devolucao/<devolucao_id>")
@hide
async def put_devolucao(e2eid: str, devolucao_id: str) -> Response:
    merchant = await caller("pix.write")
    segment(e2eid, E2EID, "e2eid", devolucoes.INVALID)
    segment(devolucao_id, DEVOLUCAO_ID, "id", devolucoes.INVALID)
    asked = await body(
        DevolucaoSolicitada, devolucoes.INVALID, devolucoes.INVALID_DETAIL, "devolucao"
    )
    worker = get_worker()
    row, created = await devolucoes.put_devolucao(
        merchant.id, e2eid, devolucao_id, asked, delay_seconds=worker.refund_seconds
    )
    if created:
        worker.settle_later(row)
    return json_response(devolucoes.model(row), 201 if created else 200)


@blueprint.get("/pix/<e2eid>/devolucao/<devolucao_id>")
@hide
async def get_devolucao(e2eid: str, devolucao_id: str) -> Response:
    merchant = await caller("pix.read")
    segment(e2eid, E2EID, "e2eid", devolucoes.INVALID)
    segment(devolucao_id, DEVOLUCAO_ID, "id", devolucoes.INVALID)
    row = await devolucoes.find(merchant.id, e2eid, devolucao_id)
    await get_worker().settle(row.id)  # due but its timer lost (a restart): settle now
    settled = await devolucoes.find(merchant.id, e2eid, devolucao_id)
    return json_response(devolucoes.model(settled))


# -- webhook --------------------------------------------------------------------------------


@blueprint.put("/webhook/<chave>")
@hide
async def put_webhook(chave: str) -> Response:
    merchant = await caller("webhook.write")
    key(chave, webhooks.INVALID)
    asked = await body(WebhookSolicitado, webhooks.INVALID, webhooks.INVALID_DETAIL, "webhook")
    await webhooks.put_webhook(merchant, chave, asked.webhook_url)
    return Response("", status=200)


@blueprint.get("/webhook/<chave>")
@hide
async def get_webhook(chave: str) -> Response:
    merchant = await caller("webhook.read")
    return json_response(await webhooks.get_webhook(merchant.id, key(chave, webhooks.INVALID)))


@blueprint.delete("/webhook/<chave>")
@hide
async def delete_webhook(chave: str) -> Response:
    merchant = await caller("webhook.write")
    await webhooks.delete_webhook(merchant.id, key(chave, webhooks.INVALID))
    return Response("", status=204)
