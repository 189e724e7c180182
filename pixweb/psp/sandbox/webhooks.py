"""The merchant's webhook at the sandbox PSP: one URL per Pix key (`/webhook/{chave}`).

Deliveries go to the URL with `/pix` appended to its path, as most PSPs do (the callback
`{webhookUrl}/pix` of the specification). Plain http is accepted: the sandbox runs in
development, where pixweb's intake is on a loopback address.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pixweb import netguard
from pixweb.errors import PixwebError
from pixweb.models import Merchant, SandboxWebhook
from pixweb.psp.sandbox.cobs import not_yours
from pixweb.psp.sandbox.problems import invalid, not_found
from pixweb.psp.schemas import WebhookCompleto
from pixweb.services.clock import utcnow

INVALID = "WebhookOperacaoInvalida"
INVALID_DETAIL = (
    "A presente requisição busca criar um webhook sem respeitar o schema ou, ainda, com "
    "sentido semanticamente inválido."
)
_DEVELOPMENT = netguard.UrlPolicy(require_https=False, allow_private=True)


def delivery_url(webhook_url: str) -> str:
    """`webhook_url` with `/pix` appended to its path (its query, if any, kept)."""
    parts = urlsplit(webhook_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/pix"))


async def put_webhook(merchant: Merchant, chave: str, url: str) -> None:
    """Register (or replace) the URL notified of the Pix paid to `chave` with a txid."""
    if chave != merchant.pix_key:
        raise not_yours("chave", chave, INVALID, INVALID_DETAIL)
    try:
        netguard.check_syntax(url, _DEVELOPMENT, field="webhookUrl")
    except PixwebError as exc:
        raise invalid(
            INVALID,
            INVALID_DETAIL,
            "webhook.webhookUrl",
            f"Campo webhook.webhookUrl não respeita o schema ({exc.detail}).",
            url,
        ) from None
    await SandboxWebhook.update_or_create(
        {"url": url, "criacao": utcnow()}, merchant_id=merchant.id, chave=chave
    )


async def _row(merchant_id: int, chave: str) -> SandboxWebhook:
    row = await SandboxWebhook.get_or_none(merchant_id=merchant_id, chave=chave)
    if row is None:
        raise not_found("WebhookNaoEncontrado", "O webhook para esta chave não está configurado.")
    return row


async def get_webhook(merchant_id: int, chave: str) -> WebhookCompleto:
    row = await _row(merchant_id, chave)
    return WebhookCompleto(webhook_url=row.url, chave=row.chave, criacao=row.criacao)


async def delete_webhook(merchant_id: int, chave: str) -> None:
    await (await _row(merchant_id, chave)).delete()


async def url_for_key(merchant_id: int, chave: str) -> str | None:
    """Where the Pix paid to `chave` are delivered, if a webhook is registered."""
    row = await SandboxWebhook.get_or_none(merchant_id=merchant_id, chave=chave)
    return None if row is None else delivery_url(row.url)
