"""The API Pix client: one merchant's PSP connection over mTLS with an OAuth2 token.

    async with PspClient(base_url=..., client_id=..., client_secret=...,
                         certificate_pem=..., private_key_pem=...) as psp:
        cob = await psp.put_cob(txid, CobSolicitada(...))

- Every call, the token's included, presents the merchant's client certificate. The one
  exception is pixweb's own sandbox PSP (development), reached with `plain_http=True`: plain
  HTTP, no certificate.
- The client-credentials token is cached until shortly before it expires, and renewed once
  when the PSP answers 401; a second 401 is a PspAuthError.
- GET, PUT and DELETE are retried (RetryPolicy: backoff with jitter) on network errors,
  timeouts, 429 and 5xx; PATCH and the token's POST never are.
- Failures are the PspError family of `pixweb.errors`, whose `step` says where: "tls",
  "token", "permission", or the resource ("cob", "pix", "devolucao", "webhook").
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from pixweb.errors import InvalidInputError, PspError, PspUnavailableError
from pixweb.psp import transport
from pixweb.psp.auth import TokenCache
from pixweb.psp.schemas import (
    CobCompleta,
    CobGerada,
    CobPayloadPatch,
    CobSolicitada,
    CobStatus,
    Devolucao,
    DevolucaoSolicitada,
    Pix,
    PixConsultados,
    TokenResponse,
    WebhookCompleto,
    WebhookSolicitado,
    to_json,
)
from pixweb.psp.tls import build_ssl_context

log = logging.getLogger(__name__)

_TXID = re.compile(r"[a-zA-Z0-9]{26,35}")
_E2EID = re.compile(r"[a-zA-Z0-9]{32,35}")
_DEVOLUCAO_ID = re.compile(r"[a-zA-Z0-9]{1,35}")


def _segment(value: str, pattern: re.Pattern[str], name: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInputError(f"{name} must match {pattern.pattern}", fields={name: value})
    return value


def _rfc3339(moment: datetime, name: str) -> str:
    if moment.tzinfo is None:
        raise InvalidInputError(f"{name} must carry a time zone", fields={name: str(moment)})
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _mtls_context(
    plain_http: bool,
    certificate_pem: str | None,
    private_key_pem: str | None,
    server_ca_pem: str | None,
) -> ssl.SSLContext | None:
    if plain_http:
        if certificate_pem or private_key_pem or server_ca_pem:
            raise InvalidInputError("a certificate cannot be presented over plain http")
        return None
    if not certificate_pem or not private_key_pem:
        given = {"certificate_pem": certificate_pem, "private_key_pem": private_key_pem}
        raise InvalidInputError(
            "a PSP is reached over mTLS: certificate_pem and private_key_pem are required",
            fields={name: "is required" for name, value in given.items() if not value},
        )
    return build_ssl_context(certificate_pem, private_key_pem, server_ca_pem)


class PspClient:
    """One merchant's connection to its PSP. Close it with `aclose()` (or `async with`)."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        certificate_pem: str | None = None,
        private_key_pem: str | None = None,
        server_ca_pem: str | None = None,
        token_url: str | None = None,
        scope: str | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retry: transport.RetryPolicy | None = None,
        plain_http: bool = False,
    ) -> None:
        base_url = base_url.rstrip("/")
        token_url = token_url or f"{base_url}/oauth/token"
        # Only pixweb's sandbox PSP is plain http; every real PSP is https with mTLS.
        scheme = "http" if plain_http else "https"
        for name, url in (("base_url", base_url), ("token_url", token_url)):
            if httpx.URL(url).scheme != scheme:
                raise InvalidInputError(f"{name} must be an {scheme} URL", fields={name: url})
        self.base_url, self.token_url = base_url, token_url
        self._ssl = _mtls_context(plain_http, certificate_pem, private_key_pem, server_ca_pem)
        self._timeout = timeout
        self._retry = retry or transport.RetryPolicy()
        self._http = transport.make_http_client(
            base_url, self._ssl, timeout=timeout, connect_timeout=connect_timeout
        )
        self._tokens = TokenCache(
            self._http, token_url, (client_id, client_secret), scope, self._transport_error
        )

    async def __aenter__(self) -> PspClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_token(self) -> TokenResponse:
        """The cached access token (its `scope` says what the PSP granted)."""
        return await self._tokens.get()

    # -- the request loop ----------------------------------------------------------------

    async def _transport_error(self, error: httpx.TransportError, step: str) -> PspError:
        return await transport.transport_error(
            error, step=step, context=self._ssl, seconds=self._timeout
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        step: str,
        scope: str,
        body: Any = None,
        params: dict[str, str | int] | None = None,
    ) -> httpx.Response:
        content = to_json(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        attempts = self._retry.attempts if method in transport.IDEMPOTENT else 1
        attempt, renewed = 0, False
        while True:
            attempt += 1
            token = await self.get_token()
            headers["Authorization"] = f"Bearer {token.access_token}"
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                error = await self._transport_error(exc, step)
                if not isinstance(error, PspUnavailableError) or attempt >= attempts:
                    raise error from exc
                log.warning(
                    "psp %s %s failed (%s), attempt %d", method, path, error.detail, attempt
                )
            else:
                log.debug("psp %s %s -> %d", method, path, response.status_code)
                if response.status_code == 401 and not renewed:
                    renewed, attempt = True, attempt - 1  # a new token is not a retry
                    await self._tokens.renew(token)
                    continue
                if response.is_success:
                    return response
                if not transport.retryable(response.status_code) or attempt >= attempts:
                    raise transport.response_error(
                        response, step=step, scope=scope, attempts=attempt
                    )
            await asyncio.sleep(self._retry.delay(attempt))

    # -- the API Pix -------------------------------------------------------------------

    async def put_cob(self, txid: str, cob: CobSolicitada) -> CobGerada:
        """Create an immediate charge with a txid chosen here (a retry reuses it)."""
        path = f"/cob/{_segment(txid, _TXID, 'txid')}"
        response = await self._call("PUT", path, step="cob", scope="cob.write", body=cob)
        return transport.parse(CobGerada, response, step="cob")

    async def get_cob(self, txid: str) -> CobCompleta:
        path = f"/cob/{_segment(txid, _TXID, 'txid')}"
        response = await self._call("GET", path, step="cob", scope="cob.read")
        return transport.parse(CobCompleta, response, step="cob")

    async def patch_cob(
        self, txid: str, status: CobStatus = CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR
    ) -> CobGerada:
        """Remove a charge (the only status a receiver may set). Never retried."""
        path = f"/cob/{_segment(txid, _TXID, 'txid')}"
        body = CobPayloadPatch.model_validate({"status": status})
        response = await self._call("PATCH", path, step="cob", scope="cob.write", body=body)
        return transport.parse(CobGerada, response, step="cob")

    async def get_pix(self, e2eid: str) -> Pix:
        path = f"/pix/{_segment(e2eid, _E2EID, 'e2eid')}"
        response = await self._call("GET", path, step="pix", scope="pix.read")
        return transport.parse(Pix, response, step="pix")

    async def list_pix(
        self, inicio: datetime, fim: datetime, pagina: int = 0, itens: int = 100
    ) -> PixConsultados:
        """One page (from 0) of the Pix received between `inicio` and `fim`."""
        if pagina < 0 or not 1 <= itens <= 1000:
            raise InvalidInputError("pagina must be >= 0 and itens within 1..1000")
        params: dict[str, str | int] = {
            "inicio": _rfc3339(inicio, "inicio"),
            "fim": _rfc3339(fim, "fim"),
            "paginacao.paginaAtual": pagina,
            "paginacao.itensPorPagina": itens,
        }
        response = await self._call("GET", "/pix", step="pix", scope="pix.read", params=params)
        return transport.parse(PixConsultados, response, step="pix")

    async def put_webhook(self, chave: str, url: str) -> None:
        body = WebhookSolicitado(webhook_url=url)
        path = f"/webhook/{quote(chave, safe='')}"
        await self._call("PUT", path, step="webhook", scope="webhook.write", body=body)

    async def get_webhook(self, chave: str) -> WebhookCompleto:
        path = f"/webhook/{quote(chave, safe='')}"
        response = await self._call("GET", path, step="webhook", scope="webhook.read")
        return transport.parse(WebhookCompleto, response, step="webhook")

    async def delete_webhook(self, chave: str) -> None:
        path = f"/webhook/{quote(chave, safe='')}"
        await self._call("DELETE", path, step="webhook", scope="webhook.write")

    async def put_devolucao(
        self, e2eid: str, devolucao_id: str, devolucao: DevolucaoSolicitada
    ) -> Devolucao:
        """Ask for a refund; the id is chosen here, so a retry cannot refund twice."""
        path = self._devolucao_path(e2eid, devolucao_id)
        response = await self._call(
            "PUT", path, step="devolucao", scope="pix.write", body=devolucao
        )
        return transport.parse(Devolucao, response, step="devolucao")

    async def get_devolucao(self, e2eid: str, devolucao_id: str) -> Devolucao:
        path = self._devolucao_path(e2eid, devolucao_id)
        response = await self._call("GET", path, step="devolucao", scope="pix.read")
        return transport.parse(Devolucao, response, step="devolucao")

    @staticmethod
    def _devolucao_path(e2eid: str, devolucao_id: str) -> str:
        e2eid = _segment(e2eid, _E2EID, "e2eid")
        return f"/pix/{e2eid}/devolucao/{_segment(devolucao_id, _DEVOLUCAO_ID, 'id')}"
