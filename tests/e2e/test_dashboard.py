"""The merchant's live dashboard, in Chromium: two merchants, a payer, a server restart."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.harness import Recorded, Server, register_in_browser, submit_form
from tests.e2e.test_payment_page import assert_not_reloaded, assert_same_origin

NewTab = Callable[[str], Page]
GREEN = "rgb(24, 169, 87)"  # .connection.online .dot
RED = "rgb(180, 35, 24)"  # .connection .dot (var(--red))
LIVE = 3_000  # a pushed fragment lands well within this
RECONNECT = 30_000  # the ws extension backs off with full jitter: 1, 2, 4, 8, 16 s at most


def open_dashboard(new_tab: NewTab, server: Server, who: str) -> Page:
    """Sign `who` up in a browser of its own; wait for the live connection; mark the page."""
    tab = new_tab(who)
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
    expect(a.locator("#balance")).to_have_text("R$ 849,50")
    expect(a.locator("#movements-list li[data-kind]")).to_have_count(2)
    assert b.evaluate("document.body.dataset.lastAnnounce") is None  # a transfer is no Pix

    # B charges 20,00; a payer opens the charge's page: B sees someone is on it.
    assert submit_form(b, "charge", value="20,00", description="Pedido 7").startswith(
        "Cobrança criada"
    )
    href = b.locator("#form-charge .form-success a").get_attribute("href")
    assert href is not None
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

    # A pays B's charge by pasting the code shown to the payer.
    code = payer.locator("#brcode").input_value()
    assert submit_form(a, "pay", brcode=code) == "Pagamento de R$ 20,00 realizado."
    expect(payer.locator("#payment-status")).to_have_attribute("data-status", "paid", timeout=LIVE)
    expect(payer.locator("#payment-status")).to_contain_text("Pagamento confirmado")
    expect(row).to_have_attribute("data-status", "paid", timeout=LIVE)
    expect(row.locator(".badge")).to_have_text("paga")
    expect(viewing).to_have_count(0)
    expect(b.locator("#balance")).to_have_text("R$ 170,50")
    expect(b.locator("#movements-list li[data-kind=pix_recebido]")).to_contain_text("R$ 20,00")
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
