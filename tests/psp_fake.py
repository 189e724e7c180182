"""A fake PSP for the tests: a small API Pix (Quart) served by hypercorn over TLS that
requires a client certificate from its CA, on a port the OS picks.

Certificates are made here with trustme: `pki.ca` issues the PSP's server certificate (for
127.0.0.1) and the merchant's client certificate; `pki.other_ca` issues what the PSP must
refuse. Tests steer the fake with `psp.script(...)` (answers served before the normal ones),
`psp.revoke_tokens()`, `psp.refuse_tokens`, and read what it received in `psp.requests`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

from pixweb.psp.client import PspClient
from pixweb.psp.transport import RetryPolicy

CLIENT_ID = "pixweb-merchant"
CLIENT_SECRET = "s3cret:with-colon"
CHAVE = "merchant@example.com"


@dataclass
class Pki:
    ca: trustme.CA
    other_ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert
    foreign_client: trustme.LeafCert


def pem_chain(cert: trustme.LeafCert) -> str:
    return "".join(blob.bytes().decode() for blob in cert.cert_chain_pems)


def pem_key(cert: trustme.LeafCert) -> str:
    return cert.private_key_pem.bytes().decode()


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca, other_ca = trustme.CA(), trustme.CA()
    return Pki(
        ca=ca,
        other_ca=other_ca,
        server=ca.issue_cert("127.0.0.1", "localhost"),
        client=ca.issue_cert("merchant.example.com", organization_name="Loja Exemplo"),
        foreign_client=other_ca.issue_cert("merchant.example.com"),
    )


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    authorization: str
    body: bytes


@dataclass
class FakePsp:
    url: str = ""
    token_lifetime: int = 3600
    refuse_tokens: bool = False
    requests: list[Seen] = field(default_factory=list)
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    scripted: dict[str, list[tuple[int, Any, float]]] = field(default_factory=dict)
    cobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pix: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, str] = field(default_factory=dict)
    devolucoes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # GET /pix lists only the Pix whose horario is within inicio..fim, as PSPs do (off:
    # every Pix, whatever the window).
    honour_window: bool = False
    pages_scripted: dict[int, list[tuple[int, Any, float]]] = field(default_factory=dict)
    # Seconds each newly accepted refund (PUT devolucao) waits before its answer, in turn:
    # the PSP took it, the client may have given up.
    devolucao_stalls: list[float] = field(default_factory=list)
    # How many of the next refund requests (PUT devolucao) fail with a 503, taking nothing.
    devolucao_failures: int = 0

    def script_page(self, page: int, *answers: tuple[int, Any] | tuple[int, Any, float]) -> None:
        """Serve these (status, body[, delay]) to GET /pix for `paginaAtual` `page` before
        the normal page; a body None is the normal page, after the delay."""
        queue = self.pages_scripted.setdefault(page, [])
        for answer in answers:
            status, body, *delay = answer
            queue.append((status, body, delay[0] if delay else 0.0))

    def script(self, call: str, *answers: tuple[int, Any] | tuple[int, Any, float]) -> None:
        """Serve these (status, body[, delay]) to "METHOD /path" before the normal answer."""
        queue = self.scripted.setdefault(call, [])
        for answer in answers:
            status, body, *delay = answer
            queue.append((status, body, delay[0] if delay else 0.0))

    def settle_devolucao(self, e2eid: str, rid: str, status: str, motivo: str = "") -> None:
        """Bring a refund the PSP took to DEVOLVIDO or NAO_REALIZADO (with its motivo)."""
        devolucao = self.devolucoes[f"{e2eid}/{rid}"]
        devolucao["status"] = status
        devolucao["horario"]["liquidacao"] = "2026-01-02T10:05:00Z"
        if motivo:
            devolucao["motivo"] = motivo

    def revoke_tokens(self) -> None:
        self.valid_tokens.clear()

    def seen(self, call: str) -> list[Seen]:
        return [s for s in self.requests if f"{s.method} {s.path}" == call]


def problem(status: int, title: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://pix.bcb.gov.br/api/v2/error/{title}",
        "title": title,
        "status": status,
        **extra,
    }


def build_app(psp: FakePsp) -> Quart:
    app = Quart(__name__)

    @app.before_request
    async def record_and_script() -> Any:
        body = await request.get_data()
        auth = request.headers.get("Authorization", "")
        query = dict(request.args)
        psp.requests.append(Seen(request.method, request.path, query, auth, body))
        queue = psp.scripted.get(f"{request.method} {request.path}")
        if queue:
            status, answer, delay = queue.pop(0)
            await asyncio.sleep(delay)
            if isinstance(answer, str):
                return Response(answer, status=status, content_type="text/html")
            return json_answer(answer, status)
        if request.path == "/oauth/token" or request.url_rule is None:
            return None  # the token endpoint, or a 404
        if auth.removeprefix("Bearer ") not in psp.valid_tokens or psp.refuse_tokens:
            return json_answer(problem(401, "NaoAutorizado"), 401)
        return None

    @app.post("/oauth/token")
    async def token() -> Any:
        form = await request.form
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return json_answer({"error": "invalid_client", "error_description": "bad secret"}, 401)
        if form.get("grant_type") != "client_credentials":
            return json_answer({"error": "unsupported_grant_type"}, 400)
        psp.tokens_issued += 1
        access = f"token-{psp.tokens_issued}"
        psp.valid_tokens.add(access)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": psp.token_lifetime,
            "scope": "cob.write cob.read pix.read pix.write webhook.write webhook.read",
        }

    @app.put("/cob/<txid>")
    async def put_cob(txid: str) -> Any:
        body = await request.get_json()
        if txid in psp.cobs:
            return json_answer(problem(400, "CobOperacaoInvalida", detail="txid em uso"), 400)
        psp.cobs[txid] = {
            **body,
            "txid": txid,
            "revisao": 0,
            "status": "ATIVA",
            "calendario": {"criacao": "2026-01-02T10:00:00Z", **body["calendario"]},
            "loc": {
                "id": len(psp.cobs) + 1,
                "location": f"psp.example/qr/{txid}",
                "tipoCob": "cob",
            },
            "location": f"psp.example/qr/{txid}",
            "pixCopiaECola": f"00020101021226...{txid}6304ABCD",
        }
        return json_answer(psp.cobs[txid], 201)

    @app.get("/cob/<txid>")
    async def get_cob(txid: str) -> Any:
        if txid not in psp.cobs:
            return json_answer(
                problem(404, "NaoEncontrado", detail="Entidade não encontrada."), 404
            )
        return psp.cobs[txid]

    @app.patch("/cob/<txid>")
    async def patch_cob(txid: str) -> Any:
        body = await request.get_json()
        cob = psp.cobs[txid]
        cob.update(status=body["status"], revisao=cob["revisao"] + 1)
        return cob

    @app.get("/pix/<e2eid>")
    async def get_pix(e2eid: str) -> Any:
        if e2eid not in psp.pix:
            return json_answer(problem(404, "NaoEncontrado"), 404)
        return psp.pix[e2eid]

    @app.get("/pix")
    async def list_pix() -> Any:
        page, size = (
            int(request.args["paginacao.paginaAtual"]),
            int(request.args["paginacao.itensPorPagina"]),
        )
        queue = psp.pages_scripted.get(page)
        if queue:
            status, answer, delay = queue.pop(0)
            await asyncio.sleep(delay)
            if answer is not None:
                return json_answer(answer, status)
        items = sorted(psp.pix.values(), key=lambda p: p["horario"])
        if psp.honour_window:
            inicio, fim = (_moment(request.args[name]) for name in ("inicio", "fim"))
            items = [p for p in items if inicio <= _moment(p["horario"]) <= fim]
        pages = max(1, -(-len(items) // size))
        return {
            "parametros": {
                "inicio": request.args["inicio"],
                "fim": request.args["fim"],
                "paginacao": {
                    "paginaAtual": page,
                    "itensPorPagina": size,
                    "quantidadeDePaginas": pages,
                    "quantidadeTotalDeItens": len(items),
                },
            },
            "pix": items[page * size : (page + 1) * size],
        }

    @app.route("/webhook/<chave>", methods=["PUT", "GET", "DELETE"])
    async def webhook(chave: str) -> Any:
        if request.method == "PUT":
            psp.webhooks[chave] = (await request.get_json())["webhookUrl"]
            return Response("", status=200)
        if chave not in psp.webhooks:
            return json_answer(problem(404, "NaoEncontrado"), 404)
        if request.method == "DELETE":
            del psp.webhooks[chave]
            return Response("", status=204)
        return {
            "webhookUrl": psp.webhooks[chave],
            "chave": chave,
            "criacao": "2026-01-02T10:00:00Z",
        }

    @app.route("/pix/<e2eid>/devolucao/<rid>", methods=["PUT", "GET"])
    async def devolucao(e2eid: str, rid: str) -> Any:
        key = f"{e2eid}/{rid}"
        if request.method == "PUT" and psp.devolucao_failures > 0:
            psp.devolucao_failures -= 1
            return json_answer(problem(503, "ServicoIndisponivel"), 503)
        if request.method == "PUT" and key not in psp.devolucoes:
            body = await request.get_json()
            psp.devolucoes[key] = {
                "id": rid,
                "rtrId": "D12345678202601021000abcde123456",
                "valor": body["valor"],
                "natureza": body.get("natureza", "ORIGINAL"),
                "horario": {"solicitacao": "2026-01-02T10:00:00Z"},
                "status": "EM_PROCESSAMENTO",
                **({"descricao": body["descricao"]} if body.get("descricao") else {}),
            }
            if psp.devolucao_stalls:
                await asyncio.sleep(psp.devolucao_stalls.pop(0))
            return json_answer(psp.devolucoes[key], 201)
        if key not in psp.devolucoes:
            return json_answer(problem(404, "NaoEncontrado"), 404)
        return psp.devolucoes[key]

    return app


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def json_answer(body: Any, status: int) -> Response:
    content_type = (
        "application/problem+json" if status >= 400 and "title" in body else "application/json"
    )
    return Response(json.dumps(body), status=status, content_type=content_type)


@pytest.fixture
async def psp(pki: Pki) -> AsyncIterator[FakePsp]:
    fake = FakePsp()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    fake.url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    with (
        pki.server.cert_chain_pems[0].tempfile() as certfile,
        pki.server.private_key_pem.tempfile() as keyfile,
        pki.ca.cert_pem.tempfile() as cafile,
    ):
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.certfile, config.keyfile, config.ca_certs = certfile, keyfile, cafile
        config.verify_mode = ssl.CERT_REQUIRED
        config.graceful_timeout = 1
        config.loglevel = "ERROR"
        stop = asyncio.Event()
        server = asyncio.create_task(serve(build_app(fake), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            yield fake
        finally:
            stop.set()
            await server


@pytest.fixture
async def connect(psp: FakePsp, pki: Pki) -> AsyncIterator[Callable[..., PspClient]]:
    """`connect(**overrides)`: a PspClient to the fake PSP, closed after the test."""
    clients: list[PspClient] = []

    def make(**overrides: Any) -> PspClient:
        options: dict[str, Any] = {
            "base_url": psp.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "certificate_pem": pem_chain(pki.client),
            "private_key_pem": pem_key(pki.client),
            "server_ca_pem": pki.ca.cert_pem.bytes().decode(),
            "timeout": 2.0,
            "retry": RetryPolicy(attempts=3, backoff=0.01),
        }
        client = PspClient(**{**options, **overrides})
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
