"""The dashboard's "Pix a conciliar" (list, counter, attaching one to a charge) and its PSP
status line, through the test client."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.dashboard_view import ago, found_text
from pixweb.models import (
    Merchant,
    Movement,
    Payment,
    PaymentStatus,
    PixOutcome,
    PixSource,
    PspConnection,
    ReceivedPix,
)
from pixweb.services import accounts, payments, received
from pixweb.services.clock import utcnow
from tests.conftest import make_merchant
from tests.services.test_ledger import assert_ledger_invariants
from tests.web.test_auth import login, page

NBSP = "\u00a0"
KEY = re.compile(r'name="key" value="([0-9a-f]{32})"')


def e2e(n: int) -> str:
    """A BCB-format end_to_end_id (E + ISPB + yyyyMMddHHmm + 11 alphanumerics)."""
    return f"E12345678202612011200{n:011d}"


async def charge(merchant: Merchant, broker: Any, cents: int, description: str) -> Payment:
    payment, _ = await payments.create_payment(
        merchant,
        amount_cents=cents,
        description=description,
        expires_in=3600,
        broker=broker,
        public_base="http://localhost",
    )
    return payment


async def expire(payment: Payment) -> None:
    await Payment.filter(id=payment.id).update(expires_at=utcnow() - timedelta(minutes=1))


async def pix(
    merchant: Merchant, broker: Any, n: int, cents: int, txid: str | None, **extra: Any
) -> ReceivedPix:
    record, new = await received.record_received_pix(
        received.incoming(
            merchant_id=merchant.id,
            end_to_end_id=e2e(n),
            amount_cents=cents,
            txid=txid,
            paid_at=utcnow(),
            payer_name=extra.get("payer_name", "Maria da Silva"),
            payer_document=extra.get("payer_document", "12345678909"),
            source=PixSource.WEBHOOK,
        ),
        broker=broker,
    )
    assert new
    return record


async def balance(merchant: Merchant) -> int:
    return (await accounts.get_account(merchant.id)).balance_cents


@pytest.fixture
async def token(client: Client, merchant: Merchant) -> str:
    return await login(client)


@pytest.fixture
async def late(merchant: Merchant, broker: Any) -> ReceivedPix:
    """R$ 30,00 paid after its charge "Pedido 1042" expired."""
    order = await charge(merchant, broker, 3000, "Pedido 1042")
    await expire(order)
    return await pix(merchant, broker, 1, 3000, order.txid)


async def attach(
    client: Client, token: str, record: ReceivedPix, payment_id: Any, key: str | None = None
) -> tuple[int, str, Any]:
    path = f"/dashboard/received/{record.id}/attach"
    if key is None:
        form = await page(client, path)
        match = KEY.search(form)
        assert match is not None, form
        key = match.group(1)
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    response = await client.post(
        path, form={"key": key, "payment_id": str(payment_id)}, headers=headers
    )
    return response.status_code, (await response.get_data()).decode(), response.headers


async def test_the_dashboard_lists_each_pix_to_reconcile_with_why_and_a_counter(
    client: Client, token: str, merchant: Merchant, broker: Any, late: ReceivedPix
) -> None:
    paid = await charge(merchant, broker, 1000, "Pedido 7")
    await pix(merchant, broker, 2, 1000, paid.txid)  # matched: not to reconcile
    await pix(merchant, broker, 3, 1000, paid.txid)  # the same charge again: duplicate
    other = await charge(merchant, broker, 5000, "Pedido 8")
    await pix(merchant, broker, 4, 4500, other.txid, payer_document="12345678000195")
    await pix(merchant, broker, 5, 700, "naoexisteestetxid123", payer_name=None)
    await pix(merchant, broker, 6, 250, None, payer_name="João <b>")
    html = await page(client, "/dashboard")
    assert "Pix a conciliar" in html
    assert 'id="to-reconcile-count" class="counter" data-count="5">5<' in html
    items = re.findall(r'<li id="pix-[^"]+" class="to-reconcile-item"[^>]*>.*?</li>', html, re.S)
    assert len(items) == 5
    newest_first = ["no_txid", "unknown_txid", "amount_mismatch", "duplicate", "late"]
    assert [re.search(r'data-outcome="(\w+)"', item).group(1) for item in items] == newest_first  # type: ignore[union-attr]
    for item, label in zip(
        items,
        [
            "sem txid",
            "txid desconhecido",
            "valor diferente",
            "cobrança já paga",
            "após o vencimento",
        ],
        strict=True,
    ):
        assert f'class="badge outcome">{label}<' in item
        assert "Associar a uma cobrança" in item
    assert f"R${NBSP}30,00" in items[4] and "Maria da Silva" in items[4]
    assert "***.456.789-**" in items[4] and "12345678909" not in html
    assert "**.345.678/0001-**" in items[2] and f"Pedido 8 de R${NBSP}50,00" in items[2]
    assert "Pagador não informado" in items[1]
    assert "João &lt;b&gt;" in items[0] and "João <b>" not in html


async def test_the_form_offers_pending_and_expired_charges_only(
    client: Client, token: str, merchant: Merchant, broker: Any, late: ReceivedPix
) -> None:
    pending = await charge(merchant, broker, 2000, "Pedido 9")
    done = await charge(merchant, broker, 1500, "Pedido pago")
    await pix(merchant, broker, 2, 1500, done.txid)
    form = await page(client, f"/dashboard/received/{late.id}/attach")
    assert 'name="csrf_token"' in form and KEY.search(form)
    assert f'value="{pending.id}"' in form and f'value="{late.payment_id}" selected' in form
    assert "Pedido 1042" in form and "expirada" in form and "aguardando" in form
    assert f'value="{done.id}"' not in form


async def test_attaching_marks_the_charge_paid_once_and_moves_no_money(
    client: Client, token: str, merchant: Merchant, broker: Any, late: ReceivedPix
) -> None:
    order = await charge(merchant, broker, 3000, "Pedido 1043")
    before, moves = await balance(merchant), await Movement.all().count()
    status, html, headers = await attach(client, token, late, order.id)
    assert status == 200, html
    assert headers["HX-Retarget"] == "#toasts" and headers["HX-Reswap"] == "afterbegin"
    assert f"Pix de R${NBSP}30,00 associado à cobrança Pedido 1043: paga." in html
    assert (await Payment.get(id=order.id)).status == PaymentStatus.PAID
    record = await ReceivedPix.get(id=late.id)
    assert (record.outcome, record.original_outcome) == (PixOutcome.MATCHED, PixOutcome.LATE)
    assert await balance(merchant) == before and await Movement.all().count() == moves
    assert await received.count_to_reconcile(merchant.id) == 0
    dashboard = await page(client, "/dashboard")
    assert f'id="pix-{late.id}"' not in dashboard and 'data-count="0">0<' in dashboard
    # Asked again (a new form) it changes nothing; another charge is refused.
    assert (await attach(client, token, late, order.id))[0] == 200
    second = await charge(merchant, broker, 3000, "Pedido 1044")
    status, html, _ = await attach(client, token, late, second.id)
    assert status == 422 and "Este Pix já pagou outra cobrança." in html
    assert (await Payment.get(id=second.id)).status == PaymentStatus.PENDING
    await assert_ledger_invariants()
    assert await balance(merchant) == before and await Movement.all().count() == moves


async def test_a_repeated_submit_attaches_once(
    client: Client, token: str, merchant: Merchant, broker: Any, late: ReceivedPix
) -> None:
    order = await charge(merchant, broker, 3000, "Pedido 1043")
    key = "ab" * 16
    first = await attach(client, token, late, order.id, key=key)
    again = await attach(client, token, late, order.id, key=key)
    assert first[0] == again[0] == 200 and first[1] == again[1]
    other = await charge(merchant, broker, 3000, "Pedido 1044")
    status, html, _ = await attach(client, token, late, other.id, key=key)
    assert status == 422 and "Este formulário já foi usado" in html
    assert (await Payment.get(id=other.id)).status == PaymentStatus.PENDING
    await assert_ledger_invariants()


@pytest.fixture
async def other(app: Quart) -> Merchant:
    return await make_merchant("b@example.com", name="Mercado Boa Vista", pix_key="b@example.com")


async def test_another_merchants_charge_is_refused_and_nothing_changes(
    client: Client, token: str, merchant: Merchant, other: Merchant, broker: Any, late: ReceivedPix
) -> None:
    theirs = await charge(other, broker, 3000, "Deles")
    before = (await balance(merchant), await balance(other), await Movement.all().count())
    status, html, headers = await attach(client, token, late, theirs.id)
    assert status == 422 and "Cobrança não encontrada." in html and "HX-Retarget" not in headers
    assert 'id="attach-form-' in html and "Deles" not in html  # their charge is never offered
    assert (await Payment.get(id=theirs.id)).status == PaymentStatus.PENDING
    assert (await ReceivedPix.get(id=late.id)).outcome == PixOutcome.LATE
    assert (await balance(merchant), await balance(other), await Movement.all().count()) == before
    await assert_ledger_invariants()


async def test_a_paid_charge_or_a_bad_form_is_refused_in_portuguese(
    client: Client, token: str, merchant: Merchant, broker: Any, late: ReceivedPix
) -> None:
    done = await charge(merchant, broker, 1500, "Pedido pago")
    await pix(merchant, broker, 2, 1500, done.txid)
    status, html, _ = await attach(client, token, late, done.id)
    assert status == 422 and "Esta cobrança já foi paga e não pode receber este Pix." in html
    status, html, _ = await attach(client, token, late, "não-é-uuid")
    assert status == 422 and "Escolha uma cobrança." in html
    status, html, _ = await attach(client, token, late, done.id, key="forjada")
    assert status == 422 and "Formulário expirado" in html
    assert (await ReceivedPix.get(id=late.id)).outcome == PixOutcome.LATE


async def test_another_merchants_pix_is_not_found(
    client: Client, token: str, other: Merchant, broker: Any
) -> None:
    theirs = await pix(other, broker, 9, 100, None)
    assert (await client.get(f"/dashboard/received/{theirs.id}/attach")).status_code == 404
    response = await client.post(
        f"/dashboard/received/{theirs.id}/attach",
        form={"key": "ab" * 16, "payment_id": str(theirs.id)},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status_code == 404


async def test_attaching_needs_the_csrf_token_and_a_session(
    app: Quart, client: Client, token: str, merchant: Merchant, broker: Any, late: ReceivedPix
) -> None:
    order = await charge(merchant, broker, 3000, "Pedido 1043")
    path = f"/dashboard/received/{late.id}/attach"
    form = {"key": "ab" * 16, "payment_id": str(order.id)}
    for headers in ({"HX-Request": "true"}, {"HX-Request": "true", "X-CSRF-Token": "x" * 32}):
        assert (await client.post(path, form=form, headers=headers)).status_code == 403
    stranger = app.test_client()
    assert (await stranger.get(path)).status_code in (302, 401)
    assert (await Payment.get(id=order.id)).status == PaymentStatus.PENDING
    assert (await ReceivedPix.get(id=late.id)).outcome == PixOutcome.LATE


async def connection(merchant: Merchant, **fields: Any) -> PspConnection:
    now = utcnow()
    values: dict[str, Any] = {
        "base_url": "https://api.psp.example.com:8443/v2",
        "token_url": "https://api.psp.example.com:8443/oauth/token",
        "client_id": "cliente",
        "client_secret": "x",
        "certificate_pem": "x",
        "private_key_pem": "x",
        "certificate_subject": "CN=loja",
        "certificate_issuer": "CN=psp",
        "certificate_not_after": now + timedelta(days=200),
        "chave": merchant.pix_key,
        "webhook_token_hash": "0" * 64,
        "webhook_url": "x",
        "connected_at": now,
        **fields,
    }
    return await PspConnection.create(merchant_id=merchant.id, **values)


def status_line(html: str) -> str:
    match = re.search(r'<div id="psp-status".*?\n</div>', html, re.S)
    assert match is not None
    return match.group(0)


async def test_psp_status_not_connected_links_to_connect(client: Client, token: str) -> None:
    line = status_line(await page(client, "/dashboard"))
    assert 'href="/dashboard/psp">Conectar PSP</a>' in line and "não conectado" in line
    assert "Última conciliação" not in line and 'class="banner' not in line


async def test_psp_status_connected_shows_host_and_never_reconciled(
    client: Client, token: str, merchant: Merchant
) -> None:
    await connection(merchant)
    line = status_line(await page(client, "/dashboard"))
    assert "api.psp.example.com:8443" in line and "Última conciliação: nunca" in line
    assert "não conectado" not in line and 'class="banner' not in line


async def test_psp_status_shows_the_last_reconciliation_and_what_it_found(
    client: Client, token: str, merchant: Merchant
) -> None:
    summary = {"status": "ok", "recorded": {"late": 1, "no_txid": 2, "matched": 0}}
    at = utcnow() - timedelta(minutes=3, seconds=10)
    await connection(merchant, last_reconciliation_at=at, last_reconciliation=summary)
    line = status_line(await page(client, "/dashboard"))
    assert "Última conciliação: há 3 min" in line
    assert "3 Pix novos (1 após o vencimento, 2 sem txid)" in line


async def test_a_certificate_expiring_within_30_days_shows_a_banner(
    client: Client, token: str, merchant: Merchant
) -> None:
    await connection(merchant, certificate_not_after=utcnow() + timedelta(days=12, hours=2))
    line = status_line(await page(client, "/dashboard"))
    assert 'class="banner warning" role="alert">O certificado do PSP vence em 12 dias' in line


async def test_an_expired_certificate_says_so(
    client: Client, token: str, merchant: Merchant
) -> None:
    gone = datetime(2026, 1, 5, 12, tzinfo=utcnow().tzinfo)
    await connection(merchant, certificate_not_after=gone)
    assert "O certificado do PSP venceu em 05/01/2026" in status_line(
        await page(client, "/dashboard")
    )


async def test_a_sandbox_connection_says_so_without_a_certificate_banner(
    client: Client, token: str, merchant: Merchant
) -> None:
    await connection(merchant, sandbox=True, certificate_not_after=utcnow())
    line = status_line(await page(client, "/dashboard"))
    assert "PSP de testes (sandbox)" in line and "api.psp.example.com" not in line
    assert 'class="banner' not in line


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "agora há pouco"),
        (59, "agora há pouco"),
        (60, "há 1 min"),
        (3599, "há 59 min"),
        (3600, "há 1 hora"),
        (7200 * 3, "há 6 horas"),
        (86400, "há 1 dia"),
        (86400 * 9, "há 9 dias"),
        (-30, "agora há pouco"),  # a clock a little ahead
    ],
)
def test_relative_time_in_portuguese(seconds: int, said: str) -> None:
    now = utcnow()
    assert ago(now - timedelta(seconds=seconds), now) == said


def test_what_a_reconciliation_found() -> None:
    assert found_text(None) is None
    assert found_text({"status": "ok", "recorded": {}}) == "nenhum Pix novo"
    assert found_text({"status": "ok", "recorded": {"matched": 1}}) == "1 Pix novo (1 conciliado)"
    assert found_text({"status": "failed", "error": "x"}).startswith("falhou")  # type: ignore[union-attr]
