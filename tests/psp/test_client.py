"""The API Pix client against a real local TLS server that requires a client certificate."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificates

from pixweb.errors import (
    InvalidInputError,
    PspAuthError,
    PspError,
    PspNotFoundError,
    PspRejectedError,
    PspTlsError,
    PspUnavailableError,
    UnprocessableError,
)
from pixweb.psp import tls
from pixweb.psp.client import PspClient
from pixweb.psp.schemas import (
    CalendarioSolicitado,
    CobSolicitada,
    CobStatus,
    CobValor,
    DevolucaoSolicitada,
    valor_from_centavos,
)
from tests.psp.conftest import CHAVE, CLIENT_ID, FakePsp, Pki, pem_chain, pem_key, problem

Connect = Callable[..., PspClient]
TXID = "pixweb0000000000000000000001"
E2EID = "E12345678202601021000abcdefghijk"
COB = CobSolicitada(
    calendario=CalendarioSolicitado(expiracao=3600),
    valor=CobValor(original=valor_from_centavos(10000)),
    chave=CHAVE,
    solicitacao_pagador="Pedido 1042",
)
PIX = {
    "endToEndId": E2EID,
    "txid": TXID,
    "valor": "100.00",
    "horario": "2026-01-02T10:05:00Z",
    "infoPagador": "Pedido 1042",
}


async def test_calls_go_over_mtls_with_one_cached_token(psp: FakePsp, connect: Connect) -> None:
    client = connect()
    created = await client.put_cob(TXID, COB)
    assert created.status is CobStatus.ATIVA
    assert created.pix_copia_e_cola and TXID in created.pix_copia_e_cola
    assert (await client.get_cob(TXID)).valor.original == Decimal("100.00")
    await asyncio.gather(*(client.get_cob(TXID) for _ in range(10)))

    assert psp.tokens_issued == 1
    (token_call,) = psp.seen("POST /oauth/token")
    basic = base64.b64decode(token_call.authorization.removeprefix("Basic ")).decode()
    assert basic == f"{CLIENT_ID}:s3cret:with-colon"
    assert token_call.body == b"grant_type=client_credentials"
    api_calls = [s for s in psp.requests if s.path != "/oauth/token"]
    assert len(api_calls) == 12
    assert {s.authorization for s in api_calls} == {"Bearer token-1"}
    (put,) = psp.seen(f"PUT /cob/{TXID}")
    assert put.body == (
        b'{"calendario":{"expiracao":3600},"valor":{"original":"100.00"},'
        b'"chave":"merchant@example.com","solicitacaoPagador":"Pedido 1042"}'
    )
    token = await client.get_token()
    assert token.access_token == "token-1" and token.scope and "cob.write" in token.scope


async def test_the_psp_requires_a_client_certificate(psp: FakePsp, pki: Pki) -> None:
    """The fixture is a real mTLS server: without a certificate nothing gets through."""
    context = ssl.create_default_context()
    pki.ca.configure_trust(context)
    async with httpx.AsyncClient(verify=context) as bare:
        with pytest.raises(httpx.TransportError):
            await bare.post(f"{psp.url}/oauth/token")
    assert psp.requests == []


async def test_a_certificate_the_psp_did_not_issue_is_a_tls_error(
    psp: FakePsp, pki: Pki, connect: Connect
) -> None:
    client = connect(
        certificate_pem=pem_chain(pki.foreign_client),
        private_key_pem=pem_key(pki.foreign_client),
    )
    started = time.monotonic()
    with pytest.raises(PspTlsError) as caught:
        await client.get_cob(TXID)
    assert caught.value.step == "tls"
    assert caught.value.detail.startswith("tls: the PSP refused the client certificate")
    assert psp.requests == []
    assert time.monotonic() - started < 2  # named at once, not retried


async def test_an_untrusted_psp_server_is_a_tls_error(
    psp: FakePsp, pki: Pki, connect: Connect
) -> None:
    for server_ca in (None, pki.other_ca.cert_pem.bytes().decode()):
        with pytest.raises(PspTlsError, match="server certificate is not trusted") as caught:
            await connect(server_ca_pem=server_ca).get_token()
        assert caught.value.step == "tls"
    assert psp.requests == []


async def test_the_token_is_renewed_once_on_a_401(psp: FakePsp, connect: Connect) -> None:
    client = connect()
    await client.put_cob(TXID, COB)
    psp.revoke_tokens()  # e.g. the PSP rotated its signing key

    assert (await client.get_cob(TXID)).txid == TXID
    assert psp.tokens_issued == 2
    assert [s.authorization for s in psp.seen(f"GET /cob/{TXID}")] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_a_second_401_is_an_auth_error(psp: FakePsp, connect: Connect) -> None:
    psp.refuse_tokens = True
    with pytest.raises(PspAuthError) as caught:
        await connect().get_pix(E2EID)
    assert caught.value.step == "token"
    assert caught.value.psp_status == 401
    assert psp.tokens_issued == 2
    assert len(psp.seen(f"GET /pix/{E2EID}")) == 2


async def test_the_token_is_renewed_shortly_before_it_expires(
    psp: FakePsp, connect: Connect
) -> None:
    psp.token_lifetime = 1
    psp.pix[E2EID] = PIX
    client = connect()
    await client.get_pix(E2EID)
    await client.get_pix(E2EID)
    assert psp.tokens_issued == 1
    await asyncio.sleep(0.95)  # renewed before the end of its second, without a 401
    await client.get_pix(E2EID)
    assert psp.tokens_issued == 2
    assert not any(s.authorization == "Bearer token-1" for s in psp.requests[-1:])


async def test_a_get_is_retried_on_5xx_with_the_same_request(
    psp: FakePsp, connect: Connect
) -> None:
    psp.pix[E2EID] = PIX
    unavailable = problem(503, "ServicoIndisponivel")
    psp.script(f"GET /pix/{E2EID}", (503, unavailable), (503, unavailable))
    pix = await connect().get_pix(E2EID)
    assert pix.valor == Decimal("100.00")
    calls = psp.seen(f"GET /pix/{E2EID}")
    assert len(calls) == 3
    assert all(
        (c.query, c.authorization, c.body) == (calls[0].query, "Bearer token-1", b"") for c in calls
    )


async def test_a_put_is_retried_after_a_timeout_with_the_same_txid(
    psp: FakePsp, connect: Connect
) -> None:
    psp.script(f"PUT /cob/{TXID}", (503, problem(503, "ServicoIndisponivel"), 0.6))
    created = await connect(timeout=0.3).put_cob(TXID, COB)
    assert created.txid == TXID
    calls = psp.seen(f"PUT /cob/{TXID}")
    assert len(calls) == 2 and calls[0].body == calls[1].body
    assert list(psp.cobs) == [TXID]


async def test_retries_end_in_unavailable(psp: FakePsp, connect: Connect) -> None:
    psp.script(f"GET /cob/{TXID}", *[(503, problem(503, "ServicoIndisponivel"))] * 3)
    client = connect()
    with pytest.raises(PspUnavailableError) as caught:
        await client.get_cob(TXID)
    assert caught.value.step == "cob" and caught.value.psp_status == 503
    assert "after 3 attempts" in caught.value.detail
    assert "ServicoIndisponivel" in caught.value.detail
    assert len(psp.seen(f"GET /cob/{TXID}")) == 3


async def test_patch_and_the_token_request_are_not_retried(psp: FakePsp, connect: Connect) -> None:
    client = connect()
    await client.put_cob(TXID, COB)
    psp.script(f"PATCH /cob/{TXID}", (503, problem(503, "ServicoIndisponivel")))
    with pytest.raises(PspUnavailableError):
        await client.patch_cob(TXID)
    assert len(psp.seen(f"PATCH /cob/{TXID}")) == 1
    assert (await client.patch_cob(TXID)).status is CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR

    psp.script("POST /oauth/token", (500, {"error": "server_error"}))
    with pytest.raises(PspUnavailableError) as caught:
        await connect().get_token()
    assert caught.value.step == "token"
    assert len(psp.seen("POST /oauth/token")) == 2  # the first client's one, and this one


async def test_violacoes_are_named(psp: FakePsp, connect: Connect) -> None:
    violacoes = [
        {"razao": "Valor da cobrança não pode ser 0.00", "propriedade": "cob.valor.original"},
        {"razao": "Chave não pertence ao recebedor", "propriedade": "cob.chave", "valor": CHAVE},
    ]
    body = problem(400, "CobOperacaoInvalida", detail="Cobrança inválida.", violacoes=violacoes)
    psp.script(f"PUT /cob/{TXID}", (400, body))
    with pytest.raises(PspRejectedError) as caught:
        await connect().put_cob(TXID, COB)
    error = caught.value
    assert isinstance(error, UnprocessableError)  # answered 422 by the API
    assert error.step == "cob" and error.psp_status == 400
    for v in violacoes:
        assert f"{v['propriedade']}: {v['razao']}" in error.detail
    assert error.fields == {v["propriedade"]: v["razao"] for v in violacoes}
    assert error.violacoes[1]["valor"] == CHAVE
    assert len(psp.seen(f"PUT /cob/{TXID}")) == 1  # a 4xx is not retried


async def test_an_error_body_that_is_not_a_problem_is_quoted(
    psp: FakePsp, connect: Connect
) -> None:
    psp.script(f"GET /cob/{TXID}", (409, {"message": "cobrança bloqueada"}))
    with pytest.raises(PspRejectedError, match='409: {"message"') as caught:
        await connect().get_cob(TXID)
    assert caught.value.fields is None and caught.value.violacoes == []


async def test_forbidden_names_the_scope_and_unknown_is_not_found(
    psp: FakePsp, connect: Connect
) -> None:
    psp.script(f"PUT /cob/{TXID}", (403, problem(403, "AcessoNegado")))
    client = connect()
    with pytest.raises(PspAuthError) as forbidden:
        await client.put_cob(TXID, COB)
    assert forbidden.value.step == "permission"
    assert "cob.write" in forbidden.value.detail
    with pytest.raises(PspNotFoundError) as unknown:
        await client.get_pix(E2EID)
    assert unknown.value.step == "pix" and unknown.value.psp_status == 404


async def test_credentials_and_token_endpoint_problems_say_token(
    psp: FakePsp, connect: Connect
) -> None:
    with pytest.raises(PspAuthError, match="refused the client credentials.*invalid_client") as bad:
        await connect(client_secret="wrong").get_token()
    assert bad.value.step == "token" and bad.value.psp_status == 401
    with pytest.raises(PspAuthError, match="no token endpoint at .*/oauth/v2/token"):
        await connect(token_url=f"{psp.url}/oauth/v2/token").get_token()


async def test_an_nginx_style_certificate_refusal_is_a_tls_error(
    psp: FakePsp, connect: Connect
) -> None:
    page = "<html><center>No required SSL certificate was sent</center></html>"
    psp.script("POST /oauth/token", (400, page))
    with pytest.raises(PspTlsError) as caught:
        await connect().get_token()
    assert caught.value.step == "tls"


async def test_a_psp_that_is_down_is_unavailable_after_retries(connect: Connect) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(PspUnavailableError, match="cannot connect") as caught:
        await connect(base_url=url).get_token()
    assert caught.value.step == "token"


async def test_a_body_the_psp_got_wrong_is_named(psp: FakePsp, connect: Connect) -> None:
    psp.pix[E2EID] = {**PIX, "valor": 100.0}  # a JSON number: never read as money
    with pytest.raises(PspError, match=r"invalid Pix \(valor: .*decimal string") as caught:
        await connect().get_pix(E2EID)
    assert type(caught.value) is PspError


async def test_webhook_devolucao_and_list_calls(psp: FakePsp, connect: Connect) -> None:
    client = connect()
    chave = "+5511987654321"
    await client.put_webhook(chave, "https://pixweb.example/webhooks/pix/tok")
    assert psp.webhooks == {chave: "https://pixweb.example/webhooks/pix/tok"}
    assert psp.seen("PUT /webhook/+5511987654321")[0].body == (
        b'{"webhookUrl":"https://pixweb.example/webhooks/pix/tok"}'
    )
    assert (await client.get_webhook(chave)).webhook_url.endswith("/tok")
    await client.delete_webhook(chave)
    with pytest.raises(PspNotFoundError) as gone:
        await client.get_webhook(chave)
    assert gone.value.step == "webhook"

    psp.pix[E2EID] = PIX
    asked = DevolucaoSolicitada(valor=Decimal("10.00"), descricao="Troca")
    refund = await client.put_devolucao(E2EID, "refund1", asked)
    assert refund.valor == Decimal("10.00") and refund.id == "refund1"
    assert (await client.get_devolucao(E2EID, "refund1")).rtr_id == refund.rtr_id

    for i in range(3):
        e2eid = f"E12345678202601021000abcdefghi{i:02d}"
        psp.pix[e2eid] = {**PIX, "endToEndId": e2eid, "txid": None}
    start = datetime(2026, 1, 2, 7, 0, tzinfo=UTC) - timedelta(hours=3)
    page = await client.list_pix(start, start + timedelta(days=1), pagina=1, itens=2)
    assert page.parametros.paginacao.quantidade_de_paginas == 2
    assert len(page.pix) == 2
    query = psp.seen("GET /pix")[0].query
    assert query == {
        "inicio": "2026-01-02T04:00:00Z",
        "fim": "2026-01-03T04:00:00Z",
        "paginacao.paginaAtual": "1",
        "paginacao.itensPorPagina": "2",
    }


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.get_cob("short"), "txid"),
        (lambda c: c.get_cob("../../oauth/token/xxxxxxxxxxxxxxxxxx"), "txid"),
        (lambda c: c.get_pix("E123/../../x"), "e2eid"),
        (lambda c: c.get_devolucao(E2EID, "a/b"), "id"),
        (lambda c: c.list_pix(datetime(2026, 1, 1), datetime(2026, 1, 2)), "inicio"),
    ],
)
async def test_path_segments_and_times_are_checked_before_sending(
    psp: FakePsp, connect: Connect, call: Callable[[PspClient], Any], field: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await call(connect())
    assert caught.value.fields is not None and field in caught.value.fields
    assert psp.requests == []


async def test_the_tls_material_is_checked_and_named(pki: Pki) -> None:
    good = {
        "base_url": "https://psp.example",
        "client_id": "id",
        "client_secret": "secret",
        "certificate_pem": pem_chain(pki.client),
        "private_key_pem": pem_key(pki.client),
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"certificate_pem": ""}, "certificate_pem"),
        ({"private_key_pem": "-----BEGIN PRIVATE KEY-----\nxx\n"}, "private_key_pem"),
        ({"private_key_pem": pem_key(pki.foreign_client)}, "private_key_pem"),
        ({"server_ca_pem": "not a pem"}, "server_ca_pem"),
        ({"base_url": "http://psp.example"}, "base_url"),
        ({"token_url": "http://psp.example/oauth/token"}, "token_url"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInputError) as caught:
            PspClient(**{**good, **change})
        assert caught.value.fields is not None and list(caught.value.fields) == [field]
    async with PspClient(**good) as client:
        assert client.token_url == "https://psp.example/oauth/token"


def test_certificate_facts_and_p12_files(pki: Pki) -> None:
    info = tls.certificate_info(pem_chain(pki.client))
    assert "O=Loja Exemplo" in info.subject
    assert info.not_after.tzinfo is not None and info.not_after > datetime.now(UTC)

    key = serialization.load_pem_private_key(pki.client.private_key_pem.bytes(), None)
    leaf, *chain = load_pem_x509_certificates(pem_chain(pki.client).encode())
    p12 = pkcs12.serialize_key_and_certificates(
        b"merchant",
        key,  # type: ignore[arg-type]
        leaf,
        chain or None,
        serialization.BestAvailableEncryption(b"banco"),
    )
    certificate_pem, private_key_pem = tls.pkcs12_to_pem(p12, "banco")
    assert tls.certificate_info(certificate_pem).subject == info.subject
    tls.client_identity(certificate_pem, private_key_pem)  # they belong together
    with pytest.raises(InvalidInputError, match="wrong password"):
        tls.pkcs12_to_pem(p12, "errada")


async def test_a_p12_converted_client_connects(psp: FakePsp, pki: Pki, connect: Connect) -> None:
    key = serialization.load_pem_private_key(pki.client.private_key_pem.bytes(), None)
    leaf, *chain = load_pem_x509_certificates(pem_chain(pki.client).encode())
    p12 = pkcs12.serialize_key_and_certificates(
        b"m",
        key,
        leaf,
        chain or None,
        serialization.NoEncryption(),  # type: ignore[arg-type]
    )
    certificate_pem, private_key_pem = tls.pkcs12_to_pem(p12, None)
    client = connect(certificate_pem=certificate_pem, private_key_pem=private_key_pem)
    assert (await client.get_token()).access_token == "token-1"
