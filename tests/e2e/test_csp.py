"""Every page under its Content-Security-Policy, in Chromium: no violation, and htmx (forms,
swaps, the ws extension's pushes) still works."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, Response, expect

from tests.e2e.conftest import watch
from tests.e2e.harness import Recorded, Server, register_in_browser, submit_form

# Counts violations as the page sees them, from before its first script runs.
VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${where})`);
});
"""


class Violations:
    """CSP violations from the page's events and from Chromium's console."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(VIOLATIONS)
        page.on("console", self._console)

    def _console(self, message: object) -> None:
        text = str(getattr(message, "text", ""))
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.console.append(text)

    def all(self) -> list[str]:
        """Everything seen so far (events of the page now loaded, console of every page)."""
        events: list[str] = self.page.evaluate("window.__csp || []")
        return events + self.console


@pytest.fixture
def tab(context: BrowserContext, recorded: Recorded) -> Page:
    return watch(context.new_page(), recorded)


@pytest.fixture
def violations(tab: Page) -> Violations:
    return Violations(tab)


def enforced(response: Response | None) -> str:
    """The policy a document was served with (it must be the strict one)."""
    assert response is not None and response.ok, response
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    return policy


def test_the_violation_probe_sees_a_violation(server: Server, tab: Page) -> None:
    """The control: an inline script and an inline style are refused and reported."""
    seen = Violations(tab)
    enforced(tab.goto(server.url + "/login"))

    tab.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__ran = true";
          document.body.append(script);
          const style = document.createElement("style");
          style.textContent = "body { color: red }";
          document.head.append(style);
        }"""
    )

    tab.wait_for_function("() => window.__csp.length >= 2")
    assert tab.evaluate("window.__ran") is None
    assert any("script-src" in v for v in seen.all())
    assert any("style-src" in v for v in seen.all())


def test_login_register_and_error_pages(
    server: Server, tab: Page, violations: Violations, recorded: Recorded
) -> None:
    enforced(tab.goto(server.url + "/login"))
    expect(tab.locator("h1")).to_have_text("Entrar")
    enforced(tab.goto(server.url + "/register"))
    expect(tab.locator("h1")).to_have_text("Cadastre sua loja")
    missing = tab.goto(server.url + "/payments/pix/00000000-0000-4000-8000-000000000000")
    assert missing is not None and missing.status == 404
    assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
    expect(tab.locator("h1")).to_have_text("Página não encontrada")
    assert violations.all() == []
    assert recorded.page_errors == []


def test_dashboard_forms_and_socket(
    server: Server, tab: Page, violations: Violations, recorded: Recorded
) -> None:
    """Sign-up (a form post and a redirect), htmx form swaps and the dashboard's socket."""
    register_in_browser(tab, server, "csp@loja.example", "Loja CSP")
    expect(tab.locator("#connection")).to_have_class(re.compile(r"\bonline\b"))
    expect(tab.locator("h1")).to_have_text("Loja CSP")

    answer = submit_form(tab, "deposit", value="100,00")
    assert " ".join(answer.split()) == "Depósito de R$ 100,00 realizado."  # NBSP after R$
    expect(tab.locator("#balance")).to_have_text("R$ 100,00")  # pushed by the socket
    assert submit_form(tab, "charge", value="25,90", description="Pedido 9") == "Cobrança criada."
    expect(tab.locator("#form-charge .created .qr svg")).to_have_count(1)
    assert violations.all() == []
    assert recorded.page_errors == []


def test_payment_page_pays_live_by_the_bank(
    server: Server, token: str, tab: Page, violations: Violations, recorded: Recorded
) -> None:
    payment = server.create_payment(token, "12.34")
    enforced(tab.goto(payment["payment_url"]))
    expect(tab.locator("#live-state")).to_have_attribute("data-state", "online")

    status, answer = server.confirm(payment)
    assert status == 200, answer

    region = tab.locator("#payment-status")
    expect(region).to_have_attribute("data-status", "paid", timeout=2_000)
    expect(region).to_contain_text("Pagamento confirmado")
    assert violations.all() == []
    assert recorded.page_errors == []


def test_payment_page_sandbox_swap(
    server: Server, token: str, tab: Page, violations: Violations, recorded: Recorded
) -> None:
    payment = server.create_payment(token, "5.00")
    enforced(tab.goto(payment["payment_url"]))
    button = tab.get_by_role("button", name="Simular pagamento")
    expect(button).to_be_enabled()  # the socket is open

    button.click()

    expect(tab.locator("#payment-status")).to_have_attribute("data-status", "paid")
    assert violations.all() == []
    assert recorded.page_errors == []


def test_inspector_swaps_its_report(
    server: Server, token: str, tab: Page, violations: Violations, recorded: Recorded
) -> None:
    brcode = server.create_payment(token)["brcode"]
    enforced(tab.goto(server.url + "/tools/brcode"))

    tab.locator("#code").fill(brcode)

    expect(tab.locator("[data-verdict]")).to_have_attribute("data-verdict", "valid")
    assert violations.all() == []
    assert recorded.page_errors == []


def test_swagger_ui_runs_under_its_own_policy(
    server: Server, tab: Page, violations: Violations, recorded: Recorded
) -> None:
    """/docs starts with quart-schema's inline script: allowed by its hash, nothing more."""
    response = tab.goto(server.url + "/docs")
    assert response is not None and response.ok
    policy = response.headers["content-security-policy"]
    assert "'sha256-" in policy and "unsafe" not in policy

    expect(tab.locator(".opblock").first).to_be_visible()
    expect(tab.locator(".opblock-summary-path", has_text="/payments/pix").first).to_be_visible()
    assert violations.all() == []
    assert recorded.page_errors == []
