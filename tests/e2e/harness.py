"""A real pixweb server in a subprocess, and stdlib HTTP helpers to drive its API.

Shared by the e2e fixtures (conftest.py) and the screenshot script (screenshots.py).
The server process is started and stopped by tests/server.py, as the benchmarks' are.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests import server as process
from tests.server import ROOT as ROOT  # re-exported: the screenshots and multi-process tests
from tests.server import STARTUP_TIMEOUT as STARTUP_TIMEOUT
from tests.server import free_port as free_port
from tests.support import signed

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "uma senha longa e2e"
NBSP = "\u00a0"


class Server(process.Server):
    """`pixweb serve` (development: the sandbox exists) on one SQLite file that survives restarts.

    The process itself is tests/server.py's; this adds the API calls the browser tests make.
    """

    # -- HTTP API -------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Send JSON (or raw bytes) and return (status, decoded JSON body)."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def register_merchant(self, email: str, name: str = "Padaria São João") -> dict[str, Any]:
        merchant = {
            "name": name,
            "email": email,
            "password": PASSWORD,
            "city": "São Paulo",
            "pix_key": email,
        }
        status, answer = self.call("POST", "/auth/register", merchant)
        assert status == 201, answer
        return dict(answer)

    def login(self, email: str) -> str:
        status, answer = self.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200, answer
        return str(answer["access_token"])

    def create_payment(self, token: str, value: str = "1234.56", **fields: Any) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {token}"}
        status, answer = self.call("POST", "/payments/pix", {"value": value, **fields}, auth)
        assert status == 201, answer
        return dict(answer)

    def confirm(self, payment: dict[str, Any]) -> tuple[int, Any]:
        """The bank's signed confirmation of `payment` (the API's JSON of it)."""
        confirmation = {"bank_payment_id": payment["bank_payment_id"], "value": payment["value"]}
        body, headers = signed(confirmation, self.webhook_secret)
        return self.call("POST", "/payments/pix/confirmation", body, headers)

    # -- direct database edits ------------------------------------------------------------

    def update_payment(self, payment_id: str, **columns: Any) -> None:
        """UPDATE one payment row; datetimes are written in the format Tortoise stored."""
        with sqlite3.connect(self.db_path, timeout=5) as db:
            (sample,) = db.execute("SELECT created_at FROM payment WHERE id = ?", (payment_id,))
            values = [
                _like(sample[0], v) if isinstance(v, datetime) else v for v in columns.values()
            ]
            assignments = ", ".join(f"{name} = ?" for name in columns)
            cursor = db.execute(
                f"UPDATE payment SET {assignments} WHERE id = ?", (*values, payment_id)
            )
            assert cursor.rowcount == 1, f"no payment {payment_id}"
        db.close()


# -- the merchant's pages, driven in a browser ------------------------------------------


def register_in_browser(page: Page, server: Server, email: str, name: str) -> None:
    """Sign up through the /register form and land on /dashboard (logged in)."""
    page.goto(server.url + "/register")
    fields = {"name": name, "email": email, "password": PASSWORD, "city": "Curitiba"}
    for field_name, value in {**fields, "pix_key": email}.items():
        page.locator(f"input[name={field_name}]").fill(value)
    page.get_by_role("button", name="Criar conta").click()
    page.wait_for_url(server.url + "/dashboard")


def login_in_browser(page: Page, server: Server, email: str) -> None:
    """Log in through the /login form and land on /dashboard."""
    page.goto(server.url + "/login")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(server.url + "/dashboard")


def submit_form(page: Page, name: str, **fields: str) -> str:
    """Fill the dashboard's #form-<name>, submit it, and return the message of its answer.

    Values are typed as people type them ("1.000,00"). The answer replaces the form, so
    the old one is marked first and only a message in an unmarked form counts. The message
    is returned as read: the no-break space that keeps "R$" with its number reads as a
    space (tests/e2e/test_dashboard.py checks that it is there).
    """
    form = page.locator(f"#form-{name}")
    for field_name, value in fields.items():
        form.locator(f"[name={field_name}]").fill(value)
    return _answer(page, name, form.locator("button[type=submit]").first)


def review_code(page: Page, code: str) -> str:
    """Paste `code` in "Pagar código Pix" and ask to review it: return what the review shows."""
    form = page.locator("#form-pay")
    form.locator("[name=brcode]").fill(code)
    form.evaluate("form => { form.dataset.sent = '1'; }")
    form.get_by_role("button", name="Revisar pagamento").click()
    review = page.locator("#form-pay:not([data-sent]) [data-review]")
    return review.inner_text().replace(NBSP, " ")


def confirm_payment(page: Page) -> str:
    """Confirm the payment under review; return the message of the answer."""
    confirm = page.locator("#form-pay").get_by_role("button", name="Confirmar pagamento")
    return _answer(page, "pay", confirm)


def _answer(page: Page, name: str, button: Locator) -> str:
    page.locator(f"#form-{name}").evaluate("form => { form.dataset.sent = '1'; }")
    button.click()
    answer = page.locator(f"#form-{name}:not([data-sent])")
    message = answer.locator(".form-success, .form-error, .field-error").first.inner_text()
    return message.replace(NBSP, " ")


@dataclass
class Recorded:
    """What a page did: console errors, uncaught errors, and every URL it asked for."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"console error: {text}" for text in self.console_errors]
        lines += [f"page error: {text}" for text in self.page_errors]
        lines += [f"request: {url}" for url in self.urls]
        return "\n".join(lines) or "(nothing recorded)"


def _like(sample: str, moment: datetime) -> str:
    """Format `moment` as `sample` is formatted (separator, time zone)."""
    parsed = datetime.fromisoformat(sample)
    moment = moment.astimezone(UTC)
    if parsed.tzinfo is None:
        moment = moment.replace(tzinfo=None)
    return moment.isoformat(sep="T" if "T" in sample else " ", timespec="microseconds")
