"""The "Chaves de API" page in Chromium, against a real development server: make a key from
the dashboard, see it once (copy button), use it, revoke it with the confirmation, under
the strict CSP."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.harness import Recorded, Server, register_in_browser
from tests.e2e.test_payment_page import assert_clean


def test_make_see_once_use_and_revoke_a_key(
    server: Server, page: Page, recorded: Recorded, tmp_path: Path
) -> None:
    register_in_browser(page, server, "chaves@loja.example", "Loja das Chaves")
    page.get_by_role("link", name="Chaves de API").click()
    page.wait_for_url(server.url + "/dashboard/api-keys")
    expect(page.get_by_text("Nenhuma chave criada ainda.")).to_be_visible()

    page.get_by_label("Nome").fill("Loja virtual")
    page.get_by_label(re.compile("charges:read ·")).check()
    page.get_by_label(re.compile("charges:write ·")).check()
    page.get_by_role("button", name="Criar chave").click()

    shown = page.locator("#new-key-value")
    expect(shown).to_have_text(re.compile(r"^pxw_[A-Za-z0-9_-]{43}$"))
    key = shown.inner_text()
    expect(page.get_by_text("ela não será mostrada de novo")).to_be_visible()
    page.get_by_role("button", name="Copiar chave").click()
    expect(page.locator("#new-key .copied")).to_have_text("Chave copiada!")
    row = page.locator("#api-key-list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("charges:read, charges:write")
    expect(row).to_contain_text("Nunca usada")
    shot = Path(os.environ.get("PIXWEB_SHOTS", tmp_path)) / "api-keys-created.png"
    page.screenshot(path=shot, full_page=True)

    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/payments", headers=auth).status_code == 200
    denied = httpx.get(f"{server.url}/accounts/me", headers=auth)
    assert denied.status_code == 403
    assert denied.json()["detail"] == "this API key lacks the scope account:read"

    page.reload()  # shown once: never again
    assert key not in page.content() and key[12:] not in page.content()
    expect(row).not_to_contain_text("Nunca usada")  # its last use

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revogar").click()
    expect(page.get_by_role("status")).to_contain_text("revogada")
    expect(row).to_contain_text("Revogada em")
    expect(row.get_by_role("button", name="Revogar")).to_have_count(0)
    assert httpx.get(f"{server.url}/payments", headers=auth).status_code == 401
    assert_clean(recorded)
