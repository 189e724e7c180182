"""The sandbox PSP (pixweb.psp.sandbox) driven through the real PspClient, against the app
served by hypercorn on a free port, its webhooks POSTed to a real local receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from quart import Quart, Response, request

from pixweb.app import create_app
from pixweb.errors import InvalidInputError, PspAuthError, PspNotFoundError, PspRejectedError
from pixweb.models import Merchant
from pixweb.pix import brcode
from pixweb.pix.keys import is_valid_cpf
from pixweb.psp.client import PspClient
from pixweb.psp.sandbox import auth
from pixweb.psp.sandbox.http import WORKER_KEY
from pixweb.psp.sandbox.scenarios import Scenario, pay_cob
from pixweb.psp.sandbox.worker import SandboxWorker
from pixweb.psp.schemas import (
    CalendarioSolicitado,
    CobSolicitada,
    CobStatus,
    CobValor,
    DevolucaoSolicitada,
    DevolucaoStatus,
    Pix,
    valor_from_centavos,
)
from pixweb.psp.transport import RetryPolicy
from tests.conftest import _empty_tables, make_merchant
from tests.support import PRODUCTION

SECRET = "sandbox-test-secret-key-0123456789-0123456789"
CHAVE = "loja@example.com"  # the key make_merchant registers
TXID = "pixweb" + "0" * 20 + "01"
E2EID = re.compile(r"E(\d{8})(\d{12})[a-zA-Z0-9]{11}")
REFUND_SECONDS = 0.3


def _free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@dataclass
class Served:
    app: Quart
    url: str


async def _serve(app: Quart) -> AsyncIterator[str]:
    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = 1
    config.loglevel = "ERROR"
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield url
    finally:
        stop.set()
        await server


@pytest.fixture
async def sandbox(database_url: str) -> AsyncIterator[Served]:
    """pixweb (development) served by hypercorn, with the sandbox's delays shortened."""
    in_memory = database_url.startswith("sqlite")
    if not in_memory:
        await _empty_tables(database_url)
    app = create_app(
        {
            "testing": True,
            "database_url": database_url,
            "auto_migrate": in_memory,
            "secret_key": SECRET,
            "extra": {
                "SANDBOX_PSP_REFUND_SECONDS": REFUND_SECONDS,
                "SANDBOX_PSP_WEBHOOK_BACKOFF_SECONDS": 0.05,
            },
        }
    )
    async for url in _serve(app):
        async with httpx.AsyncClient() as http:  # the lifespan has run once it answers
            for _ in range(200):
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.02)
        yield Served(app, url)


@dataclass
class Receiver:
    """A merchant's webhook endpoint: records each POST; `failures` answers 500 first."""

    url: str = ""
    posts: list[tuple[str, Any]] = field(default_factory=list)
    failures: int = 0
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while len(self.posts) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = Quart(__name__)

    @app.post("/<path:path>")
    async def record(path: str) -> Response:
        await asyncio.sleep(hook.delay)
        hook.posts.append((f"/{path}", await request.get_json()))
        hook.arrived.set()
        if hook.failures:
            hook.failures -= 1
            return Response("down", status=500)
        return Response("", status=200)

    async for url in _serve(app):
        hook.url = url
        yield hook


@pytest.fixture
async def merchant(sandbox: Served) -> Merchant:
    return await make_merchant(name="Padaria São João", city="São Paulo")


Connect = Callable[..., PspClient]


@pytest.fixture
async def connect(sandbox: Served, merchant: Merchant) -> AsyncIterator[Connect]:
    """`connect(**overrides)`: the real PspClient on the sandbox, as the merchant."""
    clients: list[PspClient] = []
    client_id, client_secret = auth.client_credentials(SECRET, merchant.id)

    def make(**overrides: Any) -> PspClient:
        options: dict[str, Any] = {
            "base_url": f"{sandbox.url}/sandbox/psp",
            "client_id": client_id,
            "client_secret": client_secret,
            "plain_http": True,
            "timeout": 5.0,
            "retry": RetryPolicy(attempts=2, backoff=0.01),
        }
        client = PspClient(**{**options, **overrides})
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def cob(cents: int = 10000, expiracao: int = 3600, chave: str = CHAVE) -> CobSolicitada:
    return CobSolicitada(
        calendario=CalendarioSolicitado(expiracao=expiracao),
        valor=CobValor(original=valor_from_centavos(cents)),
        chave=chave,
        solicitacao_pagador="Pedido 1042",
    )


