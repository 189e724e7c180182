"""The PSP connection service and the per-process PspClient cache, against the fake PSP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from quart import Quart

from pixweb import crypto
from pixweb.errors import EncryptionError, UnsafeUrlError
from pixweb.models import Merchant, PspConnection
from pixweb.netguard import UrlPolicy
from pixweb.psp.transport import RetryPolicy
from pixweb.services import psp_clients, psp_connections
from pixweb.services.psp_clients import PspClients
from pixweb.services.psp_connections import Credentials
from tests.conftest import make_merchant
from tests.psp_fake import CLIENT_ID, CLIENT_SECRET, FakePsp, Pki, pem_chain, pem_key

PUBLIC = "https://pixweb.example"
KEY = crypto.generate_key()


@pytest.fixture
async def clients(app: Quart, psp: FakePsp) -> AsyncIterator[PspClients]:
    registry = PspClients(
        encryption_key=KEY,
        url_policy=UrlPolicy(require_https=True, allow_private=True),
        timeout=2.0,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )
    yield registry
    await registry.aclose()


def given(psp: FakePsp, pki: Pki, **overrides: str) -> Credentials:
    values = {
        "base_url": psp.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "certificate_pem": pem_chain(pki.client),
        "private_key_pem": pem_key(pki.client),
        "server_ca_pem": pki.ca.cert_pem.bytes().decode(),
        **overrides,
    }
    return Credentials(**values)


async def test_the_client_is_built_once_and_reused(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    assert await clients.for_merchant(merchant.id) is None
    await psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
    first = await clients.for_merchant(merchant.id)
    assert first is not None
    assert await clients.for_merchant(merchant.id) is first
    await first.get_webhook(merchant.pix_key)  # the proven client kept its token
    assert psp.tokens_issued == 1
    # Concurrent first uses in a fresh process build one client.
    fresh = PspClients(encryption_key=KEY, url_policy=clients.url_policy, **clients.options)
    try:
        built = await asyncio.gather(*(fresh.for_merchant(merchant.id) for _ in range(5)))
        assert len({id(c) for c in built}) == 1
    finally:
        await fresh.aclose()


async def test_new_credentials_replace_the_client_and_the_old_one_is_closed(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    await psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
    old = await clients.for_merchant(merchant.id)
    # Another process reconnects: this one notices on its next use.
    other = PspClients(encryption_key=KEY, url_policy=clients.url_policy, **clients.options)
    try:
        await psp_connections.connect(merchant, given(psp, pki), clients=other, public_base=PUBLIC)
    finally:
        await other.aclose()
    new = await clients.for_merchant(merchant.id)
    assert new is not None and old is not None and new is not old
    assert not old._http.is_closed  # calls still running on it may finish
    await clients.aclose()
    assert old._http.is_closed and new._http.is_closed


async def test_disconnecting_forgets_the_client(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    await psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
    result = await psp_connections.disconnect(merchant, clients=clients)
    assert result.webhook_removed
    assert await clients.for_merchant(merchant.id) is None


async def test_the_intake_finds_the_merchant_by_its_webhook_token(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    view = await psp_connections.connect(
        merchant, given(psp, pki), clients=clients, public_base=PUBLIC + "/"
    )
    assert view.webhook_url is not None
    token = view.webhook_url.removeprefix(f"{PUBLIC}/webhooks/pix/")
    found = await psp_connections.find_by_webhook_token(token)
    assert found is not None and found.merchant_id == merchant.id
    assert await psp_connections.find_by_webhook_token(token + "x") is None

    rotated = await psp_connections.rotate_webhook_token(
        merchant, clients=clients, public_base=PUBLIC
    )
    assert await psp_connections.find_by_webhook_token(token) is None
    assert rotated.webhook_url is not None
    assert await psp_connections.find_by_webhook_token(rotated.webhook_url.rsplit("/", 1)[1])


async def test_a_secret_moved_to_another_merchant_does_not_decrypt(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    other = await make_merchant("outra@example.com", pix_key="outra@example.com")
    await psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
    await psp_connections.connect(other, given(psp, pki), clients=clients, public_base=PUBLIC)
    mine = await PspConnection.get(merchant_id=merchant.id)
    await PspConnection.filter(merchant_id=other.id).update(client_secret=mine.client_secret)
    fresh = PspClients(encryption_key=KEY, url_policy=clients.url_policy)
    try:
        with pytest.raises(EncryptionError, match="client_secret cannot be decrypted.*another"):
            await fresh.for_merchant(other.id)
        assert await fresh.for_merchant(merchant.id) is not None
    finally:
        await fresh.aclose()


async def test_another_key_is_named_by_its_id(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    await psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
    row = await PspConnection.get(merchant_id=merchant.id)
    wrong = crypto.generate_key()
    with pytest.raises(EncryptionError) as refused:
        psp_clients.decrypt_field(wrong, row, "private_key_pem")
    assert crypto.key_id(KEY) in refused.value.detail
    assert crypto.key_id(wrong) in refused.value.detail
    view = psp_connections.view(row, encryption_key=wrong)
    assert view.webhook_url is None and view.problem is not None


async def test_stored_urls_are_checked_again_when_the_policy_changes(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    await psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
    strict = PspClients(encryption_key=KEY, url_policy=UrlPolicy(allow_private=False))
    try:
        with pytest.raises(UnsafeUrlError, match="loopback"):
            await strict.for_merchant(merchant.id)
    finally:
        await strict.aclose()


async def test_the_certificate_is_flagged_30_days_before_it_expires(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    from datetime import UTC, datetime, timedelta

    soon = pki.ca.issue_cert(
        "merchant.example.com", not_after=datetime.now(UTC) + timedelta(days=29)
    )
    view = await psp_connections.connect(
        merchant,
        given(psp, pki, certificate_pem=pem_chain(soon), private_key_pem=pem_key(soon)),
        clients=clients,
        public_base=PUBLIC,
    )
    assert view.certificate_expiring_soon and not view.certificate_expired
    later = pki.ca.issue_cert(
        "merchant.example.com", not_after=datetime.now(UTC) + timedelta(days=31)
    )
    view = await psp_connections.connect(
        merchant,
        given(psp, pki, certificate_pem=pem_chain(later), private_key_pem=pem_key(later)),
        clients=clients,
        public_base=PUBLIC,
    )
    assert not view.certificate_expiring_soon


async def test_concurrent_connections_store_one_row(
    merchant: Merchant, clients: PspClients, psp: FakePsp, pki: Pki
) -> None:
    results = await asyncio.gather(
        *(
            psp_connections.connect(merchant, given(psp, pki), clients=clients, public_base=PUBLIC)
            for _ in range(4)
        ),
        return_exceptions=True,
    )
    for result in results:
        assert isinstance(result, psp_connections.ConnectionView) or "try again" in str(result)
    assert await PspConnection.filter(merchant_id=merchant.id).count() == 1
