"""A refund, seen live, in Chromium against a real development server (its sandbox PSP settles a
devolução after 2 s and tells the intake through the standard webhook).

A charge paid at the sandbox is open on the payer's phone and followed by a `?format=json`
socket. The merchant refunds R$ 10,00 through the API: the payer's page says "Pagamento
devolvido: R$ 10,00" without reloading and the socket gets `payment-refunded-<id>`. Then the
merchant refunds the rest from the charge page (preview, confirmation): its timeline shows the
devolução in process, then made, without a reload, and the payer's page turns refunded. The
balance is back to zero and equals the sum of the movements.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import PHONE
from tests.e2e.harness import NBSP, Recorded, Server, login_in_browser
from tests.e2e.test_payment_page import assert_clean, assert_not_reloaded, open_payment
from tests.test_sandbox_e2e import check_ledger

EMAIL = "devolve@loja.example"
# What the page records of its timeline's refund states as they come (kept across swaps).
TIMELINE_PROBE = """
window.__refundStates = [];
new MutationObserver(() => {
  document.querySelectorAll("#charge-timeline .event[data-event=refund]").forEach((e) => {
    const state = e.className.split(" ").pop();
    if (!window.__refundStates.includes(state)) window.__refundStates.push(state);
  });
}).observe(document, {childList: true, subtree: true});
"""


def next_event(socket: ClientConnection, name: str) -> dict[str, Any]:
    """The next message called `name` (others, such as "payment-status", are skipped)."""
    while True:
        message: dict[str, Any] = json.loads(socket.recv(timeout=15))
        if message["event"] == name:
            return message


def ledger_holds(server: Server) -> None:
    """The money invariant, read from the server's database (in a thread: Playwright's sync
    API keeps this thread's event loop)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, check_ledger(server)).result()


def shoot(page: Page, directory: Path, name: str) -> None:
    page.screenshot(path=directory / f"{name}.png", full_page=True)


def test_a_refund_shows_live_on_the_payer_page_the_json_socket_and_the_charge_page(
    server: Server, new_tab: Callable[..., Page], recorded: Recorded, tmp_path: Path
) -> None:
    server.register_merchant(EMAIL, "Loja Devolve")
    auth = {"Authorization": f"Bearer {server.login(EMAIL)}"}
    payment = server.create_payment(auth["Authorization"][7:], "30.00", description="Pedido 2001")
    assert len(payment["bank_payment_id"]) == 35  # a cob at the sandbox PSP
    payer = new_tab("payer", PHONE)
    open_payment(payer, payment)
    payer.get_by_role("button", name="Pagar exatamente").click()
    status = payer.locator("#payment-status")
    expect(status).to_have_attribute("data-status", "paid", timeout=10_000)

    url = f"{server.ws_url}/ws/payments/{payment['id']}?format=json"
    with connect(url, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["data"]["status"] == "paid"
        path = f"/payments/{payment['id']}/refunds"
        code, refund = server.call(
            "POST", path, {"value": "10.00"}, {**auth, "Idempotency-Key": "parte-1"}
        )
        assert code == 201 and refund["status"] == "processing", refund

        expect(status).to_have_attribute("data-status", "partially_refunded", timeout=15_000)
        expect(status).to_contain_text(f"Pagamento devolvido: R${NBSP}10,00")
        message = next_event(socket, f"payment-refunded-{payment['id']}")
        assert message["data"]["status"] == "partially_refunded"
        assert_not_reloaded(payer)
        shoot(payer, tmp_path, "payer-partially-refunded")

        merchant = new_tab("merchant")
        merchant.add_init_script(TIMELINE_PROBE)
        login_in_browser(merchant, server, EMAIL)
        merchant.goto(f"{server.url}/dashboard/charges/{payment['id']}")
        timeline = merchant.locator("#charge-timeline")
        expect(timeline.locator(".event.refund.refunded")).to_have_count(1)
        expect(timeline).to_contain_text(f"Devolução de R${NBSP}10,00")
        form = merchant.locator("#charge-refund")
        expect(form).to_contain_text(f"Pode devolver até R${NBSP}20,00")
        form.get_by_role("button", name="Revisar devolução").click()  # empty: all that is left
        expect(form.locator("[data-review]")).to_contain_text(
            f"R${NBSP}20,00 serão devolvidos ao pagador; seu saldo passa de R${NBSP}20,00"
            f" para R${NBSP}0,00."
        )
        shoot(merchant, tmp_path, "charge-refund-review")
        form.get_by_role("button", name="Confirmar devolução").click()

        # Back on the charge's page (HX-Redirect): in process, then made, without a reload.
        expect(timeline.locator(".event.refund")).to_have_count(2)
        merchant.evaluate("window.__marker = 1")
        shoot(merchant, tmp_path, "charge-refund-processing")
        expect(timeline.locator(".event.refund.refunded")).to_have_count(2, timeout=15_000)
        assert merchant.evaluate("window.__refundStates") == ["refunded", "processing"]
        badge = merchant.locator("#charge-status .badge")
        expect(badge).to_have_attribute("data-status", "refunded")
        expect(merchant.locator("#charge-status")).to_contain_text(f"devolvido R${NBSP}30,00")
        expect(merchant.locator("#charge-refund")).to_have_count(0)
        expect(merchant.get_by_role("heading", name="Página do pagador")).to_be_visible()
        expect(merchant.get_by_role("link", name="Enviar no WhatsApp")).to_have_count(0)
        assert_not_reloaded(merchant)
        shoot(merchant, tmp_path, "charge-refunded")

        expect(status).to_have_attribute("data-status", "refunded", timeout=10_000)
        expect(status).to_contain_text(f"Pagamento devolvido: R${NBSP}30,00")
        expect(status.get_by_role("link", name="Comprovante")).to_be_visible()
        message = next_event(socket, f"payment-refunded-{payment['id']}")
        assert message["data"]["status"] == "refunded"
        assert_not_reloaded(payer)
        shoot(payer, tmp_path, "payer-refunded")

    code, account = server.call("GET", "/accounts/me", headers=auth)
    assert code == 200 and account["balance"] == "0.00"
    code, listed = server.call("GET", "/accounts/me/movements?limit=100", headers=auth)
    amounts = [Decimal(m["amount"]) for m in listed["items"]]
    assert sorted(amounts) == [Decimal("-20.00"), Decimal("-10.00"), Decimal("30.00")]
    assert sum(amounts) == Decimal(account["balance"])
    ledger_holds(server)
    assert_clean(recorded)
