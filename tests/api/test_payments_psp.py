"""Charges through the merchant's PSP, against the fake mTLS PSP (tests/psp_fake.py):
`PUT /cob/{txid}` on creation, `PATCH` on cancel, failures leave nothing created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb.models import Merchant, Payment, PaymentStatus, ReceivedPix
from pixweb.services import psp_charges
from pixweb.services.psp_clients import PspClients
from tests.api.test_payments import assert_error
from tests.api.test_psp_connection import PUBLIC, clients, connected  # noqa: F401 (fixture)
from tests.psp_fake import FakePsp, Pki, problem

CHAVE = "loja@example.com"  # the merchant fixture's Pix key


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


@pytest.fixture
async def on_psp(
    client: Client,
    auth: dict[str, str],
    psp: FakePsp,
    pki: Pki,
    clients: PspClients,  # noqa: F811
) -> FakePsp:
    """The merchant connected to the fake PSP; what it saw so far forgotten."""
    await connected(client, auth, psp, pki)
    psp.requests.clear()
    return psp


def puts(psp: FakePsp) -> list[Any]:
    return [s for s in psp.requests if s.method == "PUT" and s.path.startswith("/cob/")]


async def post(client: Client, auth: dict[str, str], key: str | None = None, **body: Any) -> Any:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    payload = {"value": "100.00", "description": "Pedido 1042", "expires_in": 900, **body}
    return await client.post("/payments/pix", json=payload, headers=headers)


async def test_a_charge_is_created_at_the_psp_with_its_dynamic_code(
    client: Client, auth: dict[str, str], on_psp: FakePsp
) -> None:
    response = await post(client, auth)
    body = await response.get_json()
    assert response.status_code == 201, body

    (put,) = puts(on_psp)
    txid = put.path.removeprefix("/cob/")
    assert len(txid) == 35 and txid.isalnum()
    assert json.loads(put.body) == {
        "calendario": {"expiracao": 900},
        "valor": {"original": "100.00"},
        "chave": CHAVE,
        "solicitacaoPagador": "Pedido 1042",
    }
    assert body["bank_payment_id"] == txid
    assert body["brcode"] == on_psp.cobs[txid]["pixCopiaECola"]
    qr = await client.get(f"/payments/pix/qr_code/{body['id']}.svg")
    assert qr.status_code == 200


async def test_a_retry_with_the_same_key_makes_one_cob(
    client: Client, auth: dict[str, str], on_psp: FakePsp
) -> None:
    # The first answer is lost after the PSP made the charge: the PSP had it, pixweb not.
    first = await post(client, auth, key="pedido-1042")
    assert first.status_code == 201
    body = await first.get_json()
    await Payment.filter(id=body["id"]).delete()

    again = await post(client, auth, key="pedido-1042")
    assert again.status_code == 201, await again.get_json()
    assert (await again.get_json())["bank_payment_id"] == body["bank_payment_id"]
    # Two PUTs with the same txid ("txid em uso" the second time), one cob, read back.
    assert {s.path for s in puts(on_psp)} == {f"/cob/{body['bank_payment_id']}"}
    assert len(on_psp.cobs) == 1
    assert on_psp.seen(f"GET /cob/{body['bank_payment_id']}")

    # A plain replay answers the stored charge without calling the PSP.
    on_psp.requests.clear()
    replay = await post(client, auth, key="pedido-1042")
    assert replay.status_code == 200 and puts(on_psp) == []


async def test_the_same_key_with_another_request_is_a_conflict(
    client: Client, auth: dict[str, str], on_psp: FakePsp
) -> None:
    first = await post(client, auth, key="k")
    await Payment.filter(id=(await first.get_json())["id"]).delete()
    other = await post(client, auth, key="k", value="7.00")
    await assert_error(other, 409, "conflict")
    assert await Payment.all().count() == 0


async def test_the_psp_failing_is_a_503_and_no_charge_is_listed(
    client: Client, auth: dict[str, str], merchant: Merchant, on_psp: FakePsp
) -> None:
    txid = psp_charges.cob_txid(merchant.id, "down")
    down = (503, problem(503, "ServicoIndisponivel"))
    on_psp.script(f"PUT /cob/{txid}", down, down, down)  # every attempt the client makes

    failed = await post(client, auth, key="down")
    body = await assert_error(failed, 503, "psp_unavailable")
    assert body["step"] == "cob" and body["psp_status"] == 503
    listed = await (await client.get("/payments", headers=auth)).get_json()
    assert listed["items"] == [] and await Payment.all().count() == 0

    # The PSP back, the retry with the same key creates the charge, once.
    again = await post(client, auth, key="down")
    assert again.status_code == 201 and list(on_psp.cobs) == [txid]


async def test_the_psp_refusing_is_a_422_naming_its_violations(
    client: Client, auth: dict[str, str], merchant: Merchant, on_psp: FakePsp
) -> None:
    violacao = {
        "razao": "O campo cob.chave não corresponde a uma chave do usuário recebedor.",
        "propriedade": "cob.chave",
    }
    refusal = problem(400, "CobOperacaoInvalida", detail="Cobrança inválida.", violacoes=[violacao])
    on_psp.script(f"PUT /cob/{psp_charges.cob_txid(merchant.id, 'refused')}", (400, refusal))

    refused = await post(client, auth, key="refused")
    body = await assert_error(refused, 422, "psp_rejected", field="cob.chave")
    assert "corresponde a uma chave" in body["fields"]["cob.chave"]
    assert await Payment.all().count() == 0


async def test_cancel_removes_the_cob_at_the_psp_first(
    client: Client, auth: dict[str, str], on_psp: FakePsp
) -> None:
    created = await (await post(client, auth)).get_json()
    txid = created["bank_payment_id"]

    on_psp.script(f"PATCH /cob/{txid}", (503, problem(503, "ServicoIndisponivel")))
    failed = await client.post(f"/payments/{created['id']}/cancel", headers=auth)
    await assert_error(failed, 503, "psp_unavailable")
    assert (await Payment.get(id=created["id"])).status == PaymentStatus.PENDING

    cancelled = await client.post(f"/payments/{created['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200, await cancelled.get_json()
    (patch, _) = on_psp.seen(f"PATCH /cob/{txid}")
    assert json.loads(patch.body) == {"status": "REMOVIDA_PELO_USUARIO_RECEBEDOR"}
    assert on_psp.cobs[txid]["status"] == "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    assert (await Payment.get(id=created["id"])).status == PaymentStatus.CANCELLED


async def test_without_a_psp_charges_stay_static(client: Client, auth: dict[str, str]) -> None:
    body = await (await post(client, auth)).get_json()
    assert len(body["bank_payment_id"]) == 25
    assert body["brcode"].startswith("000201") and "br.gov.bcb.pix" in body["brcode"]


async def test_the_banks_confirmation_pays_a_psp_charge(
    client: Client, auth: dict[str, str], on_psp: FakePsp, sign: Any
) -> None:
    """The seed's confirmation names a PSP charge by its 35-character txid, with or
    without an end_to_end_id, and settles it once."""
    created = await (await post(client, auth)).get_json()
    body, headers = sign({"bank_payment_id": created["bank_payment_id"], "value": "100.00"})
    first = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    answer = await first.get_json()
    assert first.status_code == 200, answer
    assert answer["status"] == "paid" and answer["confirmation"] == "settled"
    again = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    assert (await again.get_json())["confirmation"] == "replayed"
    (record,) = await ReceivedPix.all()
    assert record.outcome == "matched" and len(record.end_to_end_id) <= 35
