"""A real pixweb server in a subprocess, and stdlib HTTP helpers to drive its API.

Shared by the e2e fixtures (conftest.py) and the screenshot script (screenshots.py).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tests.support import signed

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
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
STARTUP_TIMEOUT = 20.0
PASSWORD = "uma senha longa e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`pixweb serve` on 127.0.0.1:<port>, over one SQLite file that survives restarts."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = workdir / "e2e.sqlite3"
        self.log_path = workdir / "server.log"
        self.secret_key = "e2e-secret-key-not-for-production"
        self.webhook_secret = "e2e-webhook-secret"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._migrated = False

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
        env.update(
            PIXWEB_ENV="development",
            PIXWEB_DATABASE_URL=f"sqlite://{self.db_path}",
            PIXWEB_INSTANCE_PATH=str(self.workdir / "instance"),
            PIXWEB_SECRET_KEY=self.secret_key,
            PIXWEB_WEBHOOK_SECRET=self.webhook_secret,
            PYTHONUNBUFFERED="1",
        )
        return env

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Migrate (the first time), serve, and wait until /openapi.json answers 200."""
        assert self._process is None, "server already running"
        self._log = self.log_path.open("ab")
        try:
            if not self._migrated:
                self._migrate()
            command = [sys.executable, "-m", "pixweb.cli", "serve", "--host", "127.0.0.1"]
            self._process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=ROOT,
                env=self._env(),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "pixweb.cli", "migrate"],
            cwd=ROOT,
            env=self._env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"`pixweb migrate` exited with {done.returncode}:\n{self.log()}")
        self._migrated = True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"server exited with {code} while starting:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/openapi.json", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {STARTUP_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 10 s) and wait; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

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
    the old one is marked first and only a message in an unmarked form counts.
    """
    form = page.locator(f"#form-{name}")
    for field_name, value in fields.items():
        form.locator(f"[name={field_name}]").fill(value)
    form.evaluate("form => { form.dataset.sent = '1'; }")
    form.locator("button[type=submit]").click()
    answer = page.locator(f"#form-{name}:not([data-sent])")
    return answer.locator(".form-success, .form-error, .field-error").first.inner_text()


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
