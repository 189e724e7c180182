"""The "Conectar PSP" page: the merchant's PSP connection, its certificate's expiry, and the
form that connects one (PEM files, or a bank's .p12 with its password).

Plain forms posted to the server (no script: the page runs under the strict CSP). Each
action re-renders the page: 200 with what happened, or 422 with the messages in Portuguese,
naming the step that failed.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, render_template, request
from quart.datastructures import FileStorage
from quart_schema import hide
from werkzeug.datastructures import MultiDict

from pixweb.deps import check_csrf, get_psp_clients, session_merchant
from pixweb.errors import (
    AuthenticationError,
    ControlCharacterError,
    EncryptionError,
    InvalidInputError,
    PixwebError,
    PspError,
    PspUnavailableError,
    UnsafeUrlError,
)
from pixweb.models import Merchant
from pixweb.presenters import public_base
from pixweb.psp.tls import pkcs12_to_pem
from pixweb.services import psp_connections
from pixweb.services.psp_connections import ConnectionView, Credentials

blueprint = Blueprint("web_psp", __name__)
blueprint.before_request(check_csrf)

PAGE = "pages/psp.html"
MAX_FILE_BYTES = 16 * 1024
TEXT_FIELDS = ("base_url", "token_url", "client_id")

STEPS = {
    "tls": "Falha na conexão segura (TLS): o PSP recusou o certificado, ou o certificado do "
    "PSP não é confiável (em homologação, envie a cadeia da CA do PSP).",
    "token": "Falha na autenticação: o PSP recusou o client id ou o client secret, ou a URL "
    "do token está errada.",
    "permission": "Falha de permissão: as credenciais não têm os escopos necessários (cob.write "
    "cob.read pix.read pix.write webhook.write webhook.read).",
    "webhook": "O PSP recusou o registro do webhook do pixweb (a URL pública do pixweb precisa "
    "ser https e acessível pelo PSP).",
}
FIELDS = {  # the form's field for each of the service's, and what to say about it
    "base_url": ("base_url", "Informe a URL https da API Pix do PSP."),
    "token_url": ("token_url", "Informe a URL https do token, ou deixe em branco."),
    "client_id": ("client_id", "Informe o client id."),
    "client_secret": ("client_secret", "Informe o client secret."),
    "certificate_pem": ("certificate_file", "Envie o certificado em PEM, dentro da validade."),
    "private_key_pem": (
        "private_key_file",
        "Envie a chave privada em PEM, sem senha, do mesmo certificado.",
    ),
    "server_ca_pem": ("server_ca_file", "Envie a cadeia da CA do PSP em PEM."),
    "p12": ("p12_file", "Não foi possível ler o .p12: confira o arquivo e a senha."),
}


async def _merchant() -> Merchant:
    merchant = await session_merchant()
    if merchant is None:
        raise AuthenticationError("log in first")
    return merchant


async def _connection(merchant: Merchant) -> ConnectionView | None:
    try:
        return await psp_connections.get_connection(merchant, clients=get_psp_clients())
    except PixwebError:
        return None


async def _page(
    merchant: Merchant,
    *,
    status: int = 200,
    success: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> tuple[str, int]:
    connection = await _connection(merchant)
    page = await render_template(
        PAGE,
        merchant=merchant,
        connection=connection,
        success=success,
        errors=errors or {},
        form=form or {},
    )
    return page, status


@blueprint.get("/dashboard/psp")
@hide
async def psp_page() -> tuple[str, int]:
    """The connection (or none) and the form to connect."""
    return await _page(await _merchant())


def _file(files: MultiDict[str, FileStorage], name: str) -> str:
    upload = files.get(name)
    if upload is None or not upload.filename:
        return ""
    data: bytes = upload.stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInputError(f"{name} is too large", fields={name: "too large"})
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name} is not PEM text", fields={name: "not PEM"}) from None


def _credentials(form: MultiDict[str, str], files: MultiDict[str, FileStorage]) -> Credentials:
    certificate, key = _file(files, "certificate_file"), _file(files, "private_key_file")
    p12 = files.get("p12_file")
    if p12 is not None and p12.filename:
        certificate, key = pkcs12_to_pem(
            p12.stream.read(MAX_FILE_BYTES + 1), form.get("p12_password") or None
        )
    return Credentials(
        base_url=form.get("base_url", ""),
        token_url=form.get("token_url") or None,
        client_id=form.get("client_id", ""),
        client_secret=form.get("client_secret", ""),
        certificate_pem=certificate,
        private_key_pem=key,
        server_ca_pem=_file(files, "server_ca_file") or None,
    )


def messages_for(error: PixwebError) -> dict[str, str]:
    """Portuguese messages: the step that failed at the PSP, or the fields at fault."""
    if isinstance(error, PspUnavailableError):
        return {"": f"O PSP não respondeu (etapa: {error.step}). Tente de novo em instantes."}
    if isinstance(error, PspError):
        said = STEPS.get(error.step, f"O PSP recusou a operação (etapa: {error.step}).")
        return {"": said, "detail": error.detail}
    if isinstance(error, EncryptionError):
        return {"": "As credenciais salvas não podem ser lidas: conecte o PSP de novo."}
    messages: dict[str, str] = {}
    for name in error.fields or {}:
        field, message = FIELDS.get(name, (name, "Valor inválido."))
        if isinstance(error, ControlCharacterError):
            message = "Remova os caracteres invisíveis ou de controle deste campo."
        elif isinstance(error, UnsafeUrlError):
            message = "Endereço recusado: use https e um endereço público da internet."
        messages[field] = message
    return messages or {"": "Confira os dados do formulário."}


@blueprint.post("/dashboard/psp")
@hide
async def connect_psp() -> tuple[str, int]:
    """Connect with the form's credentials; say which step failed, in Portuguese."""
    merchant = await _merchant()
    form, files = await request.form, await request.files
    kept = {name: form.get(name, "") for name in TEXT_FIELDS}
    if not (files.get("p12_file") and files["p12_file"].filename) and not (
        files.get("certificate_file") and files["certificate_file"].filename
    ):
        errors = {"certificate_file": "Envie o certificado e a chave (PEM) ou o arquivo .p12."}
        return await _page(merchant, status=422, errors=errors, form=kept)
    try:
        await psp_connections.connect(
            merchant,
            _credentials(form, files),
            clients=get_psp_clients(),
            public_base=public_base(),
        )
    except PixwebError as error:
        return await _page(merchant, status=422, errors=messages_for(error), form=kept)
    return await _page(merchant, success="PSP conectado e webhook registrado.")


