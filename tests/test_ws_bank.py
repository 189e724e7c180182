"""`/ws`: the second seed's JSON protocol (autenticar, solicitar_saldo, room pushes)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client

from pixweb import money
from pixweb.broker import QUEUE_SIZE
from pixweb.config import Config
from pixweb.models import Merchant
from pixweb.services import merchants
from pixweb.services.clock import utcnow
from pixweb.services.events import account_channel
from tests.conftest import bearer, make_merchant

Socket = Any
KINDS = ("deposito", "saque", "transferencia", "pagamento", "confirmacao")
EXACTLY_64_KIB = json.dumps({"event": "x", "data": {"pad": "y" * (64 * 1024 - 35)}})
SHAPE = 'Mensagem inválida: use {"event": ..., "data": {...}}'
GREETING = {"event": "conexao", "data": {"mensagem": "Conectado ao servidor WebSocket"}}


def token(merchant: Merchant, config: Config, *, secret: str = "", ttl: int = 300) -> str:
    return merchants.issue_token(merchant, secret=secret or config.secret_key, ttl_seconds=ttl)


def unsigned(merchant: Merchant) -> str:
    """An `alg: none` JWT for `merchant`: valid claims, no signature."""
    claims = {"sub": str(merchant.id), "exp": int(utcnow().timestamp()) + 300}
    parts = ({"alg": "none", "typ": "JWT"}, claims)
    encoded = (base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in parts)
    return b".".join(encoded).decode() + "."


def erro(message: str) -> dict[str, Any]:
    return {"event": "erro", "data": {"mensagem": message}}


async def receive(socket: Socket, within: float = 2.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(socket.receive(), within)))


async def nothing_more(socket: Socket, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(socket.receive(), wait)


async def closed_with(socket: Socket, within: float = 2.0) -> int:
    """Read until the server closes; return the close code."""
    with pytest.raises(WebsocketDisconnectError) as closed:
        while True:
            await asyncio.wait_for(socket.receive(), within)
    return int(closed.value.args[0])


async def send(socket: Socket, event: str, **data: Any) -> dict[str, Any]:
    await socket.send(json.dumps({"event": event, "data": data}))
    return await receive(socket)


@asynccontextmanager
async def joined(client: Client, merchant: Merchant, config: Config) -> AsyncIterator[Socket]:
    """A socket past the greeting, authenticated as `merchant`."""
    async with client.websocket("/ws") as socket:
        assert await receive(socket) == GREETING
        answer = await send(socket, "autenticar", token=token(merchant, config))
        assert answer["event"] == "autenticado", answer
        yield socket


async def api(client: Client, path: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), await response.get_data()
    return dict(await response.get_json())


async def deposit(client: Client, headers: dict[str, str], value: str = "100.00") -> None:
    await api(client, "/accounts/me/deposits", headers, value=value)


def balance(account: int, saldo: str) -> dict[str, Any]:
    return {"CorrentistaID": account, "NomeCorrentista": "Padaria São João", "Saldo": saldo}


async def account_id(client: Client, headers: dict[str, str]) -> int:
    return int((await (await client.get("/accounts/me", headers=headers)).get_json())["id"])


async def test_greets_then_authenticates_and_pushes_every_movement(
    client: Client, merchant: Merchant, config: Config, auth: dict[str, str]
) -> None:
    async with client.websocket("/ws") as socket:
        assert await receive(socket) == GREETING
        answer = await send(socket, "autenticar", token=token(merchant, config))
        welcome = {"mensagem": "Autenticado com sucesso", "usuario_id": merchant.id}
        assert answer == {"event": "autenticado", "data": {**welcome, "email": merchant.email}}
        await deposit(client, auth, "100.00")
        notice = await receive(socket)
        assert notice["event"] == "notificacao"
        tipo, mensagem, timestamp, dados = notice["data"].values()
        assert (tipo, mensagem) == ("deposito", "Depósito de R$ 100,00 realizado")
        assert dados["valor"] == "100.00" and timestamp.startswith(str(utcnow().year))
        assert await receive(socket) == {
            "event": "saldo_atualizado",
            "data": balance(await account_id(client, auth), "100.00"),
        }
        await nothing_more(socket)


@pytest.fixture
def slow_subscriptions(broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Subscribing takes a while, as a round trip to Redis does."""
    subscribe = broker.subscribe

    @asynccontextmanager
    async def slow_subscribe(channel: str) -> AsyncIterator[Any]:
        await asyncio.sleep(0.2)
        async with subscribe(channel) as events:
            yield events

    monkeypatch.setattr(broker, "subscribe", slow_subscribe)


