"""Screenshots of the payer's page (pending, paid), the inspector and the dashboard, for the docs.

Run: .venv/bin/python -m tests.e2e.screenshots  (writes static/screenshots/*.png)
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, ViewportSize, expect, sync_playwright

from tests.e2e.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    Server,
    login_in_browser,
    submit_form,
)

OUTPUT = ROOT / "static" / "screenshots"
PHONE = {"width": 430, "height": 900}
DESKTOP = {"width": 1000, "height": 900}
WIDE = ViewportSize(width=1280, height=900)


def payment_pages(browser: Browser, server: Server, token: str) -> list[Path]:
    payment = server.create_payment(token, "1234.56", description="Pedido 1042")
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=1, locale="pt-BR", timezone_id="America/Sao_Paulo"
    )
    try:
        page = context.new_page()
        page.goto(payment["payment_url"])
        status = page.locator("#payment-status")
        expect(status).to_have_attribute("data-status", "pending")
        expect(page.locator("#live-state")).to_have_attribute("data-state", "online")
        expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^\d\d:\d\d$"))
        pending = OUTPUT / "payment-pending.png"
        page.screenshot(path=pending, full_page=True)
        code, answer = server.confirm(payment)
        assert code == 200, answer
        expect(status).to_have_attribute("data-status", "paid", timeout=5_000)
        paid = OUTPUT / "payment-paid.png"
        page.screenshot(path=paid, full_page=True)
        return [pending, paid]
    finally:
        context.close()


def inspector(browser: Browser, server: Server, token: str) -> Path:
    brcode = server.create_payment(token, "25.90", description="Pedido 1043")["brcode"]
    context = browser.new_context(viewport=DESKTOP, device_scale_factor=1, locale="pt-BR")
    try:
        page = context.new_page()
        page.goto(f"{server.url}/tools/brcode")
        page.locator("#code").fill(brcode[:-1] + ("0" if brcode[-1] != "0" else "1"))
        expect(page.locator("[data-code=crc_mismatch]")).to_be_visible()
        path = OUTPUT / "inspector.png"
        page.screenshot(path=path, full_page=True)
        return path
    finally:
        context.close()


def dashboard(browser: Browser, server: Server, email: str) -> Path:
    """The merchant's dashboard after the pages above: a paid and pending charges, movements."""
    context = browser.new_context(
        viewport=WIDE, device_scale_factor=1, locale="pt-BR", timezone_id="America/Sao_Paulo"
    )
    try:
        page = context.new_page()
        login_in_browser(page, server, email)
        submit_form(page, "deposit", value="500,00")
        submit_form(page, "withdraw", value="120,00")
        submit_form(page, "charge", value="89,90", description="Pedido 1044")
        page.reload()  # no toasts, no form messages: the page as the merchant finds it
        expect(page.locator("#connection")).to_have_class(re.compile(r"\bonline\b"))
        expect(page.locator("#charges-list li[data-status=paid]")).to_have_count(1)
        # The whole page in the viewport, as one screenshot.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": WIDE["width"], "height": height})
        path = OUTPUT / "dashboard.png"
        page.screenshot(path=path)
        return path
    finally:
        context.close()


def main() -> list[Path]:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pixweb-shots-") as workdir:
        server = Server(Path(workdir))
        try:
            server.start()
            server.register_merchant("caixa@padaria.example")
            token = server.login("caixa@padaria.example")
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
                )
                try:
                    shots = payment_pages(browser, server, token)
                    shots.append(inspector(browser, server, token))
                    return [*shots, dashboard(browser, server, "caixa@padaria.example")]
                finally:
                    browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    for written in main():
        print(written.relative_to(ROOT))  # noqa: T201
