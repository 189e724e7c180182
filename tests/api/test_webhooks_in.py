"""The standard webhook intake, POST /webhooks/pix/<token>[/pix], against the real fake mTLS
PSP (tests/psp_fake.py) the merchant is connected to: every Pix is confirmed there with
GET /pix/{e2eid} and recorded from the PSP's answer, never from the delivery's body."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from tortoise.connection import get_connection

from pixweb.config import ConfigError, load_config
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
)
from pixweb.services import reconcile
from pixweb.services.psp_clients import PspClients
from tests.api.test_accounts import balance
from tests.api.test_payments import PAST, assert_error, create
from tests.api.test_psp_connection import PUBLIC, clients, connected  # noqa: F401 (fixture)
from tests.psp_fake import FakePsp, Pki, problem
from tests.services.test_ledger import assert_ledger_invariants
from tests.test_ws import nothing_more, receive

CHAVE = "loja@example.com"  # the merchant fixture's Pix key, registered at the PSP
HORARIO = "2026-01-02T10:00:00Z"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


@pytest.fixture
async def token(
    client: Client,
    auth: dict[str, str],
    psp: FakePsp,
    pki: Pki,
    clients: PspClients,  # noqa: F811
) -> str:
    """The merchant connected to the fake PSP: its webhook token."""
    body = await connected(client, auth, psp, pki)
    psp.requests.clear()
    return str(body["webhook_url"].removeprefix(f"{PUBLIC}/webhooks/pix/"))


def e2e(n: int) -> str:
    return f"E12345678202601021000{n:011d}"


def pix(e2eid: str, valor: str, txid: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Pix as the API Pix writes it."""
    item = {"endToEndId": e2eid, "valor": valor, "horario": HORARIO, "chave": CHAVE, **extra}
    return item if txid is None else {**item, "txid": txid}


def at_psp(psp: FakePsp, e2eid: str, valor: str, txid: str | None = None, **extra: Any) -> None:
    """What the PSP knows of a Pix (what GET /pix/{e2eid} answers)."""
    psp.pix[e2eid] = pix(e2eid, valor, txid, **extra)


async def deliver(client: Client, token: str, *items: dict[str, Any], suffix: str = "") -> Any:
    return await client.post(f"/webhooks/pix/{token}{suffix}", json={"pix": list(items)})


async def delivered(client: Client, token: str, *items: dict[str, Any]) -> dict[str, Any]:
    response = await deliver(client, token, *items)
    body = await response.get_json()
    assert response.status_code == 200, body
    return dict(body)


def readbacks(psp: FakePsp) -> list[str]:
    return [s.path for s in psp.requests if s.method == "GET" and s.path.startswith("/pix/")]


async def metric(client: Client, name: str, **labels: str) -> float:
    text = (await (await client.get("/metrics")).get_data()).decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}_total\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def nothing_recorded(merchant: Merchant) -> None:
    assert await ReceivedPix.all().count() == 0
    assert await balance(merchant) == 0
    await assert_ledger_invariants()


# --- what each Pix did to its charge, from the PSP's answer --------------------------------


