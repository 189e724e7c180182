"""Development: every merchant is connected to pixweb's own sandbox PSP (`/sandbox/psp`),
so charges, webhooks and read-backs walk the real API Pix path over HTTP.

A sandbox connection is a `PspConnection` with `sandbox=True`: no certificate (its PEM
fields are empty), client credentials derived from the app's secret when the client is
built (`PspClients`), its webhook registered straight in the sandbox's own table (as a
PSP's portal would: the sandbox is part of this process), pointing at the standard intake.
It is made when a merchant without a PSP first needs one, if `PspClients.sandbox_connect`
says so (development serving); never in production.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb.models import (
    Merchant,
    Payment,
    PaymentStatus,
    PspConnection,
    ReceivedPix,
    SandboxCob,
)
from pixweb.psp.client import PspClient
from pixweb.psp.sandbox import auth as sandbox_auth
from pixweb.psp.sandbox import scenarios
from pixweb.psp.sandbox import webhooks as sandbox_webhooks
from pixweb.psp.sandbox.scenarios import Scenario
from pixweb.psp.sandbox.worker import SandboxWorker
from pixweb.psp.schemas import Pix
from pixweb.services.clock import utcnow
from pixweb.services.psp_clients import PspClients, encrypt_field
from pixweb.services.psp_connections import WEBHOOK_PATH, webhook_token_hash

log = logging.getLogger(__name__)

SANDBOX_PATH = "/sandbox/psp"  # where pixweb.psp.sandbox.routes is mounted
NO_CERTIFICATE = "sandbox (sem certificado)"
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
SIMULATION_WAIT_SECONDS = 5.0


async def client_for(
    merchant: Merchant, *, clients: PspClients, public_base: str
) -> PspClient | None:
    """The merchant's PSP client: its own PSP, else the sandbox when merchants are connected
    to it by default, else None (static BR Codes)."""
    client = await clients.for_merchant(merchant.id)
    if client is None and clients.sandbox_connect:
        await connect_sandbox(merchant, clients=clients, public_base=public_base)
        client = await clients.for_merchant(merchant.id)
    return client


async def connect_sandbox(
    merchant: Merchant, *, clients: PspClients, public_base: str
) -> PspConnection:
    """Connect the merchant to the sandbox PSP, unless it has a PSP connection already."""
    existing = await PspConnection.get_or_none(merchant_id=merchant.id)
    if existing is not None:
        return existing
    base, key = public_base.rstrip("/"), clients.encryption_key
    token = secrets.token_urlsafe(32)
    webhook_url = f"{base}{WEBHOOK_PATH}{token}"
    nothing = encrypt_field(key, merchant.id, "client_secret", "")  # derived when used
    no_key = encrypt_field(key, merchant.id, "private_key_pem", "")
    try:
        async with in_transaction():
            row = await PspConnection.create(
                merchant_id=merchant.id,
                sandbox=True,
                base_url=base + SANDBOX_PATH,
                token_url=f"{base}{SANDBOX_PATH}/oauth/token",
                client_id=sandbox_auth.client_id(merchant.id),
                certificate_pem="",
                certificate_subject=NO_CERTIFICATE,
                certificate_issuer=NO_CERTIFICATE,
                certificate_not_after=NEVER,
                chave=merchant.pix_key,
                webhook_token_hash=webhook_token_hash(token),
                webhook_url=encrypt_field(key, merchant.id, "webhook_url", webhook_url),
                connected_at=utcnow(),
                client_secret=nothing,
                private_key_pem=no_key,
            )
            await sandbox_webhooks.put_webhook(merchant, merchant.pix_key, webhook_url)
    except IntegrityError:  # connected meanwhile (another request, another worker)
        return await PspConnection.get(merchant_id=merchant.id)
    log.info("merchant %s connected to the sandbox PSP at %s", merchant.id, row.base_url)
    return row


async def is_sandbox_charge(payment: Payment) -> bool:
    """Whether the charge was created at the sandbox PSP (its scenarios can pay it)."""
    return await SandboxCob.exists(merchant_id=payment.merchant_id, txid=payment.txid)


async def simulate(
    payment: Payment,
    scenario: Scenario,
    *,
    value_cents: int | None,
    worker: SandboxWorker,
    wait_seconds: float = SIMULATION_WAIT_SECONDS,
) -> list[Pix]:
    """A payer pays the charge at the sandbox PSP as `scenario` says; the Pix made.

    `late` first moves the charge's expiry back here too (the sandbox moves its cob's
    clock), so the Pix arrives after both. Then wait (bounded) until the webhook the sandbox
    sends has recorded each Pix, so the caller shows where the charge ended up."""
    if scenario is Scenario.LATE:
        expired = utcnow() - scenarios.LATE_BY
        pending = Payment.filter(id=payment.id, status=PaymentStatus.PENDING)
        await pending.update(expires_at=expired)
    made = await scenarios.pay_cob(
        payment.merchant_id, payment.txid, scenario, value_cents=value_cents, worker=worker
    )
    if scenario is not Scenario.NO_WEBHOOK:
        ids = [pix.end_to_end_id for pix in made]
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while await ReceivedPix.filter(end_to_end_id__in=ids).count() < len(ids):
            if asyncio.get_running_loop().time() >= deadline:
                log.warning("sandbox: the webhook of %s did not land in time", ids)
                break
            await asyncio.sleep(0.05)
    await payment.refresh_from_db()
    return made


async def connect_new_merchant(
    merchant: Merchant, *, clients: PspClients, public_base: str
) -> None:
    """On sign-up: connect the merchant to the sandbox PSP when merchants are by default."""
    if clients.sandbox_connect:
        await connect_sandbox(merchant, clients=clients, public_base=public_base)
