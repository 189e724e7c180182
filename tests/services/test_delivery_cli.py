"""`pixweb webhooks deliver`: one pass by hand, as its own process, to a receiver served in
this test's loop."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tortoise.transactions import in_transaction

from pixweb import crypto, db
from pixweb.config import load_config
from pixweb.models import WebhookDelivery
from pixweb.services import outbox as webhook_outbox
from pixweb.services.events import Outbox
from tests.conftest import make_merchant
from tests.services.test_delivery import make_endpoint
from tests.webhook_receiver import Receiver


async def _deliver_cli(env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "pixweb.cli", "webhooks", "deliver"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_deliver_runs_one_pass_by_hand(tmp_path: Path) -> None:
    url, key = f"sqlite://{tmp_path / 'cli.sqlite3'}", crypto.generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
    env |= {
        "PIXWEB_DATABASE_URL": url,
        "PIXWEB_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIXWEB_ENCRYPTION_KEY": key,
        "PIXWEB_ALLOW_PRIVATE_URLS": "1",
    }
    async with Receiver().serving() as receiver:
        receiver.script(200, 410)
        await db.open_database(url)
        try:
            await db.apply_migrations(url)
            merchant = await make_merchant()
            config = load_config({"testing": True, "encryption_key": key})
            await make_endpoint(merchant, config, receiver.url)
            async with in_transaction():
                first = await webhook_outbox.record(Outbox(), merchant.id, "charge.paid", {})
            assert first is not None
        finally:
            await db.close_database()
        code, out, err = await _deliver_cli(env)
        assert (code, out) == (0, "webhook deliveries: 1 succeeded\n"), err
        code, out, err = await _deliver_cli(env)
        assert (code, out) == (0, "webhook deliveries: none due\n"), err
        await db.open_database(url)
        try:
            async with in_transaction():
                await webhook_outbox.record(Outbox(), merchant.id, "charge.paid", {})
        finally:
            await db.close_database()
        code, out, err = await _deliver_cli(env)  # 410: failed for good, the endpoint disabled
        assert (code, out) == (1, "webhook deliveries: 1 failed\n"), err
    assert [r.headers["webhook-id"] for r in receiver.requests][0] == first.id
    await db.open_database(url)
    try:
        assert await WebhookDelivery.filter(status="succeeded").count() == 1
    finally:
        await db.close_database()