async def test_a_batch_records_each_outcome_from_the_psps_answer(
    client: Client, auth: dict[str, str], merchant: Merchant, psp: FakePsp, token: str
) -> None:
    charge = {name: await create(client, auth, value="10.00") for name in "ABCDEF"}
    txid = {name: payment["bank_payment_id"] for name, payment in charge.items()}
    await Payment.filter(id=charge["B"]["id"]).update(expires_at=PAST)
    at_psp(psp, e2e(1), "10.00", txid["C"])
    await delivered(client, token, pix(e2e(1), "10.00", txid["C"]))  # C is paid
    payer = {"nome": "Maria da Silva", "cpf": "12345678909"}
    at_psp(psp, e2e(2), "10.00", txid["A"], pagador=payer, horario="2026-01-02T10:05:00Z")
    at_psp(psp, e2e(3), "10.00", txid["B"])
    at_psp(psp, e2e(4), "10.00", txid["C"])
    at_psp(psp, e2e(5), "7.00", txid["D"])
    at_psp(psp, e2e(6), "10.00", "TXIDTHATNAMESNOCHARGE00001")
    at_psp(psp, e2e(7), "3.00")
    # The body says otherwise on every item: the PSP's answer is what counts.
    body = await delivered(
        client,
        token,
        pix(e2e(2), "99.00", txid["A"]),
        pix(e2e(3), "10.00", txid["A"]),
        pix(e2e(4), "10.00"),
        pix(e2e(5), "10.00", txid["D"]),
        pix(e2e(6), "10.00", txid["E"]),
        pix(e2e(7), "10.00", txid["F"]),
    )

    expected = {
        e2e(2): (PixOutcome.MATCHED, 1000, txid["A"]),
        e2e(3): (PixOutcome.LATE, 1000, txid["B"]),
        e2e(4): (PixOutcome.DUPLICATE, 1000, txid["C"]),
        e2e(5): (PixOutcome.AMOUNT_MISMATCH, 700, txid["D"]),
        e2e(6): (PixOutcome.UNKNOWN_TXID, 1000, "TXIDTHATNAMESNOCHARGE00001"),
        e2e(7): (PixOutcome.NO_TXID, 300, None),
    }
    assert body["recorded"] == 6 and body["refused"] == body["already_recorded"] == 0
    assert [(i["end_to_end_id"], i["status"], i["outcome"]) for i in body["items"]] == [
        (key, "recorded", outcome) for key, (outcome, _, _) in expected.items()
    ]
    for key, (outcome, cents, txid_at_psp) in expected.items():
        record = await ReceivedPix.get(end_to_end_id=key)
        assert (record.outcome, record.amount_cents, record.txid) == (outcome, cents, txid_at_psp)
        assert record.source == PixSource.WEBHOOK and record.merchant_id == merchant.id
    matched = await ReceivedPix.get(end_to_end_id=e2e(2))
    assert matched.paid_at == datetime(2026, 1, 2, 10, 5, tzinfo=UTC)
    assert (matched.payer_name, matched.payer_document) == ("Maria da Silva", "***.456.789-**")
    statuses = {name: (await Payment.get(id=p["id"])).status for name, p in charge.items()}
    assert statuses == {
        "A": PaymentStatus.PAID,
        "B": PaymentStatus.PENDING,  # expired: its Pix waits to be reconciled
        "C": PaymentStatus.PAID,
        "D": PaymentStatus.PENDING,
        "E": PaymentStatus.PENDING,  # the body's txid is not the PSP's
        "F": PaymentStatus.PENDING,
    }
    assert await balance(merchant) == 1000 + 1000 + 1000 + 1000 + 700 + 1000 + 300
    assert await metric(client, "pixweb_pix_recorded", source="webhook") == 7
    await assert_ledger_invariants()


@pytest.mark.parametrize("suffix", ["", "/pix"])
async def test_with_or_without_the_pix_suffix(
    client: Client, auth: dict[str, str], merchant: Merchant, psp: FakePsp, token: str, suffix: str
) -> None:
    payment = await create(client, auth, value="25.00")
    at_psp(psp, e2e(1), "25.00", payment["bank_payment_id"])
    response = await deliver(
        client, token, pix(e2e(1), "25.00", payment["bank_payment_id"]), suffix=suffix
    )
    assert response.status_code == 200
    assert (await Payment.get(id=payment["id"])).status == PaymentStatus.PAID
    assert await balance(merchant) == 2500
    await assert_ledger_invariants()