async def bearer(psp: PspClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await psp.get_token()).access_token}"}


async def simulate(
    sandbox: Served, psp: PspClient, txid: str, scenario: str, **extra: Any
) -> list[Pix]:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{sandbox.url}/sandbox/psp/cob/{txid}/simulate",
            json={"scenario": scenario, **extra},
            headers=await bearer(psp),
        )
    assert response.status_code == 201, response.text
    return [Pix.model_validate(item) for item in response.json()["pix"]]


def assert_plausible(pix: Pix, before: datetime) -> None:
    match = E2EID.fullmatch(pix.end_to_end_id)
    assert match, pix.end_to_end_id
    stamp = datetime.strptime(match.group(2), "%Y%m%d%H%M").replace(tzinfo=UTC)
    assert before - timedelta(minutes=1) <= stamp <= pix.horario
    assert pix.pagador and pix.pagador.nome and pix.pagador.cpf
    assert is_valid_cpf(pix.pagador.cpf)


# -- token, charges --------------------------------------------------------------------------


async def test_a_charge_is_created_read_and_removed_with_a_dynamic_code(
    connect: Connect, merchant: Merchant
) -> None:
    psp = connect()
    token = await psp.get_token()
    assert set(token.scope.split()) >= {"cob.write", "cob.read", "pix.read", "webhook.write"}

    made = await psp.put_cob(TXID, cob())
    assert (made.status, made.revisao, made.txid) == (CobStatus.ATIVA, 0, TXID)
    assert made.loc and made.loc.location == made.location and made.loc.tipo_cob == "cob"
    assert made.location and "/sandbox/psp/qr/" in made.location
    assert not made.location.startswith("http")
    decoded = brcode.decode(made.pix_copia_e_cola or "")
    assert decoded.valid, decoded.errors
    assert (decoded.kind, decoded.url, decoded.key) == ("dynamic", made.location, None)
    assert (decoded.amount, decoded.txid) == ("100.00", "***")
    assert (decoded.name, decoded.city) == ("Padaria Sao Joao", "Sao Paulo")

    read = await psp.get_cob(TXID)
    assert read.valor.original == Decimal("100.00") and read.pix == []
    assert read.pix_copia_e_cola == made.pix_copia_e_cola
    assert read.solicitacao_pagador == "Pedido 1042"

    assert (await psp.put_cob(TXID, cob())) == made  # the same PUT again: answered as it stands
    with pytest.raises(PspRejectedError) as reused:
        await psp.put_cob(TXID, cob(cents=9900))
    assert reused.value.psp_status == 400
    assert [v["propriedade"] for v in reused.value.violacoes] == ["txid"]
    assert "txid em uso" in (reused.value.violacoes[0]["razao"] or "")

    removed = await psp.patch_cob(TXID)
    assert (removed.status, removed.revisao) == (CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR, 1)
    assert (await psp.get_cob(TXID)).status is CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR
    with pytest.raises(PspRejectedError, match="não está ATIVA"):
        await psp.patch_cob(TXID)
    with pytest.raises(PspNotFoundError):
        await psp.get_cob("x" * 26)


async def test_the_location_serves_the_charge_as_a_jws(sandbox: Served, connect: Connect) -> None:
    made = await connect().put_cob(TXID, cob())
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{made.location}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jose"
    header, claims, _ = response.text.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["txid"] == TXID and payload["valor"] == {"original": "100.00"}
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "HS256"


async def test_credentials_and_scopes_are_enforced(
    sandbox: Served, connect: Connect, merchant: Merchant
) -> None:
    with pytest.raises(PspAuthError) as wrong:
        await connect(client_secret="not-the-secret").get_token()
    assert wrong.value.step == "token" and "invalid_client" in wrong.value.detail
    other_id, other_secret = auth.client_credentials(SECRET, merchant.id + 1)
    with pytest.raises(PspAuthError):  # a well-made credential of no merchant
        await connect(client_id=other_id, client_secret=other_secret).get_token()

    reader = connect(scope="cob.read")
    with pytest.raises(PspAuthError) as denied:
        await reader.put_cob(TXID, cob())
    assert (denied.value.step, denied.value.psp_status) == ("permission", 403)

    async with httpx.AsyncClient() as http:
        anonymous = await http.get(f"{sandbox.url}/sandbox/psp/cob/{TXID}")
        forged = await http.get(
            f"{sandbox.url}/sandbox/psp/cob/{TXID}", headers={"Authorization": "Bearer x.y.z"}
        )
    for response in (anonymous, forged):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/NaoAutorizado")


