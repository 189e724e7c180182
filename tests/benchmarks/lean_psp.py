"""A lean local PSP for the benchmarks: the API Pix subset pixweb calls, over mTLS, answered
from memory by a bare asyncio HTTP/1.1 server (no framework), in its own process so that it
does not share the load generator's core or event loop.

`python -m tests.benchmarks.lean_psp --port P --certs DIR` serves, with DIR's `server.pem`,
`server.key` and `ca.pem` (a client certificate from that CA is required):
- `POST /oauth/token`: a token with every scope pixweb asks for (any client);
- `PUT /cob/{txid}` / `GET /cob/{txid}`: the charge, ATIVA, with a dynamic BR Code;
- `GET /pix/{e2eid}`: a Pix registered with `POST /_bench/pix` (a JSON list), else 404;
- `GET /pix?...paginaAtual=&itensPorPagina=`: the listing set by `POST /_bench/listing`
  (`{"count": N, "chave": K, "horario": H, "valor": "1.00"}`), made up page by page;
- `PUT/GET/DELETE /webhook/{chave}`.
Answers are built with json.dumps and nothing else: the PSP is never what a benchmark measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import uvloop

from pixweb.pix import brcode

SCOPES = "cob.write cob.read pix.read pix.write webhook.write webhook.read"
COPY_PASTE = brcode.build(
    url="psp.bench.example/qr/v2/cob", name="Loja Benchmark", city="Sao Paulo"
)


class State:
    def __init__(self) -> None:
        self.cobs: dict[str, bytes] = {}
        self.pix: dict[str, bytes] = {}
        self.webhooks: dict[str, str] = {}
        self.listing: dict[str, Any] = {"count": 0}

    def cob(self, txid: str, body: dict[str, Any]) -> bytes:
        answer = {
            **body,
            "txid": txid,
            "revisao": 0,
            "status": "ATIVA",
            "calendario": {"criacao": "2026-01-02T10:00:00Z", **body.get("calendario", {})},
            "location": "psp.bench.example/qr/v2/cob",
            "pixCopiaECola": COPY_PASTE,
        }
        return json.dumps(answer).encode()

    def page(self, query: dict[str, str]) -> bytes:
        page = int(query.get("paginacao.paginaAtual", "0"))
        size = int(query.get("paginacao.itensPorPagina", "100"))
        listing, count = self.listing, int(self.listing["count"])
        first, last = page * size, min((page + 1) * size, count)
        items = [
            {
                "endToEndId": f"E{listing.get('ispb', '12345678')}2026{n:020d}",
                "valor": listing.get("valor", "1.00"),
                "horario": listing["horario"],
                "chave": listing["chave"],
                "infoPagador": "bench",
            }
            for n in range(first, max(first, last))
        ]
        pages = max(1, -(-count // size))
        parametros = {
            "inicio": query.get("inicio"),
            "fim": query.get("fim"),
            "paginacao": {
                "paginaAtual": page,
                "itensPorPagina": size,
                "quantidadeDePaginas": pages,
                "quantidadeTotalDeItens": count,
            },
        }
        return json.dumps({"parametros": parametros, "pix": items}).encode()


NOT_FOUND = (404, b'{"type":"NaoEncontrado","title":"NaoEncontrado","status":404}')


def answer(state: State, method: str, target: str, body: bytes) -> tuple[int, bytes]:
    parts = urlsplit(target)
    path = unquote(parts.path)
    segments = path.strip("/").split("/")
    if method == "POST" and path == "/oauth/token":
        token = {"access_token": "bench", "token_type": "Bearer", "expires_in": 86400}
        return 200, json.dumps({**token, "scope": SCOPES}).encode()
    if segments[0] == "cob" and len(segments) == 2:
        if method == "PUT":
            state.cobs[segments[1]] = state.cob(segments[1], json.loads(body))
            return 201, state.cobs[segments[1]]
        found = state.cobs.get(segments[1])
        return (200, found) if found else NOT_FOUND
    if segments[0] == "pix" and method == "GET":
        if len(segments) == 1:
            return 200, state.page(dict(parse_qsl(parts.query)))
        found = state.pix.get(segments[1])
        return (200, found) if found else NOT_FOUND
    if segments[0] == "webhook" and len(segments) == 2:
        return _webhook(state, method, segments[1], body)
    if method == "POST" and path == "/_bench/pix":
        for item in json.loads(body):
            state.pix[item["endToEndId"]] = json.dumps(item).encode()
        return 200, b"{}"
    if method == "POST" and path == "/_bench/listing":
        state.listing = json.loads(body)
        return 200, b"{}"
    return NOT_FOUND


def _webhook(state: State, method: str, chave: str, body: bytes) -> tuple[int, bytes]:
    if method == "PUT":
        state.webhooks[chave] = json.loads(body)["webhookUrl"]
        return 200, b"{}"
    if chave not in state.webhooks:
        return NOT_FOUND
    if method == "DELETE":
        del state.webhooks[chave]
        return 204, b""
    return 200, json.dumps({"webhookUrl": state.webhooks[chave], "chave": chave}).encode()


class Http(asyncio.Protocol):
    """HTTP/1.1 keep-alive, requests with Content-Length bodies, answered in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, target, _ = head[0].split(" ", 2)
            try:
                status, payload = answer(self.state, method, target, body)
            except (ValueError, KeyError, TypeError) as exc:
                status, payload = 400, json.dumps({"title": "bench", "detail": str(exc)}).encode()
            kind = "application/problem+json" if status >= 400 else "application/json"
            assert self.transport is not None
            self.transport.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )


def tls_context(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    context.load_verify_locations(certs / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(port: int, certs: Path) -> None:
    state = State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Http(state), "127.0.0.1", port, ssl=tls_context(certs), backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certs", type=Path, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.certs))


if __name__ == "__main__":
    main()
