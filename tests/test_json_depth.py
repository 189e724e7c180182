"""Deeply nested JSON, in request bodies and socket messages: refused cleanly, never a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb import jsonload
from pixweb.jsonload import MAX_DEPTH, TooDeepError

JSON = {"Content-Type": "application/json"}
DEPTHS = [MAX_DEPTH + 1, 900, 10_000]  # 10,000 objects deep is ~60 KiB: under the body limit


def arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def inside(field: str, nested: str) -> str:
    """A body whose `field` holds the nested value (the rest looks like a real request)."""
    return (
        json.dumps({"email": "loja@example.com", "password": "x" * 10, "value": "1.00"})[:-1]
        + f', "{field}": {nested}}}'
    )


def bodies(depth: int) -> dict[str, str]:
    return {
        "arrays": arrays(depth),
        "objects": objects(depth),
        "in a field": inside("extra", objects(depth)),
        "in a known field": inside("bank_payment_id", arrays(depth)),
    }


CASES = [
    *(
        pytest.param(body, id=f"{depth}-{name}")
        for depth in DEPTHS
        for name, body in bodies(depth).items()
    ),
    pytest.param(arrays(30_000), id="30000-arrays"),  # as deep as 64 KiB goes
]


def assert_too_deep(response: Any, body: dict[str, Any]) -> None:
    assert response.status_code == 400, body
    assert body["error"] == "invalid_body"
    assert str(MAX_DEPTH) in body["detail"]


# --- the loader ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, MAX_DEPTH])
def test_nesting_up_to_the_limit_loads(depth: int) -> None:
    assert jsonload.loads(arrays(depth)) is not None
    assert jsonload.loads(objects(depth).encode()) is not None


@pytest.mark.parametrize("depth", DEPTHS)
def test_deeper_nesting_is_refused(depth: int) -> None:
    for text in (arrays(depth), objects(depth), objects(depth).encode()):
        with pytest.raises(TooDeepError):
            jsonload.loads(text)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 1000, "b": ["{" * 1000, '\\"[[[['], "c": {"d": "]" * 9}})
    assert jsonload.loads(text)["a"] == "[" * 1000


def test_invalid_json_is_still_a_value_error() -> None:
    for text in ('{"a": "[[[[', "[" * 40 + '"' + "]" * 40, "nope"):
        with pytest.raises(ValueError):
            jsonload.loads(text)


def test_a_normal_body_is_not_noticeably_slower() -> None:
    """The check costs a microsecond or so a body (two `str.count`s); a request takes ~1 ms."""
    body = json.dumps({"value": "100.00", "description": "Pedido 42", "expires_in": 3600})
    rounds = 5_000

    def per_call(load: Any) -> float:
        runs = []
        for _ in range(5):  # the best of five: the machine may be busy with other work
            start = time.perf_counter()
            for _ in range(rounds):
                load(body)
            runs.append((time.perf_counter() - start) / rounds)
        return min(runs)

    overhead = per_call(jsonload.loads) - per_call(json.loads)
    assert overhead < 5e-6, f"{overhead * 1e6:.1f} µs a body"


# --- HTTP bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("body", CASES)
async def test_deep_body_before_authentication(client: Client, body: str) -> None:
    response = await client.post("/auth/login", data=body, headers=JSON)
    assert_too_deep(response, await response.get_json())


@pytest.mark.parametrize("body", CASES)
async def test_deep_body_after_authentication(
    client: Client, auth: dict[str, str], body: str
) -> None:
    response = await client.post("/accounts/me/deposits", data=body, headers={**auth, **JSON})
    assert_too_deep(response, await response.get_json())


@pytest.mark.parametrize("body", CASES)
async def test_deep_signed_confirmation(client: Client, sign: Any, body: str) -> None:
    data, headers = sign(body.encode())
    response = await client.post("/payments/pix/confirmation", data=data, headers=headers)
    assert_too_deep(response, await response.get_json())


async def test_deep_body_logs_no_error(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        response = await client.post("/auth/login", data=arrays(30_000), headers=JSON)
    assert response.status_code == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_nesting_at_the_limit_reaches_validation(client: Client) -> None:
    body = inside("extra", objects(MAX_DEPTH - 1))
    response = await client.post("/auth/login", data=body, headers=JSON)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_input"  # `extra` is not a field


# --- the JSON socket protocol -------------------------------------------------------------


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deep_socket_message_is_an_erro_event(client: Client, depth: int) -> None:
    async with client.websocket("/ws") as socket:
        await socket.receive()  # conexao
        await socket.send('{"event": "autenticar", "data": {"token": ' + arrays(depth) + "}}")
        await socket.send('{"event": "x", "data": ' + objects(depth) + "}")
        for _ in range(2):
            answer = json.loads(await asyncio.wait_for(socket.receive(), 2))
            assert answer["event"] == "erro"
            assert str(MAX_DEPTH) in answer["data"]["mensagem"]
        await socket.send(json.dumps({"event": "nada", "data": {}}))  # still serving
        answer = json.loads(await asyncio.wait_for(socket.receive(), 2))
        assert answer == {"event": "erro", "data": {"mensagem": "Evento desconhecido: nada"}}