@pytest.mark.usefixtures("slow_subscriptions")
async def test_joins_the_room_before_answering_autenticado(
    client: Client, merchant: Merchant, config: Config, auth: dict[str, str]
) -> None:
    """A movement right after `autenticado` reaches the socket: it said it had joined."""
    async with joined(client, merchant, config) as socket:
        await deposit(client, auth, "1.00")  # no pause: the client trusts `autenticado`
        assert (await receive(socket))["event"] == "notificacao"


BAD_TOKENS = {
    "garbage": lambda m, c: "not-a-jwt",
    "expired": lambda m, c: token(m, c, ttl=-60),
    "other secret": lambda m, c: token(m, c, secret="someone-elses-secret-0123456789abcdef"),
    "alg none": lambda m, c: unsigned(m),
    "unknown merchant": lambda m, c: token(Merchant(id=987654), c),
    "empty": lambda m, c: "",
    "not a string": lambda m, c: 42,
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_tokens_get_erro_and_no_room(
    client: Client, merchant: Merchant, config: Config, auth: dict[str, str], kind: str
) -> None:
    bad = BAD_TOKENS[kind](merchant, config)
    missing = not isinstance(bad, str) or not bad
    async with client.websocket("/ws") as socket:
        await receive(socket)
        answer = await send(socket, "autenticar", token=bad)
        assert answer == erro("Token ausente" if missing else "Token inválido ou expirado")
        own = await account_id(client, auth)
        balance = await send(socket, "solicitar_saldo", token=bad, correntista_id=own)
        assert balance["event"] == "erro"  # verified on this event too
        await deposit(client, auth)
        await nothing_more(socket, 0.3)


async def test_solicitar_saldo_answers_only_for_the_tokens_own_account(
    client: Client, merchant: Merchant, config: Config, auth: dict[str, str]
) -> None:
    other = await make_merchant("outra@example.com", name="Mercado Boa Vista")
    await deposit(client, auth, "100.00")
    mine, theirs = await account_id(client, auth), await account_id(client, bearer(other, config))
    async with client.websocket("/ws") as socket:
        await receive(socket)
        answer = await send(
            socket, "solicitar_saldo", token=token(merchant, config), correntista_id=mine
        )
        assert answer == {"event": "saldo_atualizado", "data": balance(mine, "100.00")}
        for requested in (theirs, str(mine), None):
            refused = await send(
                socket, "solicitar_saldo", token=token(merchant, config), correntista_id=requested
            )
            assert refused == erro("Acesso negado a esta conta")
        # solicitar_saldo alone joins no room
        await deposit(client, auth, "1.00")
        await nothing_more(socket)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("{not json", "Mensagem inválida: envie JSON"),
        (b"\xff\xfe", "Mensagem inválida: envie JSON"),
        ("[1, 2]", SHAPE),
        ('"autenticar"', SHAPE),
        ('{"event": "autenticar", "data": [1]}', SHAPE),
        ('{"event": "transferir", "data": {}}', "Evento desconhecido: transferir"),
        ('{"data": {}}', "Evento desconhecido: None"),
        (EXACTLY_64_KIB, "Evento desconhecido: x"),  # the limit itself is allowed
    ],
    ids=["not-json", "not-utf8", "array", "string", "data-array", "unknown", "no-event", "64KiB"],
)
async def test_malformed_messages_get_erro_and_the_socket_stays(
    client: Client, merchant: Merchant, config: Config, frame: str | bytes, message: str
) -> None:
    async with client.websocket("/ws") as socket:
        await receive(socket)
        await socket.send(frame)
        assert await receive(socket) == erro(message)
        answer = await send(socket, "autenticar", token=token(merchant, config))
        assert answer["event"] == "autenticado"