async def _act(action: Any, success: str) -> tuple[str, int]:
    merchant = await _merchant()
    try:
        outcome = await action(merchant)
    except PixwebError as error:
        return await _page(merchant, status=422, errors=messages_for(error))
    return await _page(merchant, success=success.format(outcome=outcome))


@blueprint.post("/dashboard/psp/webhook-token")
@hide
async def rotate_webhook_token() -> tuple[str, int]:
    """Register a new webhook URL at the PSP."""

    async def rotate(merchant: Merchant) -> ConnectionView:
        return await psp_connections.rotate_webhook_token(
            merchant, clients=get_psp_clients(), public_base=public_base()
        )

    return await _act(rotate, "Nova URL do webhook registrada no PSP.")


@blueprint.post("/dashboard/psp/disconnect")
@hide
async def disconnect_psp() -> tuple[str, int]:
    """Disconnect, saying whether the PSP could be told."""

    async def disconnect(merchant: Merchant) -> str:
        result = await psp_connections.disconnect(merchant, clients=get_psp_clients())
        if result.webhook_removed:
            return "PSP desconectado e webhook removido no PSP."
        return (
            "PSP desconectado no pixweb, mas o PSP não respondeu: remova o webhook no portal "
            "do PSP."
        )

    return await _act(disconnect, "{outcome}")
