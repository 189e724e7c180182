"""The development sandbox connection: made when a merchant without a PSP first needs one
(if the PspClients say so), its webhook registered at the sandbox, replaced by a real PSP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from quart import Quart

from pixweb import crypto
from pixweb.models import Merchant, PspConnection, SandboxWebhook
from pixweb.netguard import UrlPolicy
from pixweb.psp.transport import RetryPolicy
from pixweb.services import psp_connections, psp_sandbox
from pixweb.services.psp_clients import PspClients
from tests.psp_fake import FakePsp, Pki
from tests.services.test_psp_connections import given

KEY = crypto.generate_key()
SECRET = "app-secret-key-for-the-sandbox-credentials"
BASE = "http://127.0.0.1:5000"


def registry(*, connect: bool = True, secret: str | None = SECRET) -> PspClients:
    return PspClients(
        encryption_key=KEY,
        url_policy=UrlPolicy(require_https=True, allow_private=True),
        sandbox_secret_key=secret,
        sandbox_connect=connect,
        timeout=2.0,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )


@pytest.fixture
async def clients(app: Quart) -> AsyncIterator[PspClients]:
    made = registry()
    yield made
    await made.aclose()


async def test_a_merchant_without_a_psp_is_connected_to_the_sandbox(
    merchant: Merchant, clients: PspClients
) -> None:
    client = await psp_sandbox.client_for(merchant, clients=clients, public_base=BASE)
    assert client is not None and client.base_url == f"{BASE}/sandbox/psp"
    row = await PspConnection.get(merchant_id=merchant.id)
    assert row.sandbox and row.client_id == f"sandbox-{merchant.id}" and row.certificate_pem == ""
    hook = await SandboxWebhook.get(merchant_id=merchant.id, chave=merchant.pix_key)
    assert hook.url.startswith(f"{BASE}/webhooks/pix/")
    assert await psp_connections.find_by_webhook_token(hook.url.rsplit("/", 1)[1]) is not None
    # Once: the next charge uses the same connection and client.
    assert await psp_sandbox.client_for(merchant, clients=clients, public_base=BASE) is client
    assert await PspConnection.filter(merchant_id=merchant.id).count() == 1


async def test_without_auto_connect_or_outside_development_there_is_no_sandbox(
    merchant: Merchant, clients: PspClients
) -> None:
    off = registry(connect=False)
    assert await psp_sandbox.client_for(merchant, clients=off, public_base=BASE) is None
    assert not await PspConnection.exists(merchant_id=merchant.id)
    await psp_sandbox.connect_sandbox(merchant, clients=clients, public_base=BASE)
    production = registry(secret=None)  # a sandbox row is never used in production
    assert await production.for_merchant(merchant.id) is None
    await off.aclose()
    await production.aclose()


async def test_a_real_psp_replaces_the_sandbox_connection(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    await psp_sandbox.connect_sandbox(merchant, clients=clients, public_base=BASE)
    await psp_connections.connect(
        merchant, given(psp, pki), clients=clients, public_base="https://pixweb.example"
    )
    row = await PspConnection.get(merchant_id=merchant.id)
    assert not row.sandbox and row.base_url == psp.url
    client = await clients.for_merchant(merchant.id)
    assert client is not None and client.base_url == psp.url


async def test_sign_up_connects_only_when_merchants_are_connected_by_default(
    merchant: Merchant, clients: PspClients
) -> None:
    off = registry(connect=False)
    await psp_sandbox.connect_new_merchant(merchant, clients=off, public_base=BASE)
    assert not await PspConnection.exists(merchant_id=merchant.id)
    await off.aclose()
    await psp_sandbox.connect_new_merchant(merchant, clients=clients, public_base=BASE)
    assert (await PspConnection.get(merchant_id=merchant.id)).sandbox
