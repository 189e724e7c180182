"""CSV exports: GET /payments.csv and /accounts/me/movements.csv (and the dashboard's downloads).

Columns, BOM and accents, decimal comma, the JSON lists' filters, the formula guard, and a
100,000-movement file streamed with bounded memory.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixweb.models import Account, Movement, MovementKind, Payment, PaymentStatus
from pixweb.services import exports
from tests.api.test_accounts import moved
from tests.api.test_payments import PAST, assert_error, create
from tests.conftest import bearer, make_merchant

BOM = "\ufeff".encode()
E2E = "E12345678202405011200abcdefghijk"


async def download(client: Any, path: str, headers: dict[str, str]) -> tuple[Any, bytes]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, await response.get_data()
    return response, await response.get_data()


def rows(body: bytes) -> list[list[str]]:
    assert body.startswith(BOM)
    return list(csv.reader(io.StringIO(body[len(BOM) :].decode("utf-8")), delimiter=";"))


def as_dicts(body: bytes) -> list[dict[str, str]]:
    header, *lines = rows(body)
    return [dict(zip(header, line, strict=True)) for line in lines]


async def test_payments_csv_columns_encoding_and_decimal_comma(client, auth) -> None:
    first = await create(client, auth, value="1234.56", description="Pão de queijo ção")
    second = await create(client, auth, value="0.05")
    paid_at = datetime(2024, 5, 1, 15, 30, 5, tzinfo=UTC)
    await Payment.filter(id=first["id"]).update(
        status=PaymentStatus.PAID, paid_at=paid_at, end_to_end_id=E2E, refunded_cents=1000
    )
    response, body = await download(client, "/payments.csv", auth)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    assert body.startswith(BOM + b"id;criada_em;descricao;valor;status;txid;pago_em;")
    assert "Pão de queijo ção".encode() in body  # UTF-8, not Latin-1
    header, *lines = rows(body)
    assert tuple(header) == exports.PAYMENT_COLUMNS
    newest, oldest = as_dicts(body)
    assert [newest["id"], oldest["id"]] == [second["id"], first["id"]]
    assert oldest["valor"] == "1234,56" and newest["valor"] == "0,05"
    assert oldest["valor_devolvido"] == "10,00"
    assert oldest["status"] == "paid" and oldest["end_to_end_id"] == E2E
    assert oldest["pago_em"] == "01/05/2024 12:30:05"  # Brasília time (UTC-3)
    assert oldest["txid"] == first["bank_payment_id"]
    assert newest["pago_em"] == "" and newest["descricao"] == ""
    created = datetime.fromisoformat(first["created_at"])
    assert oldest["criada_em"] == exports.local_datetime(created)
    assert body.count(b"\r\n") == 3


async def test_payments_csv_status_filter_matches_the_json_list(client, auth) -> None:
    pending, paid, cancelled, expired = [(await create(client, auth))["id"] for _ in range(4)]
    await Payment.filter(id=paid).update(status=PaymentStatus.PAID, paid_at=datetime.now(UTC))
    await Payment.filter(id=cancelled).update(status=PaymentStatus.CANCELLED)
    await Payment.filter(id=expired).update(expires_at=PAST)
    for status in ("pending", "paid", "cancelled", "expired"):
        listed = await (await client.get(f"/payments?status={status}", headers=auth)).get_json()
        _, body = await download(client, f"/payments.csv?status={status}", auth)
        exported = as_dicts(body)
        assert [row["id"] for row in exported] == [item["id"] for item in listed["items"]]
        assert [row["status"] for row in exported] == [status]
    _, body = await download(client, "/payments.csv", auth)
    assert {row["id"] for row in as_dicts(body)} == {pending, paid, cancelled, expired}
    await Payment.filter(id=paid).update(created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    await Payment.filter(id=pending).update(description="Bolo de fubá")
    queries = ["since=2024-06-01T00:00:00Z", "until=2024-06-01T00:00:00Z", "q=fub"]
    queries += ["status=paid&until=2024-05-02T00:00:00Z", "status=pending&q=nada"]
    for query in queries:
        listed = await (await client.get(f"/payments?{query}", headers=auth)).get_json()
        _, body = await download(client, f"/payments.csv?{query}", auth)
        exported = [row["id"] for row in as_dicts(body)]
        assert exported == [item["id"] for item in listed["items"]], query
    _, body = await download(client, "/payments.csv?until=2024-06-01T00:00:00Z", auth)
    assert [row["id"] for row in as_dicts(body)] == [paid]


async def test_movements_csv_filters_match_the_json_list(client, auth, merchant) -> None:
    await make_merchant("outra@example.com", name="Mercado Bom Preço", pix_key="outra@example.com")
    for value in ("1000.00", "20.50"):
        await moved(client, {**auth, "Idempotency-Key": value}, "deposits", value=value)
    await moved(client, auth, "withdrawals", value="3.25")
    await moved(client, auth, "transfers", value="7.00", description="Açaí")
    account = await Account.get(merchant_id=merchant.id)
    old = datetime(2024, 5, 1, 12, tzinfo=UTC)
    first = await Movement.filter(account_id=account.id).order_by("id").first()
    assert first is not None
    await Movement.filter(id=first.id).update(created_at=old)
    queries = [
        "",
        "kind=deposito",
        "kind=saque",
        "since=2024-06-01T00:00:00Z",
        "until=2024-06-01T00:00:00Z",
        "kind=deposito&since=2024-04-01T00:00:00Z&until=2024-05-02T00:00:00Z",
    ]
    for query in queries:
        response = await client.get(f"/accounts/me/movements?limit=100&{query}", headers=auth)
        listed = (await response.get_json())["items"]
        _, body = await download(client, f"/accounts/me/movements.csv?{query}", auth)
        exported = as_dicts(body)
        assert [int(row["id"]) for row in exported] == [item["id"] for item in listed], query
        for row, item in zip(exported, listed, strict=True):
            assert row["valor"] == item["amount"].replace(".", ",")
            assert row["saldo_apos"] == item["balance_after"].replace(".", ",")
            assert row["tipo"] == item["kind"]
    _, body = await download(client, "/accounts/me/movements.csv", auth)
    header, *_ = rows(body)
    assert tuple(header) == exports.MOVEMENT_COLUMNS
    by_kind = {row["tipo"]: row for row in as_dicts(body)}
    assert by_kind["saque"]["valor"] == "-3,25"  # an amount is a number, never guarded
    assert by_kind["transferencia_enviada"]["descricao"] == "Açaí"
    assert by_kind["transferencia_enviada"]["contraparte"] == "Mercado Bom Preço"
    dates = {int(row["id"]): row["data"] for row in as_dicts(body)}
    assert dates[first.id] == "01/05/2024 09:00:00"  # Brasília time (UTC-3)


@pytest.mark.parametrize("path", ["/payments", "/payments.csv"])
async def test_a_search_longer_than_a_txid_is_a_description_search(client, auth, path) -> None:
    text = "Bolo " + "0" * 135
    await create(client, auth, description=text)
    await create(client, auth, description="Outra")
    response = await client.get(f"{path}?q={text}", headers=auth)
    assert response.status_code == 200
    if path == "/payments":
        assert [i["description"] for i in (await response.get_json())["items"]] == [text]
    else:
        assert [row["descricao"] for row in as_dicts(await response.get_data())] == [text]


@pytest.mark.parametrize("text", ["=1+1", "+55 11", "-2", "@SUM(A1)", '=HYPERLINK("x";"y")'])
async def test_formula_cells_are_guarded(client, auth, text) -> None:
    await create(client, auth, description=text)
    _, body = await download(client, "/payments.csv", auth)
    (row,) = as_dicts(body)
    assert row["descricao"] == "'" + text


def test_text_cell_guards_tab_and_carriage_return() -> None:
    assert exports.text_cell("\tx") == "'\tx"
    assert exports.text_cell("\rx") == "'\rx"
    assert exports.text_cell("a=b") == "a=b"
    assert exports.text_cell(None) == ""


@pytest.mark.parametrize(
    ("path", "query"),
    [("/payments.csv", "status=bogus"), ("/accounts/me/movements.csv", "kind=bogus")]
    + [("/accounts/me/movements.csv", "since=yesterday")],
)
async def test_bad_query_is_refused(client, auth, path, query) -> None:
    response = await client.get(f"{path}?{query}", headers=auth)
    await assert_error(response, 400, "invalid_input", query.partition("=")[0])


@pytest.mark.parametrize("path", ["/payments.csv", "/accounts/me/movements.csv"])
async def test_export_needs_a_token(client, merchant, path) -> None:
    await assert_error(await client.get(path), 401, "unauthorized")


async def test_other_merchants_rows_are_not_exported(client, config, auth) -> None:
    other = bearer(await make_merchant("outra@example.com"), config)
    await create(client, other, description="alheia")
    await moved(client, other, "deposits", value="5.00")
    for path in ("/payments.csv", "/accounts/me/movements.csv"):
        _, body = await download(client, path, auth)
        assert len(rows(body)) == 1  # the header only


async def test_dashboard_downloads_use_the_session(client, merchant, auth) -> None:
    await create(client, auth, description="Bolo")
    for path in ("/dashboard/payments.csv", "/dashboard/movements.csv"):
        response = await client.get(path)
        assert response.status_code == 302  # not logged in: to the login page
    async with client.session_transaction() as session:
        session["merchant_id"] = merchant.id
        session["version"] = merchant.session_version
    page = await (await client.get("/dashboard")).get_data(as_text=True)
    assert page.count("Baixar CSV") == 2
    assert 'href="/dashboard/payments.csv"' in page and 'href="/dashboard/movements.csv"' in page
    _, body = await download(client, "/dashboard/payments.csv", {})
    assert [row["descricao"] for row in as_dicts(body)] == ["Bolo"]
    _, body = await download(client, "/dashboard/movements.csv", {})
    assert rows(body) == [list(exports.MOVEMENT_COLUMNS)]


async def add_movements(merchant_id: int, count: int) -> None:
    """Insert `count` movements fast (bulk), one a second, oldest first."""
    account = await Account.get(merchant_id=merchant_id)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    await Movement.bulk_create(
        [
            Movement(
                account_id=account.id,
                kind=MovementKind.DEPOSITO,
                amount_cents=100 + n,
                balance_after_cents=100 * (n + 1),
                description=f"Depósito nº {n}",
                created_at=start + timedelta(seconds=n),
            )
            for n in range(count)
        ],
        batch_size=5000,
    )


async def stream(client: Any, path: str, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body's chunks as the server sends them (the test client's `get` buffers it all)."""
    async with client.request(path, headers=headers) as connection:
        await connection.send_complete()
        while chunk := await connection.receive():
            yield chunk
        assert connection.status_code == 200


