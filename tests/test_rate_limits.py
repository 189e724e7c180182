"""Login and sign-up throttle: per client address and per account, shared by the API and the
pages, blind to X-Forwarded-For from anyone but a trusted proxy."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.app import create_app
from pixweb.models import Merchant
from pixweb.ratelimit import Limit, MemoryStore, RedisStore, make_store
from pixweb.throttle import THROTTLE_KEY, forwarded_client
from tests.conftest import PASSWORD, make_merchant
from tests.support import need

LIMIT = 10  # the default PIXWEB_AUTH_RATE_LIMIT
PEER = "203.0.113.9"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def api_login(
    client: Client,
    email: str = "loja@example.com",
    password: str = "senha errada",
    *,
    peer: str = PEER,
    forwarded: str | None = None,
) -> Any:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return await client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers=headers,
        scope_base={"client": (peer, 40000)},
    )


async def web_login(
    client: Client, email: str, password: str = "senha errada", forwarded: str | None = None
) -> Any:
    page = await client.get("/login", scope_base={"client": (PEER, 40000)})
    match = CSRF.search((await page.get_data()).decode())
    assert match is not None
    form = {"email": email, "password": password, "csrf_token": match.group(1)}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    scope = {"client": (PEER, 40000)}
    return await client.post("/login", form=form, headers=headers, scope_base=scope)


def new_merchant() -> dict[str, str]:
    email = f"m{uuid.uuid4().hex[:10]}@loja.example"
    return {"name": "Loja", "email": email, "password": PASSWORD, "city": "Natal", "pix_key": email}


async def test_sixty_wrong_passwords_through_the_api_are_cut_at_the_limit(
    client: Client, merchant: Merchant
) -> None:
    statuses = [(await api_login(client)).status_code for _ in range(60)]
    assert statuses == [401] * LIMIT + [429] * (60 - LIMIT)
    refused = await api_login(client, password=PASSWORD)  # even the right password waits
    assert refused.status_code == 429
    body = await refused.get_json()
    assert body["error"] == "rate_limited" and "try again" in body["detail"]
    assert 1 <= body["retry_after"] <= 60
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    assert refused.headers["Content-Type"] == "application/json"


async def test_rotating_x_forwarded_for_from_an_untrusted_peer_changes_nothing(
    client: Client, merchant: Merchant
) -> None:
    statuses = [
        (await api_login(client, forwarded=f"198.51.100.{i}")).status_code for i in range(LIMIT + 5)
    ]
    assert statuses == [401] * LIMIT + [429] * 5


async def test_the_login_page_ignores_x_forwarded_for_from_an_untrusted_peer(
    client: Client, merchant: Merchant
) -> None:
    statuses = []
    for i in range(LIMIT + 2):
        response = await web_login(client, merchant.email, forwarded=f"198.51.100.{i}")
        statuses.append(response.status_code)
    assert statuses == [422] * LIMIT + [429] * 2


class TestBehindATrustedProxy:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"trusted_proxies": "10.0.0.0/8, fd00::/8"}

    async def test_each_client_the_proxy_names_has_its_own_budget(
        self, client: Client, merchant: Merchant
    ) -> None:
        for i in range(3 * LIMIT):  # more than one address's limit, each from its own client
            other = f"m{i}@loja.example"
            response = await api_login(client, other, peer="10.0.0.2", forwarded=f"198.51.100.{i}")
            assert response.status_code == 401

    async def test_the_right_most_untrusted_hop_is_the_client(
        self, client: Client, merchant: Merchant
    ) -> None:
        # The client writes what it likes on the left; the proxies append on the right.
        statuses = []
        for i in range(LIMIT + 3):
            chain = f"6.6.6.{i}, 198.51.100.7, 10.1.2.3"
            emails = f"m{i}@loja.example"
            response = await api_login(client, emails, peer="10.0.0.2", forwarded=chain)
            statuses.append(response.status_code)
        assert statuses == [401] * LIMIT + [429] * 3
        other = await api_login(client, "x@loja.example", peer="10.0.0.2", forwarded="198.51.100.8")
        assert other.status_code == 401

    async def test_an_untrusted_peer_still_cannot_choose_its_address(
        self, client: Client, merchant: Merchant
    ) -> None:
        statuses = [
            (await api_login(client, f"m{i}@x.example", forwarded=f"10.0.0.{i}")).status_code
            for i in range(LIMIT + 1)
        ]
        assert statuses[-1] == 429


async def test_an_account_is_limited_whatever_addresses_try_it(
    client: Client, merchant: Merchant
) -> None:
    other = await make_merchant("outra@example.com")
    statuses = []
    for i in range(LIMIT + 2):  # each attempt from another address, e-mail written variously
        email = " LOJA@example.com" if i % 2 else "loja@example.com"
        statuses.append((await api_login(client, email, peer=f"198.51.100.{i}")).status_code)
    assert statuses == [401] * LIMIT + [429] * 2
    locked = await api_login(client, password=PASSWORD, peer="192.0.2.1")
    assert locked.status_code == 429
    # Another account logs in from its own address as usual.
    fine = await api_login(client, other.email, password=PASSWORD, peer="192.0.2.2")
    assert fine.status_code == 200 and (await fine.get_json())["access_token"]


async def test_the_api_and_the_pages_share_one_budget_per_address(
    client: Client, merchant: Merchant
) -> None:
    for i in range(LIMIT // 2):
        assert (await api_login(client, f"a{i}@loja.example")).status_code == 401
    for i in range(LIMIT - LIMIT // 2):
        assert (await web_login(client, f"w{i}@loja.example")).status_code == 422
    refused = await web_login(client, "z@loja.example")
    assert refused.status_code == 429
    html = (await refused.get_data()).decode()
    assert re.search(r"Muitas tentativas. Aguarde \d+ segundos? e tente de novo.", html)
    assert 'value="z@loja.example"' in html and refused.headers["Retry-After"].isdigit()
    assert (await api_login(client, "y@loja.example")).status_code == 429


async def test_sign_ups_count_against_the_address(client: Client) -> None:
    statuses = []
    for _ in range(LIMIT + 1):
        response = await client.post(
            "/auth/register", json=new_merchant(), scope_base={"client": (PEER, 1)}
        )
        statuses.append(response.status_code)
    assert statuses == [201] * LIMIT + [429]
    page = await client.get("/register", scope_base={"client": (PEER, 1)})
    match = CSRF.search((await page.get_data()).decode())
    assert match is not None
    form = {**new_merchant(), "csrf_token": match.group(1)}
    refused = await client.post("/register", form=form, scope_base={"client": (PEER, 1)})
    assert refused.status_code == 429
    html = (await refused.get_data()).decode()
    assert "Muitas tentativas." in html and PASSWORD not in html


async def test_a_limited_address_still_uses_everything_else(
    client: Client, merchant: Merchant, auth: dict[str, str]
) -> None:
    for _ in range(LIMIT + 1):
        await api_login(client)
    assert (await api_login(client)).status_code == 429
    scope = {"client": (PEER, 1)}
    response = await client.post(
        "/payments/pix", json={"value": "1.00"}, headers=auth, scope_base=scope
    )
    assert response.status_code == 201
    assert "Retry-After" not in response.headers and "RateLimit-Limit" not in response.headers


async def test_concurrent_attempts_cannot_slip_past_the_limit(
    client: Client, merchant: Merchant
) -> None:
    responses = await asyncio.gather(*(api_login(client) for _ in range(40)))
    assert sorted(r.status_code for r in responses) == [401] * LIMIT + [429] * (40 - LIMIT)


class TestDisabled:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"auth_rate_limit": 0}

    async def test_zero_means_no_limit(self, client: Client, merchant: Merchant) -> None:
        for _ in range(LIMIT * 3):
            assert (await api_login(client)).status_code == 401


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("203.0.113.9", ["1.2.3.4"], [], "203.0.113.9"),
        ("203.0.113.9", ["1.2.3.4"], ["10.0.0.0/8"], "203.0.113.9"),
        ("10.0.0.2", ["1.2.3.4"], ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", ["6.6.6.6, 1.2.3.4"], ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", ["6.6.6.6, 1.2.3.4, 10.9.9.9"], ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", ["6.6.6.6", "1.2.3.4"], ["10.0.0.0/8"], "1.2.3.4"),  # two headers
        ("10.0.0.2", ["1.2.3.4:5678"], ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", ["[2001:db8::7]:443"], ["10.0.0.0/8"], "2001:db8::7"),
        ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], ["10.0.0.0/8"], "10.0.0.3"),  # all proxies
        ("10.0.0.2", ["1.2.3.4, garbage"], ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", [], ["10.0.0.0/8"], "10.0.0.2"),
        ("::1", ["2001:db8::1"], ["::1"], "2001:db8::1"),
        ("<local>", ["1.2.3.4"], ["10.0.0.0/8"], "<local>"),
    ],
)
def test_forwarded_client(peer: str, forwarded: list[str], trusted: list[str], client: str) -> None:
    from pixweb.config import load_config

    networks = load_config({"testing": True, "trusted_proxies": trusted}, {}).trusted_proxies
    assert forwarded_client(peer, forwarded, networks) == client


async def test_memory_buckets_forget_keys_once_full_again() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    limit = Limit(2, 60.0)
    for i in range(1000):
        assert await store.take([(f"k{i}", limit)]) == 0
    assert len(store) == 1000
    now[0] += 61
    assert await store.take([("k-new", limit)]) == 0
    assert len(store) == 1


async def test_a_refused_attempt_takes_from_no_bucket() -> None:
    store = MemoryStore()
    tight, loose = Limit(1, 60.0), Limit(100, 60.0)
    assert await store.take([("a", tight), ("b", loose)]) == 0
    assert await store.take([("a", tight), ("b", loose)]) > 0
    assert len(store) == 2
    for _ in range(99):  # b still has 99 left: the refusal took nothing from it
        assert await store.take([("b", loose)]) == 0
    assert await store.take([("b", loose)]) > 0


def redis_url() -> str:
    url = os.environ.get("PIXWEB_TEST_REDIS_URL")
    if not url:
        need("Redis", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_REDIS_URL is not set")
    return str(url)


async def test_processes_sharing_redis_share_the_budget() -> None:
    broker = f"{redis_url()}?prefix=test-{uuid.uuid4().hex}:"
    settings = {"testing": True, "database_url": "sqlite://:memory:", "broker_url": broker}
    one, two = create_app({**settings, "auto_migrate": True}), create_app(settings)
    # One database per process is all Tortoise allows: the second app (a second worker)
    # shares the first one's, and closes its own throttle since it never starts serving.
    async with one.test_app():
        try:
            statuses = []
            for i in range(LIMIT + 2):
                app: Quart = (one, two)[i % 2]
                statuses.append((await api_login(app.test_client())).status_code)
            assert statuses == [401] * LIMIT + [429] * 2
        finally:
            await two.extensions[THROTTLE_KEY].close()


async def test_redis_buckets_expire_and_are_atomic() -> None:
    url = redis_url()
    store = make_store(f"{url}?prefix=test-{uuid.uuid4().hex}:")
    assert isinstance(store, RedisStore)
    try:
        limit = Limit(5, 1.0)
        waits = await asyncio.gather(*(store.take([("k", limit)]) for _ in range(20)))
        assert sorted(w == 0 for w in waits) == [False] * 15 + [True] * 5
        assert all(0 < w <= 1.0 for w in waits if w)
        await asyncio.sleep(1.05)
        assert await store.take([("k", limit)]) == 0
    finally:
        await store.close()


async def test_a_dead_redis_falls_back_to_this_process_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store("redis://127.0.0.1:1/0")
    try:
        limit = Limit(2, 60.0)
        assert [await store.take([("k", limit)]) == 0 for _ in range(3)] == [True, True, False]
        assert "fall back to this process's memory" in caplog.text
    finally:
        await store.close()
