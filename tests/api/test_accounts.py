"""Account API: balance, deposits, withdrawals, transfers, idempotency and movement history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb.models import Account, Merchant, Movement
from pixweb.services import ledger
from tests.api.test_payments import JSON, assert_error
from tests.conftest import bearer, make_merchant

OTHER = "outra@example.com"
MOVES = ["deposits", "withdrawals", "transfers"]
SHAPE = ["kind", "amount", "balance_after", "reference", "counterpart"]


def pick(data: dict[str, Any], *keys: str) -> list[Any]:
    return [data[key] for key in keys]


async def move(client: Client, headers: dict[str, str], what: str, **body: Any) -> Any:
    """POST to /accounts/me/<what>; a transfer goes to OTHER unless told otherwise."""
    if what == "transfers":
        body.setdefault("to_email", OTHER)
    return await client.post(f"/accounts/me/{what}", json=body, headers=headers)


async def moved(client: Client, headers: dict[str, str], what: str, **body: Any) -> dict:
    """Make a movement that must succeed and return its JSON."""
    response = await move(client, headers, what, **body)
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


async def balance(merchant: Merchant) -> int:
    return (await Account.get(merchant_id=merchant.id)).balance_cents


async def movements(merchant: Merchant) -> list[Movement]:
    return await Movement.filter(account__merchant_id=merchant.id).order_by("id")


@pytest.fixture
async def other(app: Any) -> Merchant:
    return await make_merchant(OTHER, name="Mercado Bom Preço", pix_key=OTHER)


# --- balance, deposits, withdrawals, transfers -------------------------------------------


async def test_a_new_account_is_empty(client, merchant, auth) -> None:
    response = await client.get("/accounts/me", headers=auth)
    assert response.status_code == 200
    data = await response.get_json()
    account = await Account.get(merchant_id=merchant.id)
    expected = {"id": account.id, "merchant_id": merchant.id, "balance": "0.00"}
    assert {key: data[key] for key in expected} == expected
    assert (data["name"], data["email"]) == ("Padaria São João", "loja@example.com")
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None


@pytest.mark.parametrize(("value", "text"), [("100", "100.00"), (100, "100.00"), ("0.01", "0.01")])
async def test_deposit_then_withdrawal(client, merchant, auth, value, text) -> None:
    deposit = await moved(client, auth, "deposits", value=value)
    assert pick(deposit, *SHAPE) == ["deposito", text, text, None, None]
    withdrawal = await moved(client, auth, "withdrawals", value=value)
    assert pick(withdrawal, *SHAPE) == ["saque", f"-{text}", "0.00", None, None]
    assert [m.id for m in await movements(merchant)] == [deposit["id"], withdrawal["id"]]
    assert (await (await client.get("/accounts/me", headers=auth)).get_json())["balance"] == "0.00"


@pytest.mark.parametrize("to_email", [OTHER, "OUTRA@Example.COM", f" {OTHER} "])
async def test_transfer_moves_money_to_the_other_merchant(
    client, merchant, auth, other, to_email
) -> None:
    await moved(client, auth, "deposits", value="100.00")
    sent = await moved(
        client, auth, "transfers", value="30.00", to_email=to_email, description="Aluguel"
    )
    expected = ["transferencia_enviada", "-30.00", "70.00", "Mercado Bom Preço", "Aluguel"]
    assert pick(sent, "kind", "amount", "balance_after", "counterpart", "description") == expected
    [received] = [ledger.movement_dict(m) for m in await movements(other)]
    expected = ["transferencia_recebida", "30.00", "30.00", sent["reference"], "Padaria São João"]
    assert pick(received, *SHAPE) == expected and received["description"] == "Aluguel"
    assert (await balance(merchant), await balance(other)) == (7000, 3000)


@pytest.mark.parametrize("what", ["withdrawals", "transfers"])
@pytest.mark.parametrize(("funds", "value"), [(None, "0.01"), ("50.00", "50.01")])
async def test_overdraft_is_refused(client, merchant, auth, other, what, funds, value) -> None:
    if funds:
        await moved(client, auth, "deposits", value=funds)
    before = await movements(merchant)
    response = await move(client, auth, what, value=value)
    await assert_error(response, 422, "insufficient_funds", "value")
    assert await movements(merchant) == before and await movements(other) == []
    assert (await balance(merchant), await balance(other)) == (5000 if funds else 0, 0)


@pytest.mark.parametrize(
    ("to_email", "status", "code"),
    [
        ("ninguem@example.com", 404, "not_found"),
        ("loja@example.com", 422, "unprocessable"),
        ("LOJA@Example.com", 422, "unprocessable"),
        ("not-an-email", 400, "invalid_input"),
        ("", 400, "invalid_input"),
    ],
)
async def test_transfer_needs_another_known_merchant(
    client, merchant, auth, to_email, status, code
) -> None:
    await moved(client, auth, "deposits", value="10.00")
    response = await move(client, auth, "transfers", value="1.00", to_email=to_email)
    await assert_error(response, status, code, "to_email")
    assert len(await movements(merchant)) == 1 and await balance(merchant) == 1000


BAD_VALUES = [b"0", b"-1", b"1.001", b'"1e3"', b"true", b"null", b"1000000.01", b"NaN"]
BAD_VALUES += [b'"100,00"', b"[]"]


@pytest.mark.parametrize("what", MOVES)
@pytest.mark.parametrize("value", BAD_VALUES)
async def test_bad_value_is_refused(client, merchant, auth, other, what, value) -> None:
    await moved(client, auth, "deposits", value="10.00")
    extra = b', "to_email": "outra@example.com"' if what == "transfers" else b""
    body = b'{"value": ' + value + extra + b"}"
    response = await client.post(f"/accounts/me/{what}", data=body, headers={**JSON, **auth})
    await assert_error(response, 400, "invalid_input", "value")
    assert len(await movements(merchant)) == 1 and await movements(other) == []


@pytest.mark.parametrize(
    ("what", "body", "field"),
    [
        ("deposits", {}, "value"),
        ("deposits", {"value": "1.00", "extra": 1}, "extra"),
        ("transfers", {"value": "1.00"}, "to_email"),
        (
            "transfers",
            {"value": "1.00", "to_email": OTHER, "description": "x" * 141},
            "description",
        ),
        ("payments", {}, "brcode"),
        ("payments", {"brcode": ""}, "brcode"),
        ("payments", {"brcode": 42}, "brcode"),
    ],
)
async def test_bad_field_is_refused(client, merchant, auth, other, what, body, field) -> None:
    response = await client.post(f"/accounts/me/{what}", json=body, headers=auth)
    await assert_error(response, 400, "invalid_input", field)
    assert await Movement.all().count() == 0


ROUTES = [("GET", "/accounts/me"), ("GET", "/accounts/me/movements")]
ROUTES += [("POST", f"/accounts/me/{what}") for what in [*MOVES, "payments"]]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_every_route_needs_a_token(client, merchant, method, path, headers) -> None:
    body = {"value": "1.00", "to_email": OTHER, "brcode": "x"}
    response = await client.open(path, method=method, json=body, headers=headers)
    await assert_error(response, 401, "unauthorized")
    assert await Movement.all().count() == 0


# --- idempotency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("deposits", {"value": "10.01"}),
        ("withdrawals", {"value": "10.01"}),
        ("transfers", {"value": "10.01"}),
        ("transfers", {"description": "outra"}),
    ],
)
async def test_idempotency_key_replays_or_conflicts(
    client, merchant, auth, other, what, change
) -> None:
    await moved(client, auth, "deposits", value="100.00")
    headers, body = {**auth, "Idempotency-Key": "k1"}, {"value": "10.00", "description": "x"}
    if what != "transfers":
        del body["description"]
    first = await moved(client, headers, what, **body)
    again = await move(client, headers, what, **body)
    assert again.status_code == 200 and await again.get_json() == first
    state = (await movements(merchant), await balance(merchant), await balance(other))
    await assert_error(await move(client, headers, what, **{**body, **change}), 409, "conflict")
    other_route = "deposits" if what != "deposits" else "withdrawals"
    await assert_error(await move(client, headers, other_route, value="10.00"), 409, "conflict")
    assert (await movements(merchant), await balance(merchant), await balance(other)) == state
    assert await Movement.filter(idempotency_key="k1").count() == 1


async def test_idempotency_key_belongs_to_one_account(client, config, auth, other) -> None:
    first = await moved(client, {**auth, "Idempotency-Key": "k"}, "deposits", value="1.00")
    theirs = {**bearer(other, config), "Idempotency-Key": "k"}
    second = await moved(client, theirs, "deposits", value="1.00")
    assert first["id"] != second["id"]


@pytest.mark.parametrize("what", MOVES)
async def test_concurrent_requests_with_one_key_move_once(client, merchant, auth, other, what):
    await moved(client, auth, "deposits", value="10.00")
    headers = {**auth, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(move(client, headers, what, value="10.00") for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({(await r.get_json())["id"] for r in responses}) == 1
    assert len(await movements(merchant)) == 2
    assert await balance(merchant) == (2000 if what == "deposits" else 0)
    from tests.services.test_ledger import assert_ledger_invariants  # it imports this module

    await assert_ledger_invariants()


# --- movement history ---------------------------------------------------------------------


async def history(client: Client, headers: dict[str, str], query: str = "") -> dict:
    response = await client.get(f"/accounts/me/movements?{query}", headers=headers)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def test_pages_visit_every_movement_once_newest_first(client, auth) -> None:
    ids = [(await moved(client, auth, "deposits", value=f"{n}.00"))["id"] for n in range(1, 8)]
    seen, query = [], "limit=3"
    while query:
        page = await history(client, auth, query)
        seen += [item["id"] for item in page["items"]]
        query = f"limit=3&before={page['next_before']}" if page["next_before"] else ""
    assert seen == ids[::-1]
    assert (await history(client, auth))["items"][0]["balance_after"] == "28.00"


async def test_filter_by_kind_and_date_range(client, auth) -> None:
    for n in (1, 2, 3):
        await moved(client, auth, "deposits", value="5.00")
        await moved(client, auth, "withdrawals", value="1.00")
        day = datetime(2024, 5, n, 12, tzinfo=UTC)
        await Movement.filter(created_at__gt=day).update(created_at=day)

    async def days(query: str) -> list[tuple[str, int]]:
        items = (await history(client, auth, query))["items"]
        return [(i["kind"], datetime.fromisoformat(i["created_at"]).day) for i in items]

    assert await days("kind=saque") == [("saque", 3), ("saque", 2), ("saque", 1)]
    deposits = [("deposito", 3), ("deposito", 2)]
    assert await days("kind=deposito&since=2024-05-02T00:00:00Z") == deposits
    second = [("saque", 2), ("deposito", 2)]
    assert await days("since=2024-05-02T00:00:00Z&until=2024-05-03T00:00:00Z") == second
    assert await days("until=2024-05-02T00:00:00Z&limit=1") == [("saque", 1)]
    assert await days("kind=pix_recebido") == []


async def test_another_merchants_movements_are_never_shown(client, config, auth, other) -> None:
    mine = await moved(client, auth, "deposits", value="50.00")
    theirs = bearer(other, config)
    await moved(client, theirs, "deposits", value="9.00")
    await moved(client, auth, "transfers", value="1.00")
    their_ids = {m.id for m in await movements(other)}
    own = await history(client, auth)
    assert their_ids.isdisjoint(item["id"] for item in own["items"]) and len(own["items"]) == 2
    after_theirs = await history(client, auth, f"before={max(their_ids) + 1}")
    assert after_theirs["items"] == own["items"]
    shown = (await history(client, theirs))["items"]
    assert [i["amount"] for i in shown] == ["1.00", "9.00"]
    assert mine["id"] not in {i["id"] for i in shown}


BAD_QUERIES = ["kind=foo", "kind=DEPOSITO", "limit=0", "limit=101", "limit=x", "before=0"]


@pytest.mark.parametrize("query", [*BAD_QUERIES, "since=ontem", "until=2024-13-01"])
async def test_bad_history_query_is_refused(client, auth, query) -> None:
    response = await client.get(f"/accounts/me/movements?{query}", headers=auth)
    await assert_error(response, 400, "invalid_input", query.split("=")[0])


@pytest.mark.parametrize(
    "query", ["since=2024-05-02T00:00:00", "until=2024-05-02", "before=99999999999999999999"]
)
async def test_odd_history_query_is_answered(client, auth, query) -> None:
    deposit = await moved(client, auth, "deposits", value="1.00")
    response = await client.get(f"/accounts/me/movements?{query}", headers=auth)
    if response.status_code == 400:  # refused, naming the parameter, or read as UTC
        await assert_error(response, 400, "invalid_input", query.split("=")[0])
    else:
        assert response.status_code == 200, await response.get_json()
        expected = [] if query.startswith("until") else [deposit["id"]]
        assert [item["id"] for item in (await response.get_json())["items"]] == expected


@pytest.mark.parametrize("what", ["deposits", "payments"])  # payments: body refused after
async def test_an_overlong_idempotency_key_is_refused(client, auth, what) -> None:
    headers = {**auth, "Idempotency-Key": "k" * 256}
    body = {"value": "1.00"} if what == "deposits" else {"brcode": "x"}
    response = await move(client, headers, what, **body)
    await assert_error(response, 400, "invalid_input")
    assert await Movement.all().count() == 0
