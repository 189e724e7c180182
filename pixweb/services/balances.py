"""The balance change of the ledger, in raw SQL: the one statement pixweb writes by hand.

Issue 13: every movement changes a balance and needs the balance it left. Tortoise's
UPDATE cannot return it, so each movement read the account back (and callers read it
first to learn its id): two SELECTs around every UPDATE on the hottest path of the money
(a confirmation). `UPDATE ... RETURNING` (SQLite >= 3.35, PostgreSQL) does it in one
statement, in the caller's transaction. Only `ledger` calls this module; its tests run
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Literal

from tortoise.connection import get_connection

_SQL = (
    "UPDATE account SET balance_cents = balance_cents + {amount}"
    " WHERE {column} = {key}{floor} RETURNING id, merchant_id, balance_cents"
)


def _statement(column: str, debit: bool, postgres: bool) -> str:
    marks = ("$1", "$2", "$3") if postgres else ("?", "?", "?")
    floor = f" AND balance_cents >= {marks[2]}" if debit else ""
    return _SQL.format(amount=marks[0], column=column, key=marks[1], floor=floor)


async def add(
    column: Literal["id", "merchant_id"], key: int, amount_cents: int
) -> tuple[int, int, int] | None:
    """Add a signed amount to the account whose `column` is `key`, unless it is a debit
    that would overdraw: (account id, merchant id, new balance), or None if nothing changed.

    Must run inside the caller's transaction (the connection `in_transaction` set)."""
    connection = get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"
    debit = amount_cents < 0
    values = [amount_cents, key, -amount_cents] if debit else [amount_cents, key]
    # execute_query_dict: Tortoise's execute_query drops the rows of an UPDATE on asyncpg.
    rows = await connection.execute_query_dict(_statement(column, debit, postgres), values)
    if not rows:
        return None
    row = rows[0]
    return int(row["id"]), int(row["merchant_id"]), int(row["balance_cents"])