async def test_bad_bodies_are_rfc_7807_problems_naming_each_violation(
    sandbox: Served, connect: Connect
) -> None:
    psp = connect()
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/sandbox/psp") as http:
        bad = {"calendario": {"expiracao": 0}, "valor": {"original": 100}}
        response = await http.put(f"/cob/{TXID}", json=bad, headers=await bearer(psp))
        short = await http.put("/cob/short", json=bad, headers=await bearer(psp))
        query = await http.get(
            "/pix",
            params={"inicio": "2026-01-02T00:00:00Z", "fim": "2026-01-01T00:00:00Z"},
            headers=await bearer(psp),
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://pix.bcb.gov.br/api/v2/error/CobOperacaoInvalida"
    assert (problem["title"], problem["status"]) == ("Cobrança inválida.", 400)
    assert problem["detail"]
    named = {v["propriedade"] for v in problem["violacoes"]}
    assert named == {"cob.calendario.expiracao", "cob.valor.original", "cob.chave"}
    assert all(v["razao"] for v in problem["violacoes"])
    assert short.json()["violacoes"][0]["propriedade"] == "txid"
    assert query.status_code == 400
    assert query.json()["type"].endswith("/PixConsultaInvalida")
    assert query.json()["violacoes"][0]["propriedade"] == "fim"
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/sandbox/psp") as http:
        window = {"inicio": "2026-01-01T00:00:00Z", "fim": "2026-01-02T00:00:00Z"}
        for name, value in (
            ("txid", "a\x00b"),
            ("cpf", "123"),
            ("paginacao.itensPorPagina", "1001"),
            ("paginacao.paginaAtual", "-1"),
            ("txIdPresente", "sim"),
        ):
            refused = await http.get(
                "/pix", params={**window, name: value}, headers=await bearer(psp)
            )
            assert refused.status_code == 400, (name, refused.text)
            assert refused.json()["violacoes"][0]["propriedade"] == name
        control = {**cob().model_dump(by_alias=True, mode="json"), "solicitacaoPagador": "a\x1bb"}
        refused = await http.put(f"/cob/{TXID}", json=control, headers=await bearer(psp))
        assert refused.status_code == 400
        assert refused.json()["violacoes"][0]["propriedade"] == "cob.solicitacaoPagador"

    with pytest.raises(PspRejectedError) as foreign:  # a key that is not the merchant's
        await psp.put_cob(TXID, cob(chave="outra@example.com"))
    assert foreign.value.violacoes[0]["propriedade"] == "cob.chave"
    with pytest.raises(PspRejectedError) as zero:
        await psp.put_cob(TXID, cob(cents=0))
    assert zero.value.fields == {"cob.valor.original": "O valor é zero."}


async def test_the_sandbox_is_not_served_in_production() -> None:
    app = create_app({**PRODUCTION, "database_url": "sqlite://:memory:"})
    assert not [r for r in app.url_map.iter_rules() if r.rule.startswith("/sandbox")]
    client = app.test_client()
    assert (await client.post("/sandbox/psp/oauth/token")).status_code == 404
    assert (await client.get(f"/sandbox/psp/cob/{TXID}")).status_code == 404


async def test_a_plain_http_client_is_explicit_and_carries_no_certificate() -> None:
    with pytest.raises(InvalidInputError, match="https"):
        PspClient(base_url="http://127.0.0.1:1", client_id="a", client_secret="b")
    with pytest.raises(InvalidInputError, match="required"):
        PspClient(base_url="https://psp.example", client_id="a", client_secret="b")
    with pytest.raises(InvalidInputError, match="http URL"):
        PspClient(base_url="https://psp.example", client_id="a", client_secret="b", plain_http=True)
    with pytest.raises(InvalidInputError, match="plain http"):
        PspClient(
            base_url="http://127.0.0.1:1",
            client_id="a",
            client_secret="b",
            certificate_pem="x",
            plain_http=True,
        )


# -- scenarios -----------------------------------------------------------------------------


async def test_each_scenario_makes_the_right_pix(sandbox: Served, connect: Connect) -> None:
    psp = connect()
    before = datetime.now(UTC)
    txids = {s: f"{s.value.replace('_', '')}{'0' * 26}"[:30] for s in Scenario}
    for txid in txids.values():
        await psp.put_cob(txid, cob())

    (exact,) = await simulate(sandbox, psp, txids[Scenario.EXACT], "exact")
    assert (exact.txid, exact.valor, exact.chave) == (
        txids[Scenario.EXACT],
        Decimal("100.00"),
        CHAVE,
    )
    assert_plausible(exact, before)
    assert (await psp.get_pix(exact.end_to_end_id)) == exact
    paid = await psp.get_cob(txids[Scenario.EXACT])
    assert paid.status is CobStatus.CONCLUIDA and paid.pix == [exact]

    twice = await simulate(sandbox, psp, txids[Scenario.TWICE], "twice")
    assert len({p.end_to_end_id for p in twice}) == 2
    assert {(p.txid, p.valor) for p in twice} == {(txids[Scenario.TWICE], Decimal("100.00"))}
    assert len((await psp.get_cob(txids[Scenario.TWICE])).pix) == 2

    (other,) = await simulate(
        sandbox, psp, txids[Scenario.OTHER_AMOUNT], "other_amount", valor="90.00"
    )
    assert other.valor == Decimal("90.00")

    (late,) = await simulate(sandbox, psp, txids[Scenario.LATE], "late")
    charge = await psp.get_cob(txids[Scenario.LATE])
    expired_at = charge.calendario.criacao + timedelta(seconds=charge.calendario.expiracao)
    assert expired_at < late.horario  # the charge's clock was moved back

    for scenario in (Scenario.NO_WEBHOOK, Scenario.WEBHOOK_TWICE):  # the Pix are the same
        (pix,) = await simulate(sandbox, psp, txids[scenario], scenario.value)
        assert pix.txid == txids[scenario] and pix.valor == Decimal("100.00")
        assert_plausible(pix, before)

    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{sandbox.url}/sandbox/psp/pay-key",
            json={"chave": CHAVE, "valor": "12.34"},
            headers=await bearer(psp),
        )
    assert response.status_code == 201, response.text
    keyed = Pix.model_validate(response.json())
    assert (keyed.txid, keyed.valor, keyed.chave) == (None, Decimal("12.34"), CHAVE)
    assert_plausible(keyed, before)
    assert (await psp.get_pix(keyed.end_to_end_id)).txid is None


