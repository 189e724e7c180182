"""The `pixweb` command, run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from quart.typing import TestClientProtocol as Client

from pixweb.pix import brcode
from tests.psp_fake import FakePsp, Pki
from tests.server import free_port
from tests.support import need

BCB_EXAMPLE = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)


def pixweb(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixweb.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_brcode_decode_prints_fields_and_exits_zero_for_a_valid_code() -> None:
    result = pixweb("brcode", "decode", BCB_EXAMPLE)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert report["name"] == "Fulano de Tal"
    assert report["key"] == "123e4567-e12b-12d1-a456-426655440000"


def test_brcode_decode_exits_one_and_names_the_error_for_a_bad_crc() -> None:
    result = pixweb("brcode", "decode", BCB_EXAMPLE[:-1] + "E")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [e["code"] for e in report["errors"]] == ["crc_mismatch"]


def test_migrate_then_merchant_create_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PIXWEB_DATABASE_URL": f"sqlite://{tmp_path / 'cli.sqlite3'}",
        "PIXWEB_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    assert pixweb("migrate", env=env).returncode == 0
    args = [
        "merchant",
        "create",
        "--name",
        "Açaí da Praia",
        "--email",
        "Acai@Example.com",
        "--password",
        "s3nha-segura",
        "--city",
        "Florianópolis",
        "--pix-key",
        "+5548999990000",
    ]
    created = pixweb(*args, env=env)
    assert created.returncode == 0, created.stderr
    assert "acai@example.com (phone key)" in created.stdout
    duplicate = pixweb(*args, env=env)
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr
    bad_key = pixweb(*args[:-1], "12345678900", env=env)
    assert bad_key.returncode != 0
    assert "CPF" in bad_key.stderr or "check digit" in bad_key.stderr.lower()


async def test_created_code_scans_with_an_independent_reader(
    client: Client, auth: dict[str, str], tmp_path: Path
) -> None:
    """zbarimg (ZBar) reads the PNG back to the exact payload, which decodes cleanly."""
    if shutil.which("zbarimg") is None:
        # CI installs zbar-tools with the browser, under the same flag.
        need("zbarimg", "PIXWEB_REQUIRE_BROWSER", "zbarimg (Debian zbar-tools) is not installed")
    created = await client.post(
        "/payments/pix",
        json={"value": "1234.56", "description": "Pedido nº 42 — açaí"},
        headers=auth,
    )
    payment = await created.get_json()
    image = await client.get(f"/payments/pix/qr_code/{payment['id']}.png")
    path = tmp_path / "qr.png"
    path.write_bytes(await image.get_data())
    scan = await asyncio.create_subprocess_exec(
        "zbarimg", "--quiet", "--raw", "-Sbinary", str(path), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(scan.communicate(), 30)
    assert scan.returncode == 0
    scanned = stdout.decode().rstrip("\n")
    assert scanned == payment["brcode"]
    decoded = brcode.decode(scanned)
    assert decoded.errors == () and decoded.warnings == ()
    assert decoded.amount == "1234.56"
    assert decoded.txid == payment["bank_payment_id"]


def _run_until_ready(env: dict[str, str], log: Path) -> str:
    """`pixweb run` until its ready banner; return everything it printed, then stop it."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixweb.cli", "run", "--port", str(port)],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            text = log.read_text()
            if text.rstrip().endswith("-" * 64) and "pixweb is ready" in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"no ready banner:\n{log.read_text()}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _logs_in(env: dict[str, str], email: str, password: str) -> bool:
    async def check() -> bool:
        from pixweb import db
        from pixweb.errors import AuthenticationError
        from pixweb.services import merchants

        await db.open_database(env["PIXWEB_DATABASE_URL"])
        try:
            await merchants.authenticate(email, password)
        except AuthenticationError:
            return False
        finally:
            await db.close_database()
        return True

    return asyncio.run(check())


def test_run_prints_the_demo_password_last_and_keeps_it_for_the_next_start(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
    env |= {
        "PIXWEB_DATABASE_URL": f"sqlite://{tmp_path / 'run.sqlite3'}",
        "PIXWEB_INSTANCE_PATH": str(instance),
    }
    assert pixweb("migrate", env=env).returncode == 0
    first = _run_until_ready(env, tmp_path / "first.log")
    # After hypercorn's own start-up lines, as the last thing printed.
    assert first.index("Running on") < first.index("pixweb is ready")
    password = re.search(r"e-mail demo@pixweb\.local  password (\S+)", first)
    assert password, first
    kept = instance / "demo-merchant.txt"
    assert kept.read_text() == f"e-mail: demo@pixweb.local\npassword: {password[1]}\n"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert _logs_in(env, "demo@pixweb.local", password[1])

    again = _run_until_ready(env, tmp_path / "again.log")  # shown again, not made again
    assert f"password {password[1]}" in again

    kept.write_text("e-mail: demo@pixweb.local\npassword: not-the-password\n")
    stale = _run_until_ready(env, tmp_path / "stale.log")  # never a password that fails
    assert "not-the-password" not in stale and "demo merchant: none kept" in stale


async def _reconcile_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "pixweb.cli", "reconcile", *args],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_reconcile_runs_one_pass_by_hand(tmp_path: Path, psp: FakePsp, pki: Pki) -> None:
    """The PSP serves in this test's loop while `pixweb reconcile` runs as its own process."""
    from pixweb import crypto, db
    from pixweb.models import PixSource, ReceivedPix
    from pixweb.netguard import UrlPolicy
    from pixweb.services import psp_connections
    from pixweb.services.psp_clients import PspClients
    from tests.conftest import make_merchant
    from tests.services.test_reconcile import PUBLIC, add_pix, credentials

    url, key = f"sqlite://{tmp_path / 'cli.sqlite3'}", crypto.generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
    env |= {
        "PIXWEB_DATABASE_URL": url,
        "PIXWEB_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIXWEB_ENCRYPTION_KEY": key,
        "PIXWEB_ALLOW_PRIVATE_URLS": "1",
    }
    await db.open_database(url)
    try:
        await db.apply_migrations(url)
        merchant = await make_merchant()
        clients = PspClients(
            encryption_key=key, url_policy=UrlPolicy(require_https=True, allow_private=True)
        )
        try:
            await psp_connections.connect(
                merchant, credentials(psp, pki), clients=clients, public_base=PUBLIC
            )
        finally:
            await clients.aclose()
    finally:
        await db.close_database()
    psp.honour_window = True
    e2eid = add_pix(psp, 1)

    code, out, err = await _reconcile_cli(env, "--merchant", "Loja@Example.com")
    assert code == 0, err
    assert out.startswith("loja@example.com: ok, 1 page(s), recorded 1 (1 no_txid), 0 already")
    code, out, err = await _reconcile_cli(env)  # every merchant: nothing new
    assert code == 0, err
    assert "recorded 0, 1 already recorded" in out
    await db.open_database(url)
    try:
        record = await ReceivedPix.get(end_to_end_id=e2eid)
        assert record.source == PixSource.RECONCILIATION and record.merchant_id == merchant.id
    finally:
        await db.close_database()

    code, _, err = await _reconcile_cli(env, "--merchant", "ninguem@example.com")
    assert code == 1 and "no merchant with the e-mail ninguem@example.com" in err
    code, _, err = await _reconcile_cli(env, "--since", "ontem")
    assert code == 2 and "is not an ISO 8601 moment" in err
    psp.script_page(0, *[(503, {"title": "ServicoIndisponivel", "status": 503})] * 3)
    code, out, _ = await _reconcile_cli(env)
    assert code == 1 and "loja@example.com: failed" in out and "503" in out
