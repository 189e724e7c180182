"""Fixtures of the real-browser tests: a pixweb server subprocess, Chromium, recorded pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, Recorded, Server
from tests.support import need

HERE = Path(__file__).resolve().parent

# Counts the htmx ws extension's lifecycle in the page, so tests wait on facts, not on time.
WS_PROBE = """
window.__ws = {opens: 0, messages: 0, closes: []};
document.addEventListener("htmx:wsOpen", () => { window.__ws.opens += 1; });
document.addEventListener("htmx:wsAfterMessage", () => { window.__ws.messages += 1; });
document.addEventListener("htmx:wsClose", (e) => { window.__ws.closes.push(e.detail.event.code); });
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def _needs_chromium() -> None:
    """Before any server or browser starts: skip (or fail under the flag) without Chromium."""
    if not CHROMIUM.exists():
        need("Chromium", "PIXWEB_REQUIRE_BROWSER", f"browser tests need Chromium at {CHROMIUM}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the server's log and what the page recorded to the report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not item.path.is_relative_to(HERE):
        return
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    server = funcargs.get("server")
    if isinstance(server, Server):
        report.sections.append(("pixweb server log", server.log()[-20_000:]))
    recorded = funcargs.get("recorded")
    if isinstance(recorded, Recorded):
        report.sections.append(("browser", recorded.summary()))


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `pixweb serve` (development, so the sandbox exists) on a temp SQLite file.

    One per module (starting Python and the app takes seconds); tests create their own
    payments, so they do not see each other.
    """
    running = Server(tmp_path_factory.mktemp("pixweb"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def server(running_server: Server) -> Server:
    """The module's server, started again if a test left it stopped."""
    if not running_server.running:
        running_server.stop()  # reap a dead process, close its log
        running_server.start()
    return running_server


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Module scope, not session: the sync API keeps an event loop running in this thread
    # until it stops, and the asyncio tests collected after tests/e2e need it gone.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(locale="pt-BR", timezone_id="America/Sao_Paulo")
    try:
        yield ctx
    finally:
        ctx.close()


def watch(tab: Page, recorded: Recorded, label: str = "") -> Page:
    """Probe `tab`'s sockets and record its errors and requests (errors prefixed `[label] `)."""
    prefix = f"[{label}] " if label else ""
    tab.set_default_timeout(10_000)
    tab.add_init_script(WS_PROBE)
    tab.on(
        "console",
        lambda msg: (
            recorded.console_errors.append(prefix + msg.text) if msg.type == "error" else None
        ),
    )
    tab.on("pageerror", lambda error: recorded.page_errors.append(prefix + str(error)))
    tab.on("request", lambda request: recorded.urls.append(request.url))
    tab.on("websocket", lambda socket: recorded.urls.append(socket.url))
    return tab


@pytest.fixture
def page(context: BrowserContext, recorded: Recorded) -> Page:
    return watch(context.new_page(), recorded)


DESKTOP = ViewportSize(width=1280, height=1000)
PHONE = ViewportSize(width=390, height=844)  # a common phone, in CSS pixels


@pytest.fixture
def new_tab(browser: Browser, recorded: Recorded) -> Iterator[Callable[..., Page]]:
    """Open a watched tab in a context of its own (its own cookies: another person).

    `open_tab(label, viewport=PHONE)` opens it on a phone-sized screen.
    """
    contexts: list[BrowserContext] = []

    def open_tab(label: str, viewport: ViewportSize = DESKTOP) -> Page:
        contexts.append(
            browser.new_context(
                viewport=viewport,
                locale="pt-BR",
                timezone_id="America/Sao_Paulo",
            )
        )
        return watch(contexts[-1].new_page(), recorded, label)

    try:
        yield open_tab
    finally:
        for ctx in contexts:
            ctx.close()


@pytest.fixture(scope="module")
def token(running_server: Server) -> str:
    """A bearer token of a merchant ("Padaria São João") registered once per module."""
    running_server.register_merchant("caixa@padaria.example")
    return running_server.login("caixa@padaria.example")