@pytest.mark.parametrize(
    "extra",
    [
        {
            "devolucoes": {
                "id": "D1",
                "rtrId": "D12345678202601021000abcde123456",
                "valor": "1.00",
                "status": "EM_PROCESSAMENTO",
            }
        },  # fmt: skip
        {
            "devolucoes": [
                {
                    "id": "D1",
                    "rtrId": "D12345678202601021000abcde123456",
                    "valor": "1.00",
                    "status": "DEVOLVIDO",
                }
            ]
        },  # fmt: skip
        {"componentesValor": {"original": {"valor": "5.00"}}, "infoPagador": "obrigado"},
        {"gnExtras": {"pagador": {"nome": "X"}}, "txIdPresente": True},  # a PSP's own fields
    ],
    ids=["devolucoes-object", "devolucoes-array", "componentesValor", "extra-fields"],
)
async def test_what_real_psps_send_is_accepted(
    client: Client, merchant: Merchant, psp: FakePsp, token: str, extra: dict[str, Any]
) -> None:
    at_psp(psp, e2e(1), "5.00", **extra)
    body = await delivered(client, token, pix(e2e(1), "5.00", **extra))
    assert body["items"][0]["outcome"] == "no_txid"
    assert await balance(merchant) == 500
    await assert_ledger_invariants()


async def test_a_matched_webhook_pushes_to_the_payers_page_once(
    client: Client, auth: dict[str, str], psp: FakePsp, token: str
) -> None:
    payment = await create(client, auth, value="10.00")
    item = pix(e2e(1), "10.00", payment["bank_payment_id"])
    psp.pix[e2e(1)] = item
    async with client.websocket(f"/ws/payments/{payment['id']}") as page:
        assert 'data-status="pending"' in await receive(page)
        await delivered(client, token, item)
        assert 'data-status="paid"' in await receive(page)
        await delivered(client, token, item)  # delivered again: nothing new to say
        await nothing_more(page)


# --- never the body alone --------------------------------------------------------------


async def test_a_pix_the_psp_does_not_know_is_refused_and_credits_nothing(
    client: Client, auth: dict[str, str], merchant: Merchant, psp: FakePsp, token: str
) -> None:
    payment = await create(client, auth, value="10.00")
    forged = pix(e2e(9), "10.00", payment["bank_payment_id"])
    at_psp(psp, e2e(1), "4.00")
    body = await delivered(client, token, forged, pix(e2e(1), "4.00"))

    assert body["refused"] == 1 and body["recorded"] == 1
    assert body["items"][0] == {
        "end_to_end_id": e2e(9),
        "status": "refused",
        "outcome": None,
        "reason": "unknown_to_psp",
        "detail": "the merchant's PSP does not know this Pix",
    }
    assert not await ReceivedPix.exists(end_to_end_id=e2e(9))
    assert (await Payment.get(id=payment["id"])).status == PaymentStatus.PENDING
    assert await balance(merchant) == 400
    assert await metric(client, "pixweb_webhook_items_refused", reason="unknown_to_psp") == 1
    assert await metric(client, "pixweb_pix_recorded", source="webhook") == 1
    await assert_ledger_invariants()


async def test_a_pix_the_psp_reports_for_another_key_is_refused(
    client: Client, merchant: Merchant, psp: FakePsp, token: str
) -> None:
    at_psp(psp, e2e(1), "10.00", chave="someone-else@example.com")
    at_psp(psp, e2e(2), "2.00", chave=CHAVE.upper())  # keys compare without case
    body = await delivered(client, token, pix(e2e(1), "10.00"), pix(e2e(2), "2.00"))
    assert [(i["status"], i["reason"]) for i in body["items"]] == [
        ("refused", "other_key"),
        ("recorded", None),
    ]
    assert await balance(merchant) == 200
    assert await metric(client, "pixweb_webhook_items_refused", reason="other_key") == 1
    await assert_ledger_invariants()


