"""The merchant's live dashboard, in Chromium: two merchants, a payer, a server restart."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE
from tests.e2e.harness import (
    Recorded,
    Server,
    confirm_payment,
    register_in_browser,
    review_code,
    submit_form,
)
from tests.e2e.test_payment_page import assert_not_reloaded, assert_same_origin

NewTab = Callable[..., Page]
GREEN = "rgb(24, 169, 87)"  # .connection.online .dot
RED = "rgb(180, 35, 24)"  # .connection .dot (var(--red))
LIVE = 3_000  # a pushed fragment lands well within this
RECONNECT = 5_000  # live.js retries every 0.5-1 s while the server is away


def open_dashboard(new_tab: NewTab, server: Server, who: str, **options: Any) -> Page:
    """Sign `who` up in a browser of its own; wait for the live connection; mark the page."""
    tab = new_tab(who, **options)
    register_in_browser(tab, server, f"{who}@loja.example", f"Loja {who.upper()}")
    expect(tab).to_have_title(f"Painel · Loja {who.upper()} · pixweb")
    expect_connection(tab, online=True, timeout=5_000)
    tab.evaluate("window.__marker = 1")  # gone if the page ever reloads
    return tab


def expect_connection(tab: Page, *, online: bool, timeout: float = LIVE) -> None:
    box = tab.locator("#connection")
    expect(box).to_have_class(
        re.compile(r"\bonline\b" if online else r"\boffline\b"), timeout=timeout
    )
    expect(box.locator(".dot")).to_have_css("background-color", GREEN if online else RED)
    expect(box).to_have_text("Conectado" if online else "Desconectado")


def unexpected_errors(recorded: Recorded, server: Server) -> list[str]:
    """Console errors, but for the dashboards' refused reconnections while the server is down.

    Chromium logs each refused attempt, then htmx logs the socket's error event as
    "[object Event]": only that pair, in that order and in the same tab, is expected.
    """
    url = re.escape(f"ws://127.0.0.1:{server.port}/ws/dashboard")
    refused = re.compile(
        rf"^\[(?P<tab>[ab])\] WebSocket connection to '{url}' failed: "
        r"Error in connection establishment: net::ERR_CONNECTION_REFUSED$"
    )
    pending: set[str] = set()
    unexpected = []
    for text in recorded.console_errors:
        if match := refused.match(text):
            pending.add(match["tab"])
        elif (tab := text[1:2]) in pending and text == f"[{tab}] [object Event]":
            pending.discard(tab)
        else:
            unexpected.append(text)
    return unexpected


# Rectangles on screen, and every "R$" that a line break separates from its number.
LAYOUT = r"""() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    const text = el.textContent.trim();
    return {top: r.top, left: r.left, bottom: r.bottom, right: r.right, text: text};
  };
  const seen = (r) => r.bottom > r.top && r.right > r.left;
  const pill = box(document.getElementById("connection"));
  const amounts = [...document.querySelectorAll("#balance, .money")].map(box).filter(seen);
  const topbar = box(document.querySelector(".topbar"));
  const toasts = [...document.querySelectorAll("#toasts .toast")].map(box);
  const split = [];
  const walker = document.createTreeWalker(document.getElementById("live"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(/R\$\s?[-0-9]/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (m[0][2] === " " || tops.size > 1) split.push(node.data.trim());
    }
  }
  return {pill, amounts, topbar, toasts, split, height: document.documentElement.scrollHeight};
}"""


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


def assert_top_bar_uncovered(tab: Page, layout: dict[str, Any]) -> None:
    """While a toast shows, the name, "Inspetor de códigos" and "Sair" stay uncovered."""
    assert layout["toasts"], "a toast is on screen"
    covering = [t["text"] for t in layout["toasts"] if overlaps(t, layout["topbar"])]
    assert covering == [], f"toasts over the top bar: {covering}"
    tab.get_by_role("button", name="Sair").click(trial=True)  # reachable: nothing on top
    tab.get_by_role("link", name="Inspetor de códigos").click(trial=True)


def test_two_merchants_see_money_move_live(
    server: Server, new_tab: NewTab, recorded: Recorded
) -> None:
    a = open_dashboard(new_tab, server, "a")
    b = open_dashboard(new_tab, server, "b")

    # A deposits, then transfers to B: both dashboards follow without reloading.
    assert submit_form(a, "deposit", value="1.000,00") == "Depósito de R$ 1.000,00 realizado."
    expect(a.locator("#balance")).to_have_text("R$ 1.000,00", timeout=LIVE)
    sent = submit_form(a, "transfer", to_email="b@loja.example", value="150,50")
    assert sent == "Transferência de R$ 150,50 enviada."
    expect(b.locator("#balance")).to_have_text("R$ 150,50", timeout=LIVE)
    received = b.locator("#movements-list li[data-kind=transferencia_recebida]")
    expect(received).to_have_count(1)
    expect(received).to_contain_text("R$ 150,50")
    expect(b.locator("#toasts .toast").first).to_contain_text("Você recebeu R$ 150,50")
    assert_top_bar_uncovered(b, b.evaluate(LAYOUT))
    expect(a.locator("#balance")).to_have_text("R$ 849,50")
    expect(a.locator("#movements-list li[data-kind]")).to_have_count(2)
    assert b.evaluate("document.body.dataset.lastAnnounce") is None  # a transfer is no Pix

    # B charges 20,00 and gets it ready to pass on: QR, code to copy, link, WhatsApp.
    b.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    assert submit_form(b, "charge", value="20,00", description="Pedido 7") == "Cobrança criada."
    created = b.locator("#form-charge .created")
    expect(created.locator(".created-qr svg")).to_be_visible()
    brcode = created.locator("textarea").input_value()
    created.get_by_role("button", name="Copiar código").click()
    expect(created.locator(".copied")).to_have_text("Código copiado!")
    assert b.evaluate("navigator.clipboard.readText()") == brcode
    href = created.locator("[data-payment-link]").get_attribute("href")
    assert href is not None
    created.get_by_role("button", name="Copiar link").click()
    expect(created.locator(".copied")).to_have_text("Link copiado!")
    assert b.evaluate("navigator.clipboard.readText()").endswith(href)
    whatsapp = created.get_by_role("link", name="Enviar no WhatsApp").get_attribute("href")
    assert whatsapp is not None and whatsapp.startswith("https://wa.me/?text=Pague%20R%24")

    # A payer opens the charge's page: B sees someone is on it.
    row = b.locator(f"#charge-{href.rsplit('/', 1)[-1]}")
    expect(row).to_have_attribute("data-status", "pending", timeout=LIVE)
    expect(row.locator(".badge")).to_have_text("aguardando")
    viewing = row.locator("[data-viewing]")
    expect(viewing).to_have_count(0)

    payer = new_tab("payer")
    payer.goto(server.url + href)
    expect(payer.locator("#payment-status")).to_have_attribute("data-status", "pending")
    expect(viewing).to_have_text("pagador na página", timeout=LIVE)
    payer.close()  # the payer leaves: the marker goes
    expect(viewing).to_have_count(0, timeout=LIVE)
    payer = new_tab("payer")  # and comes back
    payer.goto(server.url + href)
    expect(viewing).to_have_count(1, timeout=LIVE)

    # A pays B's charge by pasting the code shown to the payer: first who and how much.
    code = payer.locator("#brcode").input_value()
    assert code == brcode
    review = review_code(a, code)
    assert "Loja B" in review and "R$ 20,00" in review and "Pedido 7" in review
    expect(a.locator("#balance")).to_have_text("R$ 849,50")  # nothing moved yet
    expect(payer.locator("#payment-status")).to_have_attribute("data-status", "pending")
    assert confirm_payment(a) == "Pagamento de R$ 20,00 para Loja B realizado."
    expect(payer.locator("#payment-status")).to_have_attribute("data-status", "paid", timeout=LIVE)
    expect(payer.locator("#payment-status")).to_contain_text("Pagamento confirmado")
    expect(row).to_have_attribute("data-status", "paid", timeout=LIVE)
    expect(row.locator(".badge")).to_have_text("paga")
    expect(viewing).to_have_count(0)
    expect(b.locator("#balance")).to_have_text("R$ 170,50")
    pix = b.locator("#movements-list li[data-kind=pix_recebido]")
    expect(pix).to_contain_text("R$ 20,00")
    expect(pix.get_by_role("link", name="Pedido 7")).to_have_attribute("href", href)
    expect(b.locator("body")).to_have_attribute(
        "data-last-announce", "Pix recebido: 20 reais", timeout=LIVE
    )
    expect(b.locator("#pix-chart figcaption strong")).to_have_text("R$ 20,00")
    heights = b.locator("#pix-chart rect.bar").evaluate_all(
        "bars => bars.map(bar => Number(bar.getAttribute('height')))"
    )
    assert max(heights) > 0, heights
    expect(a.locator("#balance")).to_have_text("R$ 829,50")
    payer.close()
    for tab in (a, b):
        assert_not_reloaded(tab)
    assert recorded.console_errors == []
    assert recorded.page_errors == []

    # The server goes away and comes back: red, then green, and the same money.
    movements = {tab: tab.locator("#movements-list li[data-kind]").count() for tab in (a, b)}
    for tab in (a, b):
        tab.evaluate("document.getElementById('balance').dataset.stale = '1'")
    server.stop()
    for tab in (a, b):
        expect_connection(tab, online=False)
    server.start()
    for tab in (a, b):
        expect_connection(tab, online=True, timeout=RECONNECT)
        balance = tab.locator("#balance")
        expect(balance).not_to_have_attribute("data-stale", "1")  # swapped by the resync
        expect(tab.locator("#movements-list li[data-kind]")).to_have_count(movements[tab])
        assert_not_reloaded(tab)
    expect(a.locator("#balance")).to_have_text("R$ 829,50")
    expect(b.locator("#balance")).to_have_text("R$ 170,50")

    assert unexpected_errors(recorded, server) == []
    assert recorded.page_errors == []
    assert_same_origin(recorded, server)


def test_notifications_are_counted_and_marked_read(
    server: Server, new_tab: NewTab, recorded: Recorded
) -> None:
    c = open_dashboard(new_tab, server, "c")
    unread = c.locator("#unread-count")
    expect(unread).to_have_text("0")
    submit_form(c, "deposit", value="50,00")
    submit_form(c, "withdraw", value="10,00")
    expect(unread).to_have_text("2", timeout=LIVE)
    items = c.locator("#notifications-list li[data-tipo]")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Saque de R$ 10,00 realizado")
    expect(c.locator("#notifications-list li.unread")).to_have_count(2)

    c.get_by_role("button", name="marcar todas como lidas").click()
    expect(unread).to_have_text("0")
    expect(c.locator("#notifications-list li.read")).to_have_count(2)

    # Read stays read on a fresh page; the sound switch is remembered too.
    c.locator("#sound-toggle").uncheck()
    assert c.evaluate("localStorage.getItem('pixweb.sound')") == "off"
    c.reload()
    expect_connection(c, online=True)
    expect(unread).to_have_text("0")
    expect(c.locator("#sound-toggle")).not_to_be_checked()
    assert recorded.console_errors == []
    assert recorded.page_errors == []
    assert_same_origin(recorded, server)


def test_on_a_phone_nothing_covers_amounts_or_the_top_bar(
    server: Server, new_tab: NewTab, recorded: Recorded, tmp_path: Path
) -> None:
    phone = open_dashboard(new_tab, server, "p", viewport=PHONE)
    # "Nova cobrança" within the first screen, under the balance.
    charge = phone.locator("#form-charge").bounding_box()
    assert charge is not None and charge["y"] < PHONE["height"], charge
    submit_form(phone, "deposit", value="1.234,56")
    submit_form(phone, "charge", value="1.000,00", description="Um pedido com nome bem comprido")
    toast = phone.locator("#toasts .toast").first
    expect(toast).to_contain_text("Depósito de R$ 1.234,56 realizado")

    phone.evaluate("window.scrollTo(0, 0)")
    layout = phone.evaluate(LAYOUT)
    phone.screenshot(path=tmp_path / "phone-top.png")
    assert_top_bar_uncovered(phone, layout)
    assert layout["split"] == [], "R$ and its number on one line, always"

    for y in range(0, layout["height"], 40):  # the badge, wherever one scrolls
        phone.evaluate(f"window.scrollTo(0, {y})")
        seen = phone.evaluate(LAYOUT)
        covered = [a["text"] for a in seen["amounts"] if overlaps(seen["pill"], a)]
        assert covered == [], f"the connection badge covers {covered} at scroll {y}"
    phone.screenshot(path=tmp_path / "phone-full.png", full_page=True)
    toast.click()  # a click dismisses a toast
    expect(toast).to_have_count(0)
    assert recorded.console_errors == [] and recorded.page_errors == []
