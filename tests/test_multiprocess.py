"""Two real `pixweb serve` processes on one PostgreSQL and one Redis.

Events cross processes (a payer's socket on B sees a confirmation posted to A; a dashboard on
A sees a transfer made on B), and the ledger holds under load spread over both: exactly-once
credit, no overdraft, no deadlock. Needs PIXWEB_TEST_DATABASE_URL and PIXWEB_TEST_REDIS_URL
(skips without them, fails under PIXWEB_REQUIRE_SERVICES=1); the `--workers` refusals need
neither.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.harness import PASSWORD, ROOT, STARTUP_TIMEOUT, Server, free_port
from tests.support import PRODUCTION, fresh_postgres_database, need, signed

PUSH_WITHIN = 2.0  # seconds for an event to reach a socket held by another process
Auth = dict[str, str]


class PgServer(Server):
    """The e2e harness's server, production-like on the shared PostgreSQL and Redis."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(workdir)
        self.extra_env = env
        self.ws_url = "ws" + self.url.removeprefix("http")

    def _env(self) -> dict[str, str]:
        return {**super()._env(), **self.extra_env}


def _redis_url() -> str:
    url = os.environ.get("PIXWEB_TEST_REDIS_URL")
    if not url:
        need("Redis", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_REDIS_URL is not set")
    if not os.environ.get("PIXWEB_TEST_DATABASE_URL"):
        need("PostgreSQL", "PIXWEB_REQUIRE_SERVICES", "PIXWEB_TEST_DATABASE_URL is not set")
    import redis

    client = redis.Redis.from_url(str(url), socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        need("Redis", "PIXWEB_REQUIRE_SERVICES", f"Redis unreachable at {url}: {exc}")
    finally:
        client.close()
    return str(url)


def wait_ready(url: str) -> None:
    deadline, last = time.monotonic() + STARTUP_TIMEOUT, "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url + "/readyz", timeout=2)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"{url}/readyz not 200 within {STARTUP_TIMEOUT}s: {last}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PgServer, PgServer]]:
    """Servers A and B: one fresh migrated database, one Redis, the same secrets."""
    redis_url = _redis_url()
    database_url, drop = asyncio.run(fresh_postgres_database())
    env = {"PIXWEB_ENV": "production", "PIXWEB_DATABASE_URL": database_url}
    env["PIXWEB_BROKER_URL"] = redis_url
    a, b = (PgServer(tmp_path_factory.mktemp(name), env) for name in "ab")
    try:
        for server in (a, b):
            server.start()  # `pixweb migrate` (a no-op the second time), then serve
            wait_ready(server.url)
        yield a, b
    finally:
        a.stop()
        b.stop()
        asyncio.run(drop())


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def merchant(http: httpx.AsyncClient, server: Server) -> tuple[str, Auth]:
    """Register and log in a merchant through `server`'s API: its e-mail and bearer header."""
    email = f"m{uuid.uuid4().hex[:12]}@loja.com.br"
    fields = {"email": email, "password": PASSWORD}
    new = {**fields, "name": "Loja " + email[:6], "city": "Curitiba", "pix_key": email}
    answer = await http.post(server.url + "/auth/register", json=new)
    assert answer.status_code == 201, answer.text
    answer = await http.post(server.url + "/auth/login", json=fields)
    assert answer.status_code == 200, answer.text
    return email, {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def call(http: httpx.AsyncClient, server: Server, path: str, auth: Auth, **body: Any) -> Any:
    """POST `body` (GET without one) as the merchant; assert success and return the JSON."""
    url = server.url + path
    answer = await (
        http.post(url, json=body, headers=auth) if body else http.get(url, headers=auth)
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def movements(http: httpx.AsyncClient, server: Server, auth: Auth, **query: Any) -> list[Any]:
    """Every movement of the account, following `next_before` through pages of 25."""
    items: list[Any] = []
    params: dict[str, Any] = {"limit": 25, **query}
    while True:
        answer = await http.get(server.url + "/accounts/me/movements", params=params, headers=auth)
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        params["before"] = answer.json()["next_before"]
        if params["before"] is None:
            return items


async def confirm(http: httpx.AsyncClient, server: Server, payment: Any) -> httpx.Response:
    """The bank's signed confirmation of `payment`, posted to `server`."""
    fields = {"bank_payment_id": payment["bank_payment_id"], "value": payment["value"]}
    body, headers = signed(fields, server.webhook_secret)
    return await http.post(server.url + "/payments/pix/confirmation", content=body, headers=headers)


async def receive_until(socket: Any, wanted: Callable[[str], bool]) -> str:
    """The first message `wanted` accepts within PUSH_WITHIN seconds; else fail, listing all."""
    seen: list[str] = []
    deadline = time.monotonic() + PUSH_WITHIN
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = str(await asyncio.wait_for(socket.recv(), left))
        except TimeoutError:
            break
        if wanted(message):
            return message
        seen.append(message[:300])
    raise AssertionError(f"nothing wanted within {PUSH_WITHIN}s; got {seen}")


async def dashboard_cookie(http: httpx.AsyncClient, server: Server, email: str) -> str:
    """Log in through the /login form, CSRF token included; return the session cookie.

    Production marks it Secure, and a cookie jar never sends that over http://: by hand."""
    page = await http.get(server.url + "/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf, page.text
    form = {"email": email, "password": PASSWORD, "csrf_token": csrf[1]}
    cookie = {"Cookie": f"session={page.cookies['session']}"}
    answer = await http.post(server.url + "/login", data=form, headers=cookie)
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].endswith("/dashboard")
    return str(answer.cookies["session"])


@pytest.mark.services
async def test_payer_socket_on_b_sees_confirmation_posted_to_a(cluster, http) -> None:
    a, b = cluster
    _, auth = await merchant(http, a)
    payment = await call(http, a, "/payments/pix", auth, value="12.34")
    async with websockets.connect(f"{b.ws_url}/ws/payments/{payment['id']}") as socket:
        await receive_until(socket, lambda m: 'data-status="pending"' in m)
        assert (await confirm(http, a, payment)).status_code == 200
        await receive_until(socket, lambda m: 'data-status="paid"' in m)


@pytest.mark.services
async def test_dashboard_on_a_sees_transfer_made_on_b(cluster, http) -> None:
    a, b = cluster
    (x_email, _), (_, y_auth) = await merchant(http, a), await merchant(http, b)
    await call(http, b, "/accounts/me/deposits", y_auth, value="100.00")
    cookie = await dashboard_cookie(http, a, x_email)
    headers = {"Cookie": f"session={cookie}", "Origin": a.url}
    async with websockets.connect(a.ws_url + "/ws/dashboard", additional_headers=headers) as socket:
        sync = await receive_until(socket, lambda m: 'id="balance"' in m)
        assert 'data-cents="0"' in sync
        await call(http, b, "/accounts/me/transfers", y_auth, to_email=x_email, value="25.50")
        pushed = await receive_until(socket, lambda m: 'id="balance"' in m)
        assert 'data-cents="2550"' in pushed and "R$\u00a025,50" in pushed, pushed


@pytest.mark.services
async def test_bank_socket_on_b_sees_deposit_made_on_a(cluster, http) -> None:
    a, b = cluster
    _, auth = await merchant(http, a)
    async with websockets.connect(b.ws_url + "/ws") as socket:
        await receive_until(socket, lambda m: '"conexao"' in m)
        token = auth["Authorization"].removeprefix("Bearer ")
        await socket.send(f'{{"event": "autenticar", "data": {{"token": "{token}"}}}}')
        await receive_until(socket, lambda m: '"autenticado"' in m)
        await call(http, a, "/accounts/me/deposits", auth, value="7.00")
        await receive_until(socket, lambda m: '"notificacao"' in m)
        pushed = await receive_until(socket, lambda m: '"saldo_atualizado"' in m)
        assert '"Saldo": "7.00"' in pushed, pushed


@pytest.mark.services
async def test_an_api_key_revoked_on_a_is_refused_by_b_at_once(cluster, http) -> None:
    """B keeps no key in memory: its very next request with the key is a 401, and a `/ws`
    socket B holds for the key closes (the revocation crosses Redis)."""
    a, b = cluster
    _, auth = await merchant(http, a)
    created = await call(http, a, "/api-keys", auth, name="ERP", scopes=["account:read"])
    as_key = {"Authorization": f"Bearer {created['key']}"}
    assert (await http.get(b.url + "/accounts/me", headers=as_key)).status_code == 200
    async with websockets.connect(b.ws_url + "/ws") as socket:
        await receive_until(socket, lambda m: '"conexao"' in m)
        key = created["key"]
        await socket.send(f'{{"event": "autenticar", "data": {{"token": "{key}"}}}}')
        await receive_until(socket, lambda m: '"autenticado"' in m)
        revoked = await http.delete(f"{a.url}/api-keys/{created['id']}", headers=auth)
        assert revoked.status_code == 204
        assert (await http.get(b.url + "/accounts/me", headers=as_key)).status_code == 401
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive_until(socket, lambda m: False)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.services
async def test_concurrent_confirmations_over_both_credit_once(cluster, http) -> None:
    _, auth = await merchant(http, cluster[0])
    payment = await call(http, cluster[1], "/payments/pix", auth, value="321.09")
    answers = await asyncio.gather(*(confirm(http, cluster[n % 2], payment) for n in range(50)))
    assert [r.status_code for r in answers] == [200] * 50, {r.text for r in answers}
    assert {r.json()["status"] for r in answers} == {"paid"}
    assert len({r.json()["paid_at"] for r in answers}) == 1
    for server in cluster:
        assert (await call(http, server, "/accounts/me", auth))["balance"] == "321.09"
    received = await movements(http, cluster[0], auth, kind="pix_recebido")
    assert [m["amount"] for m in received] == ["321.09"]


@pytest.mark.services
async def test_concurrent_withdrawals_over_both_never_overdraw(cluster, http) -> None:
    _, auth = await merchant(http, cluster[0])
    await call(http, cluster[1], "/accounts/me/deposits", auth, value="100.00")
    url, body = "/accounts/me/withdrawals", {"value": "100.00"}
    withdrawals = (http.post(cluster[n % 2].url + url, json=body, headers=auth) for n in range(40))
    answers = await asyncio.gather(*withdrawals)
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [422] * 39, {r.text for r in answers}
    for server in cluster:
        assert (await call(http, server, "/accounts/me", auth))["balance"] == "0.00"


@pytest.mark.services
async def test_opposite_transfers_over_both_do_not_deadlock(cluster, http) -> None:
    a, b = cluster
    (x_email, x_auth), (y_email, y_auth) = await merchant(http, a), await merchant(http, b)
    await call(http, a, "/accounts/me/deposits", x_auth, value="1000.00")
    await call(http, b, "/accounts/me/deposits", y_auth, value="1000.00")
    path, one = "/accounts/me/transfers", {"value": "1.00"}
    x_to_y = [a.url + path, {**one, "to_email": y_email}, x_auth]
    y_to_x = [b.url + path, {**one, "to_email": x_email}, y_auth]
    sends = [http.post(url, json=body, headers=auth) for url, body, auth in [x_to_y, y_to_x] * 30]
    answers = await asyncio.wait_for(asyncio.gather(*sends), 30)
    assert [r.status_code for r in answers] == [201] * 60, {r.text for r in answers}
    for auth in (x_auth, y_auth):
        assert (await call(http, a, "/accounts/me", auth))["balance"] == "1000.00"
        ledger = await movements(http, b, auth)
        assert len(ledger) == 61
        assert sum(Decimal(m["amount"]) for m in ledger) == Decimal("1000.00")


@contextmanager
def pixweb(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`pixweb ARGS` in its own process group, which is killed whole if still running."""
    command = [sys.executable, "-m", "pixweb.cli", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@pytest.mark.parametrize(
    ("database", "broker", "named"),
    [
        ("postgres://postgres@127.0.0.1:1/none", "memory://", "redis"),
        ("sqlite://{tmp}/one.sqlite3", "redis://127.0.0.1:1/0", "postgres"),
    ],
)
def test_several_workers_refuse_single_process_backends(tmp_path, database, broker, named) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXWEB_")}
    env |= {f"PIXWEB_{name.upper()}": value for name, value in PRODUCTION.items()}
    env["PIXWEB_BROKER_URL"] = broker
    env["PIXWEB_DATABASE_URL"] = database.format(tmp=tmp_path)
    log = tmp_path / "serve.log"
    with pixweb(["serve", "--port", str(free_port()), "--workers", "2"], env, log) as process:
        try:
            process.wait(STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"started anyway:\n{log.read_text()}")
    output = log.read_text()
    assert process.returncode != 0 and "listening" not in output, output
    assert named in output.lower() and "--workers" in output, output


def worker_pids(pid: int) -> list[str]:
    """The spawned workers among `pid`'s children (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.services
async def test_two_workers_on_postgres_and_redis_serve(cluster, http, tmp_path) -> None:
    a, _ = cluster
    env, port = {**a._env(), "PIXWEB_INSTANCE_PATH": str(tmp_path / "instance")}, free_port()
    args = ["serve", "--port", str(port), "--workers", "2"]
    with pixweb(args, env, tmp_path / "workers.log") as process:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}")
        assert len(worker_pids(process.pid)) == 2
        _, auth = await merchant(http, a)
        payment = await call(http, a, "/payments/pix", auth, value="5.00")
        # Payer sockets spread over both workers (the kernel picks); every one sees it paid.
        url = f"ws://127.0.0.1:{port}/ws/payments/{payment['id']}"
        sockets: list[Any] = []
        try:
            for _ in range(4):
                sockets.append(await websockets.connect(url))
            for socket in sockets:
                await receive_until(socket, lambda m: 'data-status="pending"' in m)
            assert (await confirm(http, a, payment)).status_code == 200
            for socket in sockets:
                await receive_until(socket, lambda m: 'data-status="paid"' in m)
        finally:
            for socket in sockets:
                await socket.close()
        process.terminate()  # the parent tells both workers to stop, and waits for them
        assert await asyncio.to_thread(process.wait, 15) == 0