async def test_the_psp_failing_is_a_503_and_nothing_is_recorded(
    client: Client, merchant: Merchant, psp: FakePsp, token: str
) -> None:
    at_psp(psp, e2e(1), "1.00")
    at_psp(psp, e2e(2), "2.00")
    failing = (503, problem(503, "ServicoIndisponivel"))
    psp.script(f"GET /pix/{e2e(2)}", failing, failing)  # every attempt the client makes

    response = await deliver(client, token, pix(e2e(1), "1.00"), pix(e2e(2), "2.00"))
    body = await assert_error(response, 503, "psp_unavailable")
    assert body["step"] == "pix" and "nothing was recorded" in body["detail"]
    await nothing_recorded(merchant)

    # The PSP delivers again once it is back: both recorded, once.
    assert (await delivered(client, token, pix(e2e(1), "1.00"), pix(e2e(2), "2.00")))[
        "recorded"
    ] == 2
    assert await balance(merchant) == 300
    await assert_ledger_invariants()


async def test_a_pix_whose_webhook_met_a_failing_psp_is_found_by_the_next_reconciliation(
    client: Client,
    merchant: Merchant,
    psp: FakePsp,
    token: str,
    clients: PspClients,  # noqa: F811
    broker: Any,
) -> None:
    """The PSP failed the read-back (503: nothing recorded) and never delivers again: the
    next reconciliation pass lists the Pix and records it, once."""
    at_psp(psp, e2e(1), "4.00")
    failing = (503, problem(503, "ServicoIndisponivel"))
    psp.script(f"GET /pix/{e2e(1)}", failing, failing, failing)
    await assert_error(await deliver(client, token, pix(e2e(1), "4.00")), 503, "psp_unavailable")
    await nothing_recorded(merchant)

    found = await reconcile.reconcile_merchant(merchant.id, clients=clients, broker=broker)
    again = await reconcile.reconcile_merchant(merchant.id, clients=clients, broker=broker)

    assert found.status == again.status == reconcile.RunStatus.OK
    (record,) = await ReceivedPix.all()
    assert (record.end_to_end_id, record.source) == (e2e(1), PixSource.RECONCILIATION)
    assert await balance(merchant) == 400
    await assert_ledger_invariants()


