"""The sandbox PSP's test panel on the payer's page, in Chromium, against a real development
server: the charge is a cob at the sandbox, "Pagar duas vezes" pays it twice through the
standard webhook, and the page turns paid live under the strict CSP."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.harness import Recorded, Server
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
