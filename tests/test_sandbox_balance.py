"""A charge made at a PSP carries a dynamic code (its txid is `***`, the real one sits behind
the location URL): another merchant pasting that code still pays pixweb's own charge from its
balance, as with a static code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.server import Server
from tests.test_multiprocess import call, merchant
from tests.test_sandbox_e2e import check_ledger


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("sandbox-balance")) as running:  # development
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_a_dynamic_code_of_a_pixweb_charge_is_paid_from_a_balance(
    server: Server, http: httpx.AsyncClient
) -> None:
    _, shop = await merchant(http, server)
    charge = await call(http, server, "/payments/pix", shop, value="12.34")
    assert "/sandbox/psp/qr/" in charge["brcode"]  # dynamic: made at the sandbox PSP

    _, payer = await merchant(http, server)
    await call(http, server, "/accounts/me/deposits", payer, value="20.00")
    await call(http, server, "/accounts/me/payments", payer, brcode=charge["brcode"])

    paid = await call(http, server, f"/payments/{charge['id']}", shop)
    assert paid["status"] == "paid"
    assert (await call(http, server, "/accounts/me", shop))["balance"] == "12.34"
    assert (await call(http, server, "/accounts/me", payer))["balance"] == "7.66"
    await check_ledger(server)