async def test_an_unreachable_psp_is_a_503_and_nothing_is_recorded(
    client: Client, merchant: Merchant, psp: FakePsp, token: str
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    await PspConnection.filter(merchant_id=merchant.id).update(base_url=f"https://127.0.0.1:{port}")
    at_psp(psp, e2e(1), "1.00")
    response = await deliver(client, token, pix(e2e(1), "1.00"))
    await assert_error(response, 503, "psp_unavailable")
    await nothing_recorded(merchant)


async def test_a_repeated_delivery_changes_nothing_and_calls_no_psp(
    client: Client, auth: dict[str, str], merchant: Merchant, psp: FakePsp, token: str
) -> None:
    payment = await create(client, auth, value="10.00")
    item = pix(e2e(1), "10.00", payment["bank_payment_id"])
    psp.pix[e2e(1)] = item
    await delivered(client, token, item)
    assert readbacks(psp) == [f"/pix/{e2e(1)}"]

    again = await delivered(client, token, item, item)
    assert again["already_recorded"] == 2 and again["recorded"] == 0
    assert readbacks(psp) == [f"/pix/{e2e(1)}"]  # no second call
    assert await ReceivedPix.all().count() == 1
    assert await balance(merchant) == 1000
    await assert_ledger_invariants()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's own trace
async def test_a_delivery_reads_the_merchants_psp_connection_once(
    client: Client, auth: dict[str, str], psp: FakePsp, token: str
) -> None:
    """The intake finds the connection by its token and builds (or reuses) the PSP client
    from that row: no second read of it for the read-back (the statements SQLite ran)."""
    payment = await create(client, auth, value="10.00")
    at_psp(psp, e2e(1), "10.00", payment["bank_payment_id"])
    statements: list[str] = []
    sqlite = get_connection("default")._connection  # its aiosqlite connection
    await sqlite.set_trace_callback(statements.append)
    try:
        await delivered(client, token, pix(e2e(1), "10.00", payment["bank_payment_id"]))
    finally:
        await sqlite.set_trace_callback(None)
    reads = [s for s in statements if s.startswith("SELECT") and '"psp_connection"' in s]
    assert len(reads) == 1, reads
    assert readbacks(psp) == [f"/pix/{e2e(1)}"]


async def test_fifty_concurrent_deliveries_record_and_credit_once(
    client: Client, auth: dict[str, str], merchant: Merchant, psp: FakePsp, token: str
) -> None:
    payment = await create(client, auth, value="10.00")
    item = pix(e2e(1), "10.00", payment["bank_payment_id"])
    psp.pix[e2e(1)] = item
    responses = await asyncio.gather(*(deliver(client, token, item) for _ in range(50)))
    bodies = [await r.get_json() for r in responses]
    assert [r.status_code for r in responses] == [200] * 50, bodies
    statuses = sorted(body["items"][0]["status"] for body in bodies)
    assert statuses == ["already_recorded"] * 49 + ["recorded"]
    assert await ReceivedPix.all().count() == 1
    kinds = await Movement.filter(kind=MovementKind.PIX_RECEBIDO).count()
    assert kinds == 1 and await balance(merchant) == 1000
    assert (await Payment.get(id=payment["id"])).status == PaymentStatus.PAID
    await assert_ledger_invariants()


# --- refused deliveries ----------------------------------------------------------------


@pytest.mark.parametrize("token_text", ["x" * 43, "not a token", "a" * 200])
async def test_an_unknown_token_is_a_404(
    client: Client, psp: FakePsp, token: str, token_text: str
) -> None:
    at_psp(psp, e2e(1), "1.00")
    for suffix in ("", "/pix"):
        response = await deliver(client, token_text, pix(e2e(1), "1.00"), suffix=suffix)
        await assert_error(response, 404, "not_found")
    assert readbacks(psp) == [] and await ReceivedPix.all().count() == 0


async def test_a_disconnected_merchants_token_is_a_404(
    client: Client, auth: dict[str, str], psp: FakePsp, token: str
) -> None:
    assert (await client.delete("/merchants/me/psp", headers=auth)).status_code == 200
    at_psp(psp, e2e(1), "1.00")
    await assert_error(await deliver(client, token, pix(e2e(1), "1.00")), 404, "not_found")


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([pix(e2e(1), "1.00"), pix(e2e(2), "1.00"), pix(e2e(3), "1,00")], "pix[2].valor"),
        ([pix(e2e(1), "1.00"), {"valor": "1.00", "horario": HORARIO}], "pix[1].endToEndId"),
        ([pix(e2e(1), "1.00", horario="2026-01-02T10:00:00")], "pix[0].horario"),
        ([pix("E123", "1.00")], "pix[0].endToEndId"),
        ([pix(e2e(1), "1.00", txid="not-alphanumeric")], "pix[0].txid"),
        (
            [pix(e2e(1), "1.00", devolucoes=[{"id": "D1", "valor": "1.00"}])],
            "pix[0].devolucoes[0].rtrId",
        ),
    ],
)
async def test_a_malformed_batch_names_the_item_and_field_and_records_nothing(
    client: Client, merchant: Merchant, psp: FakePsp, token: str, items: list[Any], field: str
) -> None:
    for item in items:
        if "endToEndId" in item:
            psp.pix[item["endToEndId"]] = pix(item["endToEndId"], "1.00")
    body = await assert_error(await deliver(client, token, *items), 400, "invalid_input", field)
    assert field in body["detail"] and "nothing was recorded" in body["detail"]
    assert readbacks(psp) == []
    await nothing_recorded(merchant)