@pytest.mark.parametrize(
    "frame",
    # The last one: 80 KiB of UTF-8 in 40 Ki characters (the limit is in bytes).
    ["x" * (64 * 1024 + 1), b"x" * (64 * 1024 + 1), "é" * (40 * 1024)],
    ids=["text", "bytes", "multibyte-text"],
)
async def test_frames_over_64_kib_close_1009(client: Client, frame: str | bytes) -> None:
    async with client.websocket("/ws") as socket:
        await receive(socket)
        await socket.send(frame)
        assert await closed_with(socket) == 1009


async def test_a_flood_is_refused_then_closed_1008(client: Client) -> None:
    """Token bucket of 20: the rest get "Muitas mensagens"; past 50 refusals, close 1008."""
    async with client.websocket("/ws") as socket:
        await receive(socket)
        for _ in range(200):
            await socket.send(json.dumps({"event": "ping", "data": {}}))
        answers: list[str] = []
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                answers.append((await receive(socket))["data"]["mensagem"])
    assert closed.value.args[0] == 1008
    assert answers[:20] == ["Evento desconhecido: ping"] * 20
    refused = [a for a in answers if a.startswith("Muitas mensagens")]
    assert len(refused) == 50
    assert len(answers) < 200  # the rest of the flood was never read


async def test_messages_at_a_calm_pace_are_all_answered(client: Client) -> None:
    async with client.websocket("/ws") as socket:
        await receive(socket)
        for _ in range(30):  # more than the bucket's 20: the refill is what serves them
            assert (await send(socket, "ping"))["data"]["mensagem"] == "Evento desconhecido: ping"
            await asyncio.sleep(0.05)


async def test_a_room_that_falls_behind_closes_the_socket_1013(
    client: Client, merchant: Merchant, config: Config, broker: Any
) -> None:
    """A dropped subscription must not leave a socket open that silently gets nothing more."""
    async with joined(client, merchant, config) as socket:  # in the room: subscribed
        for _ in range(QUEUE_SIZE + 1):  # no await yields in between: the queue overflows
            await broker.publish(account_channel(merchant.id), {"type": "noise"})
        assert await closed_with(socket) == 1013


class TestAuthenticationTimeout:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"extra": {"PIXWEB_WS_AUTH_TIMEOUT": 0.3}}

    async def test_a_silent_unauthenticated_socket_is_closed_1008(self, client: Client) -> None:
        async with client.websocket("/ws") as socket:
            assert await receive(socket) == GREETING
            assert await closed_with(socket) == 1008

    async def test_an_authenticated_socket_may_stay_silent(
        self, client: Client, merchant: Merchant, config: Config, auth: dict[str, str]
    ) -> None:
        async with joined(client, merchant, config) as socket:
            await asyncio.sleep(0.6)
            await deposit(client, auth)
            assert (await receive(socket))["event"] == "notificacao"
            assert (await receive(socket))["event"] == "saldo_atualizado"


OPERATIONS = [(actor, kind) for _ in range(2) for kind in KINDS for actor in "AB"]


