"""Refunds through the real fake mTLS PSP (tests/psp_fake.py): the rules, the ledger's debit
and credit-back exactly once, and the states the PSP reports by polling or webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.broker import Broker
from pixweb.config import Config
from pixweb.deps import PSP_CLIENTS_KEY
from pixweb.errors import ConflictError
from pixweb.models import (
    Merchant,
    Movement,
    MovementKind,
    Payment,
    PaymentStatus,
    PixOutcome,
    PixSource,
    PspConnection,
    ReceivedPix,
    Refund,
    RefundKind,
    RefundStatus,
)
from pixweb.psp.client import PspClient
from pixweb.services import intake, ledger, received, reconcile, refunds, settlement
from pixweb.services.clock import utcnow
from pixweb.services.psp_clients import PspClients
from pixweb.services.refunds import Request
from tests.api.test_accounts import balance, moved
from tests.api.test_payments import create
from tests.api.test_psp_connection import PUBLIC, clients, connected  # noqa: F401 (fixture)
from tests.conftest import bearer, make_merchant
from tests.psp_fake import FakePsp, Pki
from tests.services.test_ledger import assert_ledger_invariants

Refused = refunds.RefundExceedsError


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
    """A static charge of R$ 100,00 (made before any PSP is connected), paid by Pix 1."""
    return await paid_charge(client, auth, merchant, broker)


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
    """The merchant connected to the fake PSP: its client."""
    await connected(client, auth, psp, pki)
    psp.requests.clear()
    found = await clients.for_merchant(merchant.id)
    assert found is not None
    return found


def e2e(n: int) -> str:
    return f"E12345678202601021000{n:011d}"


async def pix(
    merchant: Merchant, broker: Broker, n: int, cents: int, txid: str | None = None, **extra: Any
) -> ReceivedPix:
    """A Pix the merchant received, recorded through the one path."""
    record, _ = await received.record_received_pix(
        received.incoming(
            merchant_id=merchant.id,
            end_to_end_id=e2e(n),
            amount_cents=cents,
            txid=txid,
            paid_at=extra.pop("paid_at", utcnow()),
            source=PixSource.WEBHOOK,
        ),
        broker=broker,
    )
    return record


async def paid_charge(
    client: Client, auth: dict[str, str], merchant: Merchant, broker: Broker, n: int = 1
) -> Payment:
    charge = await create(client, auth, value="100.00")
    await pix(merchant, broker, n, 10000, charge["bank_payment_id"])
    payment = await Payment.get(id=charge["id"])
    assert payment.status == PaymentStatus.PAID
    return payment


def puts(psp: FakePsp) -> list[Any]:
    return [s for s in psp.requests if s.method == "PUT" and "/devolucao/" in s.path]


async def ask(
    merchant: Merchant, payment: Payment, psps: PspClients, broker: Broker, **request: Any
) -> Refund:
    refund, created = await refunds.refund_payment(
        merchant.id, payment.id, Request(**request), clients=psps, broker=broker
    )
    assert created
    return refund


# --- through the PSP -----------------------------------------------------------------------


async def test_a_full_refund_is_debited_asked_with_its_stored_id_and_settled_by_polling(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    refund = await ask(merchant, payment, clients, broker, description="Pedido cancelado")

    assert (refund.status, refund.amount_cents, refund.kind) == ("processing", 10000, "psp")
    assert refund.rtr_id is not None and await balance(merchant) == 0
    [put] = puts(psp)
    assert put.path == f"/pix/{e2e(1)}/devolucao/{refund.devolucao_id}"
    assert put.body == b'{"valor":"100.00","natureza":"ORIGINAL","descricao":"Pedido cancelado"}'

    psp.settle_devolucao(e2e(1), refund.devolucao_id, "DEVOLVIDO")
    assert await refunds.poll_in_process(merchant.id, psp_client, broker=broker) == 1
    await refund.refresh_from_db()
    await payment.refresh_from_db()
    assert refund.status == RefundStatus.REFUNDED and refund.settled_at is not None
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.REFUNDED, 10000)
    assert await refunds.poll_in_process(merchant.id, psp_client, broker=broker) == 0


async def test_partial_refunds_until_the_pix_is_all_refunded_then_the_sum_rule_refuses(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    first = await ask(merchant, payment, clients, broker, value_cents=3000)
    psp.settle_devolucao(e2e(1), first.devolucao_id, "DEVOLVIDO")
    await refunds.poll_in_process(merchant.id, psp_client, broker=broker)
    await payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.PARTIALLY_REFUNDED, 3000)

    with pytest.raises(Refused, match="70.00 left"):  # 30 + 80 > 100: nothing sent
        await ask(merchant, payment, clients, broker, value_cents=8000)
    assert len(puts(psp)) == 1 and await balance(merchant) == 7000
    rest = await ask(merchant, payment, clients, broker)  # the default: what is left
    assert rest.amount_cents == 7000 and await balance(merchant) == 0
    psp.settle_devolucao(e2e(1), rest.devolucao_id, "DEVOLVIDO")
    await refunds.poll_in_process(merchant.id, psp_client, broker=broker)
    await payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.REFUNDED, 10000)
    with pytest.raises(Refused, match="0.00 left"):
        await ask(merchant, payment, clients, broker)
    assert len(puts(psp)) == 2


async def test_a_pix_older_than_90_days_is_not_refunded(
    merchant: Merchant,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    record = await pix(merchant, broker, 11, 5000, paid_at=utcnow() - timedelta(days=91))
    with pytest.raises(refunds.RefundTooLateError, match="within 90 days"):
        await refunds.refund_received(
            merchant.id, record.end_to_end_id, Request(), clients=clients, broker=broker
        )
    assert puts(psp) == [] and await balance(merchant) == 15000
    recent = await pix(merchant, broker, 12, 5000, paid_at=utcnow() - timedelta(days=89))
    refund, _ = await refunds.refund_received(
        merchant.id, recent.end_to_end_id, Request(), clients=clients, broker=broker
    )
    assert refund.status == RefundStatus.PROCESSING


async def test_insufficient_balance_refuses_and_sends_nothing(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    await moved(client, auth, "withdrawals", value="60.00")
    with pytest.raises(ledger.InsufficientFundsError):
        await ask(merchant, payment, clients, broker, value_cents=5000)
    assert await balance(merchant) == 4000 and puts(psp) == []
    assert await Refund.all().count() == 0


async def test_a_received_pix_that_paid_no_charge_is_refunded(
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    record = await pix(merchant, broker, 7, 2500)  # no txid: paid to the key
    refund, created = await refunds.refund_received(
        merchant.id, record.end_to_end_id, Request(), clients=clients, broker=broker
    )
    assert created and refund.payment_id is None and refund.amount_cents == 2500
    assert [p.path for p in puts(psp)] == [f"/pix/{e2e(7)}/devolucao/{refund.devolucao_id}"]
    assert await balance(merchant) == 10000


async def test_twenty_concurrent_requests_with_one_key_make_one_refund(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    request = Request(value_cents=1000, idempotency_key="refund-1")
    results = await asyncio.gather(
        *(
            refunds.refund_payment(merchant.id, payment.id, request, clients=clients, broker=broker)
            for _ in range(20)
        )
    )
    assert sorted(created for _, created in results) == [False] * 19 + [True]
    assert {refund.id for refund, _ in results} == {results[0][0].id}
    assert await Refund.all().count() == 1 and await balance(merchant) == 9000
    assert len(psp.devolucoes) == 1
    with pytest.raises(ConflictError, match="different request"):
        other = Request(value_cents=2000, idempotency_key="refund-1")
        await refunds.refund_payment(merchant.id, payment.id, other, clients=clients, broker=broker)


async def test_a_psp_that_times_out_after_accepting_refunds_once_under_the_same_id(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    psp.devolucao_stalls = [3.0]  # the client gives up after 2 s, and asks again
    refund = await ask(merchant, payment, clients, broker, value_cents=4000)

    sent = puts(psp)
    assert len(sent) == 2 and {s.path for s in sent} == {
        f"/pix/{e2e(1)}/devolucao/{refund.devolucao_id}"
    }
    assert len(psp.devolucoes) == 1 and refund.rtr_id is not None
    assert await balance(merchant) == 6000 and refund.status == RefundStatus.PROCESSING


async def test_a_psp_unreachable_leaves_it_processing_and_the_poll_asks_again(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    psp.devolucao_failures = 2  # the request and the client's retry: 503, nothing taken
    refund = await ask(merchant, payment, clients, broker, value_cents=1000)
    assert (refund.status, refund.rtr_id) == (RefundStatus.PROCESSING, None)
    assert await balance(merchant) == 9000 and psp.devolucoes == {}

    assert await refunds.poll_in_process(merchant.id, psp_client, broker=broker) == 0
    assert list(psp.devolucoes) == [f"{e2e(1)}/{refund.devolucao_id}"]  # the same id
    await refund.refresh_from_db()
    assert refund.rtr_id is not None and await balance(merchant) == 9000


async def test_nao_realizado_gives_the_money_back_once_whatever_reports_it(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    refund = await ask(merchant, payment, clients, broker, value_cents=4000)
    assert await balance(merchant) == 6000
    psp.settle_devolucao(e2e(1), refund.devolucao_id, "NAO_REALIZADO", "Conta encerrada")

    reports = [
        refunds.poll_in_process(merchant.id, psp_client, broker=broker),
        refunds.confirm_reported(
            merchant.id, e2e(1), [refund.devolucao_id], psp_client, broker=broker
        ),
    ]
    await asyncio.gather(*reports * 3)
    await refund.refresh_from_db()
    assert (refund.status, refund.reason) == (RefundStatus.FAILED, "Conta encerrada")
    assert await balance(merchant) == 10000
    credits = Movement.filter(kind=MovementKind.DEVOLUCAO_ESTORNADA)
    assert await credits.count() == 1
    await payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.PAID, 0)


async def test_a_refund_the_psp_made_by_itself_is_recorded_when_seen(
    merchant: Merchant,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
) -> None:
    record = await pix(merchant, broker, 3, 5000)
    psp.devolucoes[f"{e2e(3)}/MED123"] = {
        "id": "MED123",
        "rtrId": "D12345678202601021000abcde654321",
        "valor": "20.00",
        "natureza": "MED_FRAUDE",
        "horario": {"solicitacao": "2026-01-02T10:00:00Z", "liquidacao": "2026-01-02T11:00:00Z"},
        "status": "DEVOLVIDO",
    }
    for _ in range(2):  # a repeated webhook records it once
        await refunds.confirm_reported(merchant.id, e2e(3), ["MED123"], psp_client, broker=broker)
    refund = await Refund.get(received_pix_id=record.id)
    assert (refund.status, refund.natureza, refund.amount_cents) == ("refunded", "MED_FRAUDE", 2000)
    assert await balance(merchant) == 13000


# --- without a PSP, and from a balance -----------------------------------------------------


async def test_without_a_psp_a_refund_is_recorded_as_made_in_the_bank_app(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    app: Quart,
) -> None:
    clients_ = app.extensions[PSP_CLIENTS_KEY]
    with pytest.raises(refunds.ExternalRefundError, match="external: true"):
        await ask(merchant, payment, clients_, broker, value_cents=1000)
    refund = await ask(merchant, payment, clients_, broker, value_cents=1000, external=True)
    assert (refund.status, refund.kind) == (RefundStatus.REFUNDED, RefundKind.EXTERNAL)
    assert await balance(merchant) == 9000
    await payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.PARTIALLY_REFUNDED, 1000)


async def test_a_charge_paid_from_a_balance_is_reversed_in_the_ledger(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    broker: Broker,
    app: Quart,
    config: Config,
) -> None:
    payer = await make_merchant("cliente@example.com", pix_key="cliente@example.com")
    await moved(client, bearer(payer, config), "deposits", value="150.00")
    charge = await create(client, auth, value="100.00")
    await settlement.pay_brcode(payer, charge["brcode"], broker=broker)
    payment = await Payment.get(id=charge["id"])
    clients_ = app.extensions[PSP_CLIENTS_KEY]

    with pytest.raises(refunds.ExternalRefundError):
        await ask(merchant, payment, clients_, broker, external=True)
    refund = await ask(merchant, payment, clients_, broker, value_cents=2500)
    assert (refund.status, refund.kind, refund.end_to_end_id) == ("refunded", "estorno", None)
    assert await balance(merchant) == 7500 and await balance(payer) == 7500
    await payment.refresh_from_db()
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    rest = await ask(merchant, payment, clients_, broker)
    assert rest.amount_cents == 7500 and await balance(payer) == 15000
    await payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.REFUNDED, 10000)
    with pytest.raises(Refused):
        await ask(merchant, payment, clients_, broker, value_cents=1)


# --- how the PSP's answer arrives: reconciliation's poll, the webhook ----------------------


async def test_reconciliation_polls_the_refunds_in_process(
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    refund = await ask(merchant, payment, clients, broker, value_cents=2000)
    psp.settle_devolucao(e2e(1), refund.devolucao_id, "NAO_REALIZADO", "Conta destino encerrada")
    run = await reconcile.reconcile_merchant(merchant.id, clients=clients, broker=broker)
    assert run.status == reconcile.RunStatus.OK, run.error
    await refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED and await balance(merchant) == 10000


async def test_the_psps_webhook_naming_a_refund_settles_it_from_the_psps_answer(
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
    clients: PspClients,  # noqa: F811
) -> None:
    refund = await ask(merchant, payment, clients, broker, value_cents=2000)
    psp.settle_devolucao(e2e(1), refund.devolucao_id, "DEVOLVIDO")
    connection = await PspConnection.get(merchant_id=merchant.id)
    told = {**psp.devolucoes[f"{e2e(1)}/{refund.devolucao_id}"], "status": "NAO_REALIZADO"}
    item = {"endToEndId": e2e(1), "valor": "100.00", "horario": "2026-01-02T10:00:00Z"}
    batch = intake.parse_batch({"pix": [{**item, "devolucoes": [told]}]})  # the body lies
    for _ in range(2):
        await intake.receive_batch(connection, batch, clients=clients, broker=broker)
    await refund.refresh_from_db()
    await payment.refresh_from_db()
    assert refund.status == RefundStatus.REFUNDED and await balance(merchant) == 8000
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.PARTIALLY_REFUNDED, 2000)
    reads = [s for s in psp.requests if s.method == "GET" and "/devolucao/" in s.path]
    assert len(reads) == 1  # the second delivery: the refund is final, no call


async def test_a_pix_for_a_refunded_charge_is_a_duplicate_not_a_late_one(
    merchant: Merchant,
    payment: Payment,
    broker: Broker,
    app: Quart,
) -> None:
    await ask(merchant, payment, app.extensions[PSP_CLIENTS_KEY], broker, external=True)
    again = await pix(merchant, broker, 2, 10000, payment.txid)
    assert again.outcome == PixOutcome.DUPLICATE


async def test_a_psp_refund_above_the_balance_is_not_recorded_and_nothing_fails(
    client: Client,
    auth: dict[str, str],
    merchant: Merchant,
    broker: Broker,
    psp: FakePsp,
    psp_client: PspClient,
) -> None:
    record = await pix(merchant, broker, 4, 5000)
    await moved(client, auth, "withdrawals", value="140.00")
    psp.devolucoes[f"{e2e(4)}/MED9"] = {
        "id": "MED9",
        "rtrId": "D12345678202601021000abcde999999",
        "valor": "20.00",
        "natureza": "MED_OPERACIONAL",
        "status": "DEVOLVIDO",
    }
    await refunds.confirm_reported(merchant.id, e2e(4), ["MED9"], psp_client, broker=broker)
    assert not await Refund.filter(received_pix_id=record.id).exists()
    assert await balance(merchant) == 1000
