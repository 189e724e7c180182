"""The payer's page and the BR Code inspector, in Chromium, against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.harness import Recorded, Server
from tests.support import need

COUNTDOWN = re.compile(r"^(\d+:)?\d{2}:\d{2}$")


def open_payment(page: Page, payment: dict[str, Any]) -> None:
    """Load the payer's page and wait until its socket delivered the first state."""
    response = page.goto(payment["payment_url"])
    assert response is not None
    assert response.status == 200
    page.wait_for_function("() => window.__ws.messages >= 1", timeout=5_000)
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def assert_same_origin(recorded: Recorded, server: Server) -> None:
    ws_origin = server.url.replace("http://", "ws://", 1)
    assert recorded.urls
    outside = [
        url for url in recorded.urls if not url.startswith((server.url + "/", ws_origin + "/"))
    ]
    assert outside == [], f"requests outside {server.url}: {outside}"


def assert_clean(recorded: Recorded) -> None:
    assert recorded.console_errors == []
    assert recorded.page_errors == []


def test_payment_page_shows_the_charge(
    server: Server, token: str, page: Page, recorded: Recorded
) -> None:
    payment = server.create_payment(token, "1234.56")
    open_payment(page, payment)

    expect(page.get_by_test_id("amount")).to_have_text("R$ 1.234,56")
    expect(page.locator(".merchant")).to_have_text("Padaria São João")
    expect(page.locator("#payment-status")).to_have_attribute("data-status", "pending")
    qr_image = page.locator("#payment-status .qr img")
    expect(qr_image).to_have_count(1)
    expect(qr_image).to_have_attribute("src", f"/payments/pix/qr_code/{payment['id']}.svg")
    expect(page.locator("#brcode")).to_have_value(payment["brcode"])
    expect(page.locator("[data-countdown]")).to_have_text(COUNTDOWN)
    assert_same_origin(recorded, server)
    assert_clean(recorded)


def test_page_qr_is_whole_and_scans_to_the_code(
    server: Server, token: str, page: Page, tmp_path: Path
) -> None:
    """What a phone sees: the QR as drawn on the page decodes to the API's brcode."""
    payment = server.create_payment(token)
    page.set_viewport_size({"width": 430, "height": 900})  # a phone
    open_payment(page, payment)

    svg = page.locator("#payment-status .qr img")
    expect(svg).to_have_js_property("complete", True)
    natural, box = svg.evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]")
    assert natural > 0 and box >= 200, f"QR image {natural}px natural, {box}px on the page"

    if shutil.which("zbarimg") is None:
        need("zbarimg", "PIXWEB_REQUIRE_BROWSER", "zbarimg (Debian zbar-tools) is not installed")
    image = tmp_path / "qr.png"
    svg.screenshot(path=image)
    read = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sbinary", str(image)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert read.returncode == 0, f"zbarimg read no QR code in the page's image ({read.returncode})"
    assert read.stdout.rstrip(b"\n").decode() == payment["brcode"]


def test_bank_confirmation_flips_the_page_live(
    server: Server, token: str, page: Page, recorded: Recorded
) -> None:
    payment = server.create_payment(token)
    open_payment(page, payment)

    status, answer = server.confirm(payment)
    assert status == 200, answer

    region = page.locator("#payment-status")
    expect(region).to_have_attribute("data-status", "paid", timeout=2_000)
    expect(region).to_contain_text("Pagamento confirmado")
    expect(page.locator(".qr")).to_have_count(0)
    expect(page.locator("#brcode")).to_have_count(0)
    assert_not_reloaded(page)
    assert_clean(recorded)


def test_sandbox_button_pays_live(
    server: Server, token: str, page: Page, recorded: Recorded
) -> None:
    payment = server.create_payment(token)
    open_payment(page, payment)

    page.get_by_role("button", name="Simular pagamento").click()

    region = page.locator("#payment-status")
    expect(region).to_have_attribute("data-status", "paid", timeout=2_000)
    expect(region).to_contain_text("Pagamento confirmado")
    expect(page.locator(".qr")).to_have_count(0)
    assert_not_reloaded(page)
    assert_clean(recorded)


def expect_live(page: Page, state: str, label: str, timeout: float = 5_000) -> None:
    box = page.locator("#live-state")
    expect(box).to_have_attribute("data-state", state, timeout=timeout)
    expect(box).to_have_text(label)


