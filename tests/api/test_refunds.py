"""POST/GET /payments/<id>/refunds and /pix/received/<e2eid>/refunds (Bearer, Idempotency-Key)
against the fake mTLS PSP, and what the payer's page and socket see of a refund."""

from __future__ import annotations

import json
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.broker import Broker
from pixweb.models import Merchant, Payment, Refund
from pixweb.psp.client import PspClient
from pixweb.services import refunds
from tests.api.test_accounts import balance
from tests.api.test_payments import assert_error, create
from tests.api.test_psp_connection import PUBLIC, clients, connected  # noqa: F401 (fixture)
from tests.conftest import bearer, make_merchant
from tests.psp_fake import FakePsp
from tests.services.test_ledger import assert_ledger_invariants
from tests.services.test_refunds import (  # noqa: F401 (fixtures)
    _money_invariant,
    e2e,
    payment,
    pix,
    psp_client,
    puts,
)
from tests.test_ws import receive
from tests.test_ws_dashboard import dashboard
from tests.web.test_auth import login

NBSP = "\u00a0"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


async def post(client: Client, path: str, auth: dict[str, str], key: str = "", **body: Any) -> Any:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    return await client.post(path, json=body, headers=headers)


async def test_refund_a_charge_then_replay_list_and_settle(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,  # noqa: F811
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
    broker: Broker,
) -> None:
    path = f"/payments/{payment.id}/refunds"
    response = await post(client, path, auth, "k1", value="10.00", description="Troca")
    body = await response.get_json()
    assert response.status_code == 201, body
    assert body == {
        "id": body["id"],
        "end_to_end_id": e2e(1),
        "value": "10.00",
        "description": "Troca",
        "status": "processing",
        "reason": None,
        "requested_at": body["requested_at"],
        "settled_at": None,
        "payment_id": str(payment.id),
        "external": False,
    }
    again = await post(client, path, auth, "k1", value="10.00", description="Troca")
    assert again.status_code == 200 and (await again.get_json())["id"] == body["id"]
    await assert_error(await post(client, path, auth, "k1", value="11.00"), 409, "conflict")
    assert len(psp.devolucoes) == 1 and await balance(merchant) == 9000

    refund = await Refund.get(id=body["id"])
    psp.settle_devolucao(e2e(1), refund.devolucao_id, "DEVOLVIDO")
    await refunds.poll_in_process(merchant.id, psp_client, broker=broker)
    listed = await (await client.get(path, headers=auth)).get_json()
    assert [(r["id"], r["status"]) for r in listed["items"]] == [(body["id"], "refunded")]
    by_pix = await (await client.get(f"/pix/received/{e2e(1)}/refunds", headers=auth)).get_json()
    assert by_pix == listed
    charge = await (await client.get(f"/payments/{payment.id}", headers=auth)).get_json()
    assert charge["status"] == "partially_refunded"
    history = await (await client.get("/notifications", headers=auth)).get_json()
    messages = [n["mensagem"] for n in history["items"]]
    assert "Devolução de R$ 10,00 concluída" in messages
    assert "Devolução de R$ 10,00 solicitada" in messages


async def test_each_rule_is_a_422_naming_it_and_sends_nothing(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,  # noqa: F811
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
) -> None:
    path = f"/payments/{payment.id}/refunds"
    await assert_error(await post(client, path, auth, value="100.01"), 422, "refund_exceeds_pix")
    await assert_error(await post(client, path, auth, external=True), 422, "refund_external")
    await assert_error(await post(client, path, auth, value="0.00"), 400, "invalid_input")
    await assert_error(await post(client, path, auth, value="1.001"), 400, "invalid_input")
    assert puts(psp) == [] and await balance(merchant) == 10000


async def test_insufficient_balance_is_a_422_and_the_balance_stays(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,  # noqa: F811
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
) -> None:
    await client.post("/accounts/me/withdrawals", json={"value": "95.00"}, headers=auth)
    response = await post(client, f"/payments/{payment.id}/refunds", auth, value="10.00")
    await assert_error(response, 422, "insufficient_funds")
    assert await balance(merchant) == 500 and puts(psp) == []


async def test_another_merchants_charge_or_pix_is_not_found(
    client: Client,
    app: Quart,
    payment: Payment,  # noqa: F811
) -> None:
    other = await make_merchant("outra@example.com", pix_key="outra@example.com")
    headers = bearer(other, app.extensions["pixweb.config"])
    for path in (f"/payments/{payment.id}/refunds", f"/pix/received/{e2e(1)}/refunds"):
        await assert_error(await post(client, path, headers, value="1.00"), 404, "not_found")
        await assert_error(await client.get(path, headers=headers), 404, "not_found")