async def test_scenario_refusals_are_problems(sandbox: Served, connect: Connect) -> None:
    psp = connect()
    await psp.put_cob(TXID, cob())
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/sandbox/psp") as http:
        headers = await bearer(psp)
        same = await http.post(
            f"/cob/{TXID}/simulate",
            json={"scenario": "other_amount", "valor": "100.00"},
            headers=headers,
        )
        unknown = await http.post(f"/cob/{TXID}/simulate", json={"scenario": "x"}, headers=headers)
        missing = await http.post(f"/cob/{'9' * 26}/simulate", json={}, headers=headers)
        foreign = await http.post(
            "/pay-key", json={"chave": "outra@example.com", "valor": "1.00"}, headers=headers
        )
        anonymous = await http.post("/pay-key", json={"chave": CHAVE, "valor": "1.00"})
    assert same.status_code == 400 and same.json()["violacoes"][0]["propriedade"] == "valor"
    assert unknown.json()["violacoes"][0]["propriedade"] == "simulacao.scenario"
    assert missing.status_code == 404
    assert foreign.status_code == 400 and foreign.json()["violacoes"][0]["propriedade"] == "chave"
    assert anonymous.status_code == 401


async def test_get_pix_pages_and_filters(sandbox: Served, connect: Connect) -> None:
    psp = connect()
    start = datetime.now(UTC) - timedelta(seconds=1)
    await psp.put_cob(TXID, cob())
    made = await simulate(sandbox, psp, TXID, "twice")
    made += await simulate(sandbox, psp, TXID, "twice")
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{sandbox.url}/sandbox/psp/pay-key",
            json={"chave": CHAVE, "valor": "5.00"},
            headers=await bearer(psp),
        )
    made.append(Pix.model_validate(response.json()))
    end = datetime.now(UTC) + timedelta(seconds=1)

    pages = [await psp.list_pix(start, end, pagina=n, itens=2) for n in range(3)]
    for page in pages:
        paging = page.parametros.paginacao
        assert (paging.quantidade_de_paginas, paging.quantidade_total_de_itens) == (3, 5)
    assert [len(p.pix) for p in pages] == [2, 2, 1]
    listed = [pix for page in pages for pix in page.pix]
    assert [p.end_to_end_id for p in listed] == [p.end_to_end_id for p in made]

    everything = await psp.list_pix(start, end)
    assert everything.parametros.paginacao.itens_por_pagina == 100
    assert len(everything.pix) == 5
    assert (await psp.list_pix(end, end + timedelta(hours=1))).pix == []
    async with httpx.AsyncClient() as http:
        no_txid = await http.get(
            f"{sandbox.url}/sandbox/psp/pix",
            params={
                "inicio": start.isoformat(),
                "fim": end.isoformat(),
                "txIdPresente": "false",
            },
            headers=await bearer(psp),
        )
    assert [p["endToEndId"] for p in no_txid.json()["pix"]] == [made[-1].end_to_end_id]