async def test_rows_are_read_a_page_at_a_time(merchant) -> None:
    # The generator itself (the test client queues a body without backpressure, so through it
    # the producer may run ahead): nothing past the first page is read before it is asked for.
    await add_movements(merchant.id, 5 * exports.PAGE_SIZE)
    body = exports.movements_csv(merchant.id)
    first = await anext(body)
    assert first.count(b"\r\n") == 1 + exports.PAGE_SIZE  # the header and the first page
    await Movement.filter(account_id=(await Account.get(merchant_id=merchant.id)).id).delete()
    assert [chunk async for chunk in body] == []  # rows deleted now are not sent


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_100000_movements_stream_with_bounded_memory(client, merchant, auth) -> None:
    count = 100_000
    await add_movements(merchant.id, count)
    size = lines = chunks = 0
    tracemalloc.start()
    try:
        async for chunk in stream(client, "/accounts/me/movements.csv", auth):
            size += len(chunk)
            lines += chunk.count(b"\r\n")
            chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == count + 1
    assert chunks == count // exports.PAGE_SIZE
    # The whole file is several megabytes (its rows as objects many times more): streaming
    # holds about one page of rows at a time.
    assert size > 5_000_000
    assert peak < size / 3, (peak, size)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_local_datetime_is_brasilia_time_day_first(moment: datetime) -> None:
    """Formatted field by field for speed: the same text as strftime, daylight saving time
    of the years Brazil had it included."""
    expected = moment.astimezone(exports.BRAZIL).strftime("%d/%m/%Y %H:%M:%S")
    assert exports.local_datetime(moment) == expected


def test_local_datetime_examples() -> None:
    assert (
        exports.local_datetime(datetime(2026, 11, 22, 17, 5, 9, tzinfo=UTC))
        == "22/11/2026 14:05:09"
    )
    # 2018-11-04: Brasília on daylight saving time (UTC-2) until February 2019.
    assert exports.local_datetime(datetime(2018, 12, 1, 12, 0, tzinfo=UTC)) == "01/12/2018 10:00:00"
    assert exports.local_datetime(None) == ""