def test_page_shows_its_connection_and_reconnects_fast(
    server: Server, token: str, page: Page
) -> None:
    """Offline: the page says so and the sandbox button waits; back: live again within 3 s."""
    payment = server.create_payment(token)
    open_payment(page, payment)
    button = page.get_by_role("button", name="Simular pagamento")
    expect_live(page, "online", "Conectado")
    expect(button).to_be_enabled()

    page.evaluate(
        """() => {
          window.__tries = 0;
          document.addEventListener("htmx:wsConnecting", () => { window.__tries += 1; });
        }"""
    )

    server.stop()  # paid while the server is down: only a fresh socket can tell the page
    expect_live(page, "offline", "Sem conexão. Reconectando…")
    expect(button).to_be_disabled()
    server.update_payment(payment["id"], status="paid", paid_at=datetime.now(UTC))
    region = page.locator("#payment-status")
    expect(region).to_have_attribute("data-status", "pending")
    before = page.evaluate("window.__tries")
    page.wait_for_timeout(6_000)  # an exponential backoff would be waiting 8 s or more by now
    tries = page.evaluate("window.__tries") - before
    assert tries >= 5, f"{tries} reconnection attempts in 6 s: the backoff grows too long"

    server.start()
    back = time.monotonic()
    expect(region).to_have_attribute("data-status", "paid", timeout=3_000)
    waited = time.monotonic() - back
    expect_live(page, "online", "Conectado")
    expect(region).to_contain_text("Pagamento confirmado")
    assert waited < 3.0, f"the page took {waited:.1f} s to reconnect"
    assert page.evaluate("window.__ws.opens") >= 2
    assert_not_reloaded(page)


def test_sandbox_says_when_the_server_did_not_answer(
    server: Server, token: str, page: Page, recorded: Recorded
) -> None:
    """A request lost on the way is not silent: the form says what happened."""
    payment = server.create_payment(token)
    open_payment(page, payment)
    page.route("**/simulate", lambda route: route.abort("connectionrefused"))

    page.get_by_role("button", name="Simular pagamento").click()

    error = page.locator("[data-sandbox-error]")
    expect(error).to_be_visible()
    expect(error).to_have_text("Sem conexão com o servidor: tente de novo em instantes.")
    expect(page.locator("#payment-status")).to_have_attribute("data-status", "pending")
    page.unroute("**/simulate")

    page.get_by_role("button", name="Simular pagamento").click()  # the retry works
    expect(page.locator("#payment-status")).to_have_attribute("data-status", "paid")
    expect(error).to_have_count(0)  # the paid state has no sandbox form


def test_page_expires_by_itself(server: Server, token: str, page: Page, recorded: Recorded) -> None:
    payment = server.create_payment(token, "10.00", expires_in=60)
    soon = datetime.now(UTC) + timedelta(seconds=4)  # the page loads well within that
    server.update_payment(payment["id"], expires_at=soon)
    open_payment(page, payment)

    clock = page.locator("[data-countdown]")
    expect(clock).to_have_text(re.compile(r"^00:0[0-4]$"))

    region = page.locator("#payment-status")
    expect(region).to_have_attribute("data-status", "expired", timeout=7_000)
    expect(region).to_contain_text("Cobrança expirada")
    expect(clock).to_have_count(0)
    expect(page.locator(".qr")).to_have_count(0)
    assert_not_reloaded(page)
    assert_clean(recorded)


def test_copy_button_copies_the_code(
    server: Server, token: str, context: BrowserContext, page: Page, recorded: Recorded
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    payment = server.create_payment(token)
    open_payment(page, payment)

    page.get_by_role("button", name="Copiar código").click()

    expect(page.locator("[data-copy-feedback]")).to_be_visible()
    expect(page.locator("[data-copy-feedback]")).to_have_text("Código copiado!")
    assert page.evaluate("navigator.clipboard.readText()") == payment["brcode"]
    assert_clean(recorded)


def test_unknown_payment_is_a_portuguese_404(server: Server, page: Page) -> None:
    response = page.goto(f"{server.url}/payments/pix/{uuid.uuid4()}")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Página não encontrada")


def test_inspector_explains_a_code(
    server: Server, token: str, page: Page, recorded: Recorded
) -> None:
    brcode = server.create_payment(token)["brcode"]
    page.goto(f"{server.url}/tools/brcode")

    page.locator("#code").fill(brcode)
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "valid")
    expect(page.locator("[data-verdict]")).to_contain_text("Código válido")

    last = brcode[-1]
    broken = brcode[:-1] + ("0" if last != "0" else "1")
    page.locator("#code").fill(broken)
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "invalid")
    mismatch = page.locator("#brcode-report .errors [data-code=crc_mismatch]")
    expect(mismatch).to_have_count(1)
    expect(mismatch).to_contain_text("CRC")
    expect(mismatch).to_contain_text("não confere")
    assert_same_origin(recorded, server)
    assert_clean(recorded)