# -- webhooks ------------------------------------------------------------------------------


async def test_webhooks_carry_the_standard_body_to_url_pix(
    sandbox: Served, connect: Connect, receiver: Receiver, merchant: Merchant
) -> None:
    psp = connect()
    await psp.put_webhook(CHAVE, f"{receiver.url}/hook/")
    registered = await psp.get_webhook(CHAVE)
    assert (registered.webhook_url, registered.chave) == (f"{receiver.url}/hook/", CHAVE)
    txids = [f"hook{n}{'0' * 24}" for n in range(4)]
    for txid in txids:
        await psp.put_cob(txid, cob())

    (exact,) = await simulate(sandbox, psp, txids[0], "exact")
    await receiver.wait_for(1)
    path, body = receiver.posts[0]
    assert path == "/hook/pix"
    assert body == {"pix": [json.loads(exact.model_dump_json(by_alias=True, exclude_none=True))]}
    assert set(body["pix"][0]) >= {"endToEndId", "txid", "valor", "horario", "chave"}
    assert body["pix"][0]["valor"] == "100.00"

    (dropped,) = await simulate(sandbox, psp, txids[1], "no_webhook")
    await pay_cob(merchant.id, txids[2], Scenario.WEBHOOK_TWICE, worker=get_worker_of(sandbox))
    await receiver.wait_for(3)
    await get_worker_of(sandbox).idle()
    assert len(receiver.posts) == 3
    assert receiver.posts[1] == receiver.posts[2]  # the same delivery, twice
    delivered = {p["endToEndId"] for _, b in receiver.posts for p in b["pix"]}
    assert dropped.end_to_end_id not in delivered
    assert await psp.get_pix(dropped.end_to_end_id)  # only GET /pix tells about it

    async with httpx.AsyncClient() as http:  # a Pix without txid is never notified
        await http.post(
            f"{sandbox.url}/sandbox/psp/pay-key",
            json={"chave": CHAVE, "valor": "5.00"},
            headers=await bearer(psp),
        )
    await get_worker_of(sandbox).idle()
    assert len(receiver.posts) == 3

    await psp.delete_webhook(CHAVE)
    with pytest.raises(PspNotFoundError):
        await psp.get_webhook(CHAVE)
    await simulate(sandbox, psp, txids[3], "exact")
    await get_worker_of(sandbox).idle()
    assert len(receiver.posts) == 3


async def test_a_webhook_is_retried_and_never_holds_the_payment_back(
    sandbox: Served, connect: Connect, receiver: Receiver
) -> None:
    psp = connect()
    await psp.put_webhook(CHAVE, f"{receiver.url}/hook")
    await psp.put_cob(TXID, cob())
    receiver.failures, receiver.delay = 2, 0.5
    started = time.monotonic()
    (pix,) = await simulate(sandbox, psp, TXID, "exact")
    assert time.monotonic() - started < 0.4  # answered before the first delivery ended
    await receiver.wait_for(3)
    assert [b["pix"][0]["endToEndId"] for _, b in receiver.posts] == [pix.end_to_end_id] * 3


def get_worker_of(sandbox: Served) -> SandboxWorker:
    return cast(SandboxWorker, sandbox.app.extensions[WORKER_KEY])


# -- refunds -------------------------------------------------------------------------------


