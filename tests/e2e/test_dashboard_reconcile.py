"""'Pix a conciliar' in Chromium against a real development server: a Pix paid after its
charge expired (through the sandbox PSP and the standard webhook) shows up live, and
attaching it to a pending charge marks that charge paid, with no second credit."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.harness import Recorded, Server, register_in_browser

LIVE = 8_000  # the sandbox's webhook worker, the intake, then the push


def test_a_late_pix_shows_up_live_and_is_attached_to_a_pending_charge(
    server: Server, new_tab: Callable[..., Page], recorded: Recorded, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("PIXWEB_SHOTS", tmp_path))  # where to keep the screenshots
    tab = new_tab("a")
    register_in_browser(tab, server, "conciliar@loja.example", "Loja Conciliar")
    expect(tab.locator("#connection")).to_have_class("connection online", timeout=5_000)
    expect(tab.locator("#to-reconcile-count")).to_have_text("0")
    token = server.login("conciliar@loja.example")

    order = server.create_payment(token, "30.00", description="Pedido 1042")
    simulated = httpx.post(
        f"{server.url}/payments/pix/{order['id']}/simulate", json={"scenario": "late"}
    )
    assert simulated.status_code == 200, simulated.text

    item = tab.locator("#to-reconcile-list .to-reconcile-item")
    expect(item).to_have_count(1, timeout=LIVE)
    expect(item).to_contain_text("após o vencimento")
    expect(item).to_contain_text("R$\u00a030,00")
    expect(tab.locator("#to-reconcile-count")).to_have_text("1")
    expect(tab.locator("#toasts .toast[data-tipo=pix_a_conciliar]")).to_have_count(1)
    expect(tab.locator("#toasts .toast")).to_have_count(1)  # one toast for one Pix
    balance = tab.locator("#balance").get_attribute("data-cents")
    assert balance == "3000"

    pending = server.create_payment(token, "30.00", description="Pedido 1043")
    row = tab.locator(f"#charge-{pending['id']}")
    expect(row).to_have_attribute("data-status", "pending", timeout=LIVE)
    item.get_by_role("button", name="Associar a uma cobrança").click()
    choice = item.locator("select[name=payment_id]")
    expect(choice).to_be_visible()
    choice.select_option(pending["id"])
    tab.screenshot(path=str(shots / "dashboard-reconcile-form.png"), full_page=True)
    item.get_by_role("button", name="Associar", exact=True).click()

    expect(row).to_have_attribute("data-status", "paid", timeout=LIVE)
    expect(tab.locator("#to-reconcile-list .to-reconcile-item")).to_have_count(0)
    expect(tab.locator("#to-reconcile-count")).to_have_text("0")
    expect(tab.locator("#toasts .toast[data-tipo=pix_associado]")).to_contain_text("Pedido 1043")
    assert tab.locator("#balance").get_attribute("data-cents") == "3000"  # no second credit
    tab.screenshot(path=str(shots / "dashboard-reconcile-attached.png"), full_page=True)
    assert not recorded.console_errors and not recorded.page_errors, recorded.summary()
