"""The sandbox PSP's test panel on the payer's page, in Chromium, against a real development
server: the charge is a cob at the sandbox, "Pagar duas vezes" pays it twice through the
standard webhook, and the page turns paid live under the strict CSP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.harness import Recorded, Server, register_in_browser
from tests.e2e.test_payment_page import assert_clean, assert_not_reloaded, open_payment

LABELS = (
    "Pagar exatamente",
    "Pagar duas vezes",
    "Pagar outro valor",
    "Pagar após o vencimento",
    "Pagar sem webhook",
    "Webhook duas vezes",
)


def test_pay_twice_from_the_panel(
    server: Server, token: str, page: Page, recorded: Recorded
) -> None:
    payment = server.create_payment(token, "8.50")
    assert len(payment["bank_payment_id"]) == 35  # made at the sandbox PSP
    open_payment(page, payment)
    for label in LABELS:
        expect(page.get_by_role("button", name=label)).to_be_enabled()

    page.get_by_role("button", name="Pagar duas vezes").click()

    region = page.locator("#payment-status")
    expect(region).to_have_attribute("data-status", "paid", timeout=5_000)
    expect(region).to_contain_text("Pagamento confirmado")
    expect(page.get_by_role("button", name="Pagar duas vezes")).to_have_count(0)
    assert_not_reloaded(page)
    assert_clean(recorded)

    auth = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{server.url}/pix/received", headers=auth).json()["items"]
    mine = sorted(p["outcome"] for p in listed if p["payment_id"] == payment["id"])
    assert mine == ["duplicate", "matched"]  # one paid the charge, one to reconcile


def test_paying_twice_shows_one_pix_to_reconcile_on_the_dashboard_live(
    server: Server, new_tab: Callable[..., Page], recorded: Recorded
) -> None:
    """The payer's page turns paid and the merchant's open dashboard, without a reload, lists
    the second Pix once under "Pix a conciliar", its money already in the balance."""
    dashboard = new_tab("merchant")
    register_in_browser(dashboard, server, "duas-vezes@loja.example", "Loja Duas Vezes")
    expect(dashboard.locator("#connection")).to_have_class("connection online", timeout=5_000)
    dashboard.evaluate("window.__marker = 1")  # gone if the page reloads
    payment = server.create_payment(server.login("duas-vezes@loja.example"), "8.50")
    payer = new_tab("payer")
    open_payment(payer, payment)

    payer.get_by_role("button", name="Pagar duas vezes").click()

    expect(payer.locator("#payment-status")).to_have_attribute("data-status", "paid")
    item = dashboard.locator("#to-reconcile-list .to-reconcile-item")
    expect(item).to_have_count(1, timeout=8_000)
    expect(item).to_contain_text("cobrança já paga")
    expect(dashboard.locator("#to-reconcile-count")).to_have_text("1")
    expect(dashboard.locator("#balance")).to_have_attribute("data-cents", "1700")
    assert_not_reloaded(dashboard)
    assert_clean(recorded)