async def operate(
    client: Client, sign: Any, who: dict[str, Any], actor: str, kind: str, cents: int
) -> list[tuple[str, str, int]]:
    """Run one operation of `actor` through the API; return its movements (who, tipo, cents).

    `who` maps "A" and "B" to (bearer headers, e-mail)."""
    other = "B" if actor == "A" else "A"
    (mine, _), (theirs, their_email) = who[actor], who[other]
    value = money.format_amount(cents)
    if kind == "deposito":
        await deposit(client, mine, value)
        return [(actor, "deposito", cents)]
    if kind == "saque":
        await api(client, "/accounts/me/withdrawals", mine, value=value)
        return [(actor, "saque", -cents)]
    if kind == "transferencia":
        await api(client, "/accounts/me/transfers", mine, value=value, to_email=their_email)
        return [(actor, "transferencia_enviada", -cents), (other, "transferencia_recebida", cents)]
    if kind == "pagamento":  # the actor pays the other's charge
        charge = await api(client, "/payments/pix", theirs, value=value)
        await api(client, "/accounts/me/payments", mine, brcode=charge["brcode"])
        return [(actor, "pagamento", -cents), (other, "pix_recebido", cents)]
    charge = await api(client, "/payments/pix", mine, value=value)  # the bank confirms it
    body, headers = sign({"bank_payment_id": charge["bank_payment_id"], "value": value})
    confirmed = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    assert confirmed.status_code == 200
    return [(actor, "pix_recebido", cents)]


async def test_each_room_gets_exactly_its_own_movements_across_interleaved_operations(
    client: Client, merchant: Merchant, config: Config, sign: Any
) -> None:
    people = {"A": merchant, "B": await make_merchant("b@example.com", name="Mercado Boa Vista")}
    who = {name: (bearer(m, config), m.email) for name, m in people.items()}
    for headers, _ in who.values():
        await deposit(client, headers, "1000.00")
    balances = {"A": 100000, "B": 100000}
    expected: dict[str, list[tuple[str, str, str]]] = {"A": [], "B": []}
    async with joined(client, people["A"], config) as a, joined(client, people["B"], config) as b:
        for n, (actor, kind) in enumerate(OPERATIONS):
            for name, tipo, cents in await operate(client, sign, who, actor, kind, 101 * n + 100):
                balances[name] += cents
                amounts = (abs(cents), balances[name])
                expected[name].append((tipo, *map(money.format_amount, amounts)))
        for name, socket in (("A", a), ("B", b)):
            received = []
            for _ in expected[name]:
                notice, balance = await receive(socket), await receive(socket)
                assert (notice["event"], balance["event"]) == ("notificacao", "saldo_atualizado")
                assert balance["data"]["NomeCorrentista"] == people[name].name
                data = notice["data"]
                received.append((data["tipo"], data["dados"]["valor"], balance["data"]["Saldo"]))
            assert received == expected[name]
            await nothing_more(socket)


async def test_authenticating_again_moves_the_socket_to_the_new_room(
    client: Client, merchant: Merchant, config: Config, auth: dict[str, str]
) -> None:
    other = await make_merchant("b@example.com", name="Mercado Boa Vista")
    async with joined(client, merchant, config) as socket:
        answer = await send(socket, "autenticar", token=token(other, config))
        assert answer["data"]["usuario_id"] == other.id
        await deposit(client, auth)
        await nothing_more(socket)
        await deposit(client, bearer(other, config), "2.00")
        assert (await receive(socket))["data"]["dados"]["valor"] == "2.00"


class TestAuthDeadline:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"extra": {"PIXWEB_WS_AUTH_TIMEOUT": 0.5}}

    async def test_chatter_does_not_extend_the_authentication_deadline(
        self, client: Client
    ) -> None:
        async with client.websocket("/ws") as socket:
            await asyncio.wait_for(socket.receive(), 2)  # conexao
            with pytest.raises(WebsocketDisconnectError) as closed:
                for _ in range(20):  # about 2 s of unknown events, four times the deadline
                    await socket.send(json.dumps({"event": "ping", "data": {}}))
                    with contextlib.suppress(TimeoutError):
                        while True:  # read the erro answers until a pause
                            await asyncio.wait_for(socket.receive(), 0.1)
        assert closed.value.args[0] == 1008
