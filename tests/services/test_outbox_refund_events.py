"""Merchant-webhook events of refunds (refund.succeeded, refund.failed, charge.refunded) and of
a charge made at the PSP: once each, whatever reports the refund and however often; none for a
refused or replayed request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.broker import Broker
from pixweb.config import Config
from pixweb.deps import PSP_CLIENTS_KEY
from pixweb.models import Merchant, Payment
from pixweb.psp.client import PspClient
from pixweb.services import refunds, settlement
from pixweb.services.psp_clients import PspClients
from pixweb.services.refunds import Request
from tests.api.test_accounts import moved
from tests.api.test_payments import create
from tests.api.test_psp_connection import PUBLIC, clients, connected  # noqa: F401 (fixture)
from tests.conftest import bearer, make_merchant
from tests.psp_fake import FakePsp, Pki
from tests.services.test_ledger import assert_ledger_invariants
from tests.services.test_outbox_events import body, endpoint, events, get_json, one
from tests.services.test_refunds import e2e, paid_charge

KEY = "devolucao-1"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


@pytest.fixture(autouse=True)
async def _money_invariant(app: Any) -> AsyncIterator[None]:
    yield
    await assert_ledger_invariants()


@pytest.fixture
async def payment(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker
) -> Payment:
    """A static charge of R$ 100,00 paid by Pix 1, before any endpoint exists."""
    return await paid_charge(client, auth, merchant, broker)


async def refund(
    app: Quart, merchant: Merchant, payment: Payment, broker: Broker, **request: Any
) -> Any:
    return await refunds.refund_payment(
        merchant.id,
        payment.id,
        Request(**request),
        clients=app.extensions[PSP_CLIENTS_KEY],
        broker=broker,
    )


async def test_external_refunds_report_each_refund_and_each_change_of_the_charge(
    app: Quart,
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
) -> None:
    await endpoint(merchant)
    for _ in range(2):  # a replay of the key: no second refund, no second event
        await refund(
            app, merchant, payment, broker, value_cents=3000, external=True, idempotency_key=KEY
        )
    await refund(app, merchant, payment, broker, value_cents=3000, external=True)
    with pytest.raises(refunds.RefundExceedsError):
        await refund(app, merchant, payment, broker, value_cents=5000, external=True)
    assert len(await events("refund.succeeded")) == 2
    # The second partial refund left the charge partially refunded: no second charge.refunded.
    assert [e.data["status"] for e in await events("charge.refunded")] == ["partially_refunded"]

    await refund(app, merchant, payment, broker, external=True)  # what is left
    succeeded = await events("refund.succeeded")
    listed = await get_json(client, f"/payments/{payment.id}/refunds", auth)
    assert [(await body(app, e))["data"] for e in succeeded] == listed["items"]
    assert all(e.data["status"] == "refunded" and e.data["external"] for e in succeeded)
    changes = await events("charge.refunded")
    assert [e.data["status"] for e in changes] == ["partially_refunded", "refunded"]
    shown = await get_json(client, f"/payments/{payment.id}", auth)
    assert (await body(app, changes[-1]))["data"] == shown
    assert await events("refund.failed") == []


async def test_a_refund_refused_for_the_balance_writes_no_event(
    app: Quart,
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
) -> None:
    await moved(client, auth, "withdrawals", value="95.00")
    await endpoint(merchant)
    with pytest.raises(refunds.ledger.InsufficientFundsError):
        await refund(app, merchant, payment, broker, value_cents=1000, external=True)
    assert await events() == []


async def test_reversing_a_charge_paid_from_a_balance_reports_it(
    app: Quart,
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    broker: Broker,
    config: Config,
) -> None:
    payer = await make_merchant("cliente@example.com", pix_key="cliente@example.com")
    await moved(client, bearer(payer, config), "deposits", value="100.00")
    charge = await create(client, auth, value="100.00")
    await settlement.pay_brcode(payer, charge["brcode"], broker=broker)
    await endpoint(merchant)
    await endpoint(payer)
    await refund(app, merchant, await Payment.get(id=charge["id"]), broker)
    assert (await one("refund.succeeded", merchant)).data["external"] is False
    assert (await one("charge.refunded", merchant)).data["status"] == "refunded"
    assert [e.type for e in await events()] == ["refund.succeeded", "charge.refunded"]


# --- through the PSP -----------------------------------------------------------------------


@pytest.fixture
async def psp_client(
    payment: Payment,
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    psp: FakePsp,
    pki: Pki,
    clients: PspClients,  # noqa: F811
) -> PspClient:
    await connected(client, auth, psp, pki)
    found = await clients.for_merchant(merchant.id)
    assert found is not None
    return found


async def test_a_charge_made_at_the_psp_is_reported_created(
    app: Quart, client: Client, auth: dict[str, str], merchant: Merchant, psp_client: PspClient
) -> None:
    await endpoint(merchant)
    charge = await create(client, auth, value="25.00")
    assert len(charge["bank_payment_id"]) == 35  # a cob's txid: made at the PSP
    event = await one("charge.created")
    assert (await body(app, event))["data"] == await get_json(
        client, f"/payments/{charge['id']}", auth
    )


@pytest.mark.parametrize(
    ("status", "type_"), [("DEVOLVIDO", "refund.succeeded"), ("NAO_REALIZADO", "refund.failed")]
)
async def test_a_psp_refund_is_reported_once_when_it_ends_whatever_reports_it(
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
    status: str,
    type_: str,
) -> None:
    await endpoint(merchant)
    asked, _ = await refunds.refund_payment(
        merchant.id, payment.id, Request(value_cents=4000), clients=clients, broker=broker
    )
    assert asked.status == "processing" and await events() == []  # in process: no event yet
    psp.settle_devolucao(e2e(1), asked.devolucao_id, status, "Conta encerrada")
    reports = [
        refunds.poll_in_process(merchant.id, psp_client, broker=broker),
        refunds.confirm_reported(
            merchant.id, e2e(1), [asked.devolucao_id], psp_client, broker=broker
        ),
    ]
    await asyncio.gather(*reports * 3)
    event = await one(type_)
    assert (event.data["id"], event.data["status"]) == (
        str(asked.id),
        type_.split(".")[1].replace("succeeded", "refunded"),
    )
    expected = ["charge.refunded", type_] if status == "DEVOLVIDO" else [type_]
    assert sorted(e.type for e in await events()) == sorted(expected)


async def test_a_refund_the_psp_reports_as_not_made_is_reported_failed(
    merchant: Merchant, payment: Payment, broker: Broker, psp: FakePsp, psp_client: PspClient
) -> None:
    await endpoint(merchant, ["refund.failed", "refund.succeeded"])
    psp.devolucoes[f"{e2e(1)}/MED9"] = {
        "id": "MED9",
        "rtrId": "D12345678202601021000abcde000009",
        "valor": "20.00",
        "natureza": "MED_FRAUDE",
        "horario": {"solicitacao": "2026-01-02T10:00:00Z", "liquidacao": "2026-01-02T11:00:00Z"},
        "status": "NAO_REALIZADO",
        "motivo": "Sem saldo",
    }
    for _ in range(2):
        await refunds.confirm_reported(merchant.id, e2e(1), ["MED9"], psp_client, broker=broker)
    event = await one("refund.failed")
    assert (event.data["status"], event.data["reason"]) == ("failed", "Sem saldo")
    assert [e.type for e in await events()] == ["refund.failed"]