async def wait_final(psp: PspClient, e2eid: str, rid: str) -> Any:
    async with asyncio.timeout(5):
        while True:
            refund = await psp.get_devolucao(e2eid, rid)
            if refund.status is not DevolucaoStatus.EM_PROCESSAMENTO:
                return refund
            await asyncio.sleep(0.05)


async def test_refunds_settle_after_a_delay_within_the_pix(
    sandbox: Served, connect: Connect, receiver: Receiver
) -> None:
    psp = connect()
    await psp.put_webhook(CHAVE, f"{receiver.url}/hook")
    await psp.put_cob(TXID, cob())
    (pix,) = await simulate(sandbox, psp, TXID, "exact")
    await receiver.wait_for(1)
    e2eid = pix.end_to_end_id

    asked = DevolucaoSolicitada(valor=Decimal("30.00"), descricao="Troca")
    refund = await psp.put_devolucao(e2eid, "dev1", asked)
    assert (refund.id, refund.status, refund.valor) == (
        "dev1",
        DevolucaoStatus.EM_PROCESSAMENTO,
        Decimal("30.00"),
    )
    assert refund.rtr_id.startswith("D") and len(refund.rtr_id) == 32
    assert refund.horario.solicitacao and refund.horario.liquidacao is None
    assert await psp.put_devolucao(e2eid, "dev1", asked) == refund  # a retry: the same refund
    with pytest.raises(PspRejectedError) as reused:
        await psp.put_devolucao(e2eid, "dev1", DevolucaoSolicitada(valor=Decimal("31.00")))
    assert reused.value.violacoes[0]["propriedade"] == "id"

    refused = await psp.put_devolucao(
        e2eid, "dev2", DevolucaoSolicitada(valor=Decimal("70.00"), descricao="NAO_REALIZADO")
    )
    assert refused.status is DevolucaoStatus.EM_PROCESSAMENTO
    with pytest.raises(PspRejectedError) as over:  # 30 + 70 in process: nothing is left
        await psp.put_devolucao(e2eid, "dev3", DevolucaoSolicitada(valor=Decimal("0.01")))
    assert over.value.violacoes[0]["propriedade"] == "devolucao.valor"

    done = await wait_final(psp, e2eid, "dev1")
    assert done.status is DevolucaoStatus.DEVOLVIDO and done.horario.liquidacao
    failed = await wait_final(psp, e2eid, "dev2")
    assert failed.status is DevolucaoStatus.NAO_REALIZADO and failed.motivo
    # A refund NAO_REALIZADO gives its amount back to what can be refunded.
    last = await psp.put_devolucao(e2eid, "dev3", DevolucaoSolicitada(valor=Decimal("70.00")))
    assert last.status is DevolucaoStatus.EM_PROCESSAMENTO
    with pytest.raises(PspRejectedError):
        await psp.put_devolucao(e2eid, "dev4", DevolucaoSolicitada(valor=Decimal("0.01")))
    with pytest.raises(PspNotFoundError):
        await psp.get_devolucao(e2eid, "nope")
    with pytest.raises(PspNotFoundError):
        await psp.put_devolucao("E" + "1" * 31, "dev1", asked)

    # Each final state is notified with the Pix and its refunds.
    await wait_final(psp, e2eid, "dev3")
    await get_worker_of(sandbox).idle()
    finals = [b["pix"][0]["devolucoes"] for _, b in receiver.posts[1:]]
    assert len(finals) == 3
    states = [{d["id"]: d["status"] for d in refunds} for refunds in finals]
    assert states[-1] == {"dev1": "DEVOLVIDO", "dev2": "NAO_REALIZADO", "dev3": "DEVOLVIDO"}
    assert (await psp.get_pix(e2eid)).devolucoes[0].status is DevolucaoStatus.DEVOLVIDO


async def test_a_refund_whose_timer_was_lost_settles_when_read(
    sandbox: Served, connect: Connect
) -> None:
    psp = connect()
    await psp.put_cob(TXID, cob())
    (pix,) = await simulate(sandbox, psp, TXID, "exact")
    await psp.put_devolucao(pix.end_to_end_id, "r1", DevolucaoSolicitada(valor=Decimal("1.00")))
    await get_worker_of(sandbox).aclose()  # the process restarted: its timers are gone
    await asyncio.sleep(REFUND_SECONDS + 0.05)
    refund = await psp.get_devolucao(pix.end_to_end_id, "r1")
    assert refund.status is DevolucaoStatus.DEVOLVIDO
