"""`pixweb expire`: one pass of the expiry sweeper, run by hand."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from pixweb import db
from pixweb.broker import MemoryBroker
from pixweb.models import Payment, WebhookEvent
from pixweb.services import payments
from pixweb.services.clock import utcnow
from tests.conftest import make_merchant
from tests.services.test_outbox_events import endpoint
from tests.test_cli import pixweb


async def test_expire_records_each_expired_charge_once(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'cli.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
    env |= {"PIXWEB_DATABASE_URL": url, "PIXWEB_INSTANCE_PATH": str(tmp_path / "instance")}
    await db.open_database(url)
    try:
        await db.apply_migrations(url)
        merchant = await make_merchant()
        await endpoint(merchant, ["charge.expired"])
        for _ in range(2):
            await payments.create_payment(merchant, amount_cents=500, broker=MemoryBroker())
        await Payment.all().update(expires_at=utcnow() - timedelta(seconds=1))
    finally:
        await db.close_database()

    first, again = pixweb("expire", env=env), pixweb("expire", env=env)
    assert (first.returncode, first.stdout) == (0, "2 expired charge(s) recorded\n"), first.stderr
    assert (again.returncode, again.stdout) == (0, "0 expired charge(s) recorded\n"), again.stderr
    await db.open_database(url)
    try:
        assert await WebhookEvent.filter(type="charge.expired").count() == 2
    finally:
        await db.close_database()