async def test_a_number_is_not_an_amount(client: Client, merchant: Merchant, token: str) -> None:
    raw = json.dumps({"pix": [{"endToEndId": e2e(1), "valor": 1.5, "horario": HORARIO}]})
    response = await client.post(
        f"/webhooks/pix/{token}", data=raw, headers={"Content-Type": "application/json"}
    )
    await assert_error(response, 400, "invalid_input", "pix[0].valor")
    await nothing_recorded(merchant)


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b"{", "invalid_body", None),
        (b"[]", "invalid_body", None),
        (b"\xff", "invalid_body", None),
        (b"[" * 100 + b"]" * 100, "invalid_body", None),
        (b"{}", "invalid_input", "pix"),
        (b'{"pix": {}}', "invalid_input", "pix"),
    ],
)
async def test_a_body_that_is_not_a_batch_is_a_400(
    client: Client, merchant: Merchant, token: str, raw: bytes, code: str, field: str | None
) -> None:
    response = await client.post(
        f"/webhooks/pix/{token}", data=raw, headers={"Content-Type": "application/json"}
    )
    await assert_error(response, 400, code, field)
    await nothing_recorded(merchant)


# --- the optional allow-list -----------------------------------------------------------


class TestAllowList:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {
            "allow_private_urls": True,
            "public_url": PUBLIC,
            "webhook_allow_ips": "203.0.113.0/24, 2001:db8::/32",
            "trusted_proxies": "10.0.0.1",
        }

    async def post(self, client: Client, token: str, peer: str, **headers: str) -> Any:
        at = {"client": (peer, 40000)}
        body = {"pix": [pix(e2e(1), "1.00")]}
        return await client.post(
            f"/webhooks/pix/{token}", json=body, headers=headers, scope_base=at
        )

    async def test_other_senders_are_refused(
        self, client: Client, merchant: Merchant, psp: FakePsp, token: str
    ) -> None:
        at_psp(psp, e2e(1), "1.00")
        for peer in ("198.51.100.7", "2001:db9::1", "127.0.0.1"):
            await assert_error(await self.post(client, token, peer), 403, "forbidden")
        # X-Forwarded-For counts only from a trusted proxy.
        spoofed = await self.post(
            client, token, "198.51.100.7", **{"X-Forwarded-For": "203.0.113.5"}
        )
        await assert_error(spoofed, 403, "forbidden")
        # Refused before the token is even looked at.
        await assert_error(await self.post(client, "x" * 43, "198.51.100.7"), 403, "forbidden")
        assert readbacks(psp) == []
        await nothing_recorded(merchant)

    async def test_listed_senders_are_served(
        self, client: Client, merchant: Merchant, psp: FakePsp, token: str
    ) -> None:
        at_psp(psp, e2e(1), "1.00")
        senders = [
            ("203.0.113.9", {}),
            ("2001:db8::5", {}),
            ("::ffff:203.0.113.10", {}),
            ("10.0.0.1", {"X-Forwarded-For": "203.0.113.5"}),  # through the trusted proxy
        ]
        for peer, headers in senders:
            response = await self.post(client, token, peer, **headers)
            assert response.status_code == 200, (peer, await response.get_json())
        assert await balance(merchant) == 100
        await assert_ledger_invariants()


def test_the_allow_list_setting_is_checked() -> None:
    config = load_config({"testing": True}, {"PIXWEB_WEBHOOK_ALLOW_IPS": "203.0.113.0/24 ::1"})
    assert [str(n) for n in config.webhook_allow_ips] == ["203.0.113.0/24", "::1/128"]
    assert load_config({"testing": True}, {}).webhook_allow_ips == ()
    with pytest.raises(ConfigError, match="PIXWEB_WEBHOOK_ALLOW_IPS: 'psp.example'"):
        load_config({"testing": True}, {"PIXWEB_WEBHOOK_ALLOW_IPS": "psp.example"})


async def test_the_intake_is_documented(app: Quart, client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    for path in ("/webhooks/pix/{token}", "/webhooks/pix/{token}/pix"):
        operation = spec["paths"][path]["post"]
        assert {"200", "400", "403", "404", "413", "503"} <= set(operation["responses"])
        assert "security" not in operation