async def test_a_path_naming_no_pix_is_a_404_not_a_400(
    client: Client, auth: dict[str, str]
) -> None:
    weird = "%0D%C3%A3%0D"  # control characters: no received Pix is named so
    path = f"/pix/received/{weird}/refunds"
    await assert_error(await client.post(path, json={}, headers=auth), 404, "not_found")
    await assert_error(await client.get(path, headers=auth), 404, "not_found")


async def test_without_a_psp_the_merchant_records_an_external_refund(
    client: Client, auth: dict[str, str], merchant: Merchant, sign: Any
) -> None:
    charge = await create(client, auth, value="30.00")
    body, headers = sign({"bank_payment_id": charge["bank_payment_id"], "value": "30.00"})
    confirmed = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    assert confirmed.status_code == 200, await confirmed.get_json()
    path = f"/payments/{charge['id']}/refunds"
    await assert_error(await post(client, path, auth), 422, "refund_external", "external")
    response = await post(client, path, auth, external=True)
    refund = await response.get_json()
    assert response.status_code == 201, refund
    assert (refund["status"], refund["external"], refund["value"]) == ("refunded", True, "30.00")
    assert refund["settled_at"] is not None and await balance(merchant) == 0
    charge = await (await client.get(f"/payments/{charge['id']}", headers=auth)).get_json()
    assert charge["status"] == "refunded"
    # The bank repeating its confirmation: answered as before, not as an unpaid charge.
    repeated = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    assert repeated.status_code == 200, await repeated.get_json()
    assert await balance(merchant) == 0
    await assert_ledger_invariants()


async def test_the_payer_page_and_json_socket_see_the_refund_live(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,  # noqa: F811
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
    broker: Broker,
) -> None:
    url = f"/ws/payments/{payment.id}"
    async with client.websocket(url) as page, client.websocket(f"{url}?format=json") as api:
        assert 'data-status="paid"' in await receive(page)
        assert json.loads(await receive(api))["data"]["status"] == "paid"
        response = await post(client, f"/payments/{payment.id}/refunds", auth, value="10.00")
        refund = await Refund.get(id=(await response.get_json())["id"])
        psp.settle_devolucao(e2e(1), refund.devolucao_id, "DEVOLVIDO")
        await refunds.poll_in_process(merchant.id, psp_client, broker=broker)

        html = await receive(page)
        assert 'data-status="partially_refunded"' in html
        assert f"Pagamento devolvido: R${NBSP}10,00" in html and 'hx-swap-oob="true"' in html
        message = json.loads(await receive(api))
        assert message["event"] == f"payment-refunded-{payment.id}"
        assert message["data"]["status"] == "partially_refunded"

    page_html = (await (await client.get(f"/payments/pix/{payment.id}")).get_data()).decode()
    assert f"Pagamento devolvido: R${NBSP}10,00" in page_html


async def test_a_refund_of_a_pix_that_paid_no_charge(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    psp: FakePsp,
    psp_client: PspClient,  # noqa: F811
    broker: Broker,
) -> None:
    await pix(merchant, broker, 9, 4000)
    path = f"/pix/received/{e2e(9)}/refunds"
    response = await post(client, path, auth, value="15.00")
    body = await response.get_json()
    assert response.status_code == 201, body
    assert (body["payment_id"], body["end_to_end_id"]) == (None, e2e(9))
    await assert_error(await post(client, path, auth, value="25.01"), 422, "refund_exceeds_pix")


async def test_the_dashboard_shows_the_refunded_charge_live(
    client: Client, auth: dict[str, str], merchant: Merchant, sign: Any
) -> None:
    charge = await create(client, auth, value="30.00")
    body, headers = sign({"bank_payment_id": charge["bank_payment_id"], "value": "30.00"})
    assert (
        await client.post("/payments/pix/confirmation", data=body, headers=headers)
    ).status_code == 200
    await login(client)
    async with dashboard(client) as (socket, _):
        await post(client, f"/payments/{charge['id']}/refunds", auth, value="5.00", external=True)
        row = f'id="charge-{charge["id"]}" data-status="partially_refunded"'
        pushed = [await receive(socket)]  # the movement, maybe its notice, then the charge
        while row not in pushed[-1] and len(pushed) < 4:
            pushed.append(await receive(socket))
        assert "devolvida em parte" in pushed[-1] and "Devolução Pix" in pushed[0]
