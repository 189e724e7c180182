"""The balance change of the ledger, in raw SQL (`sql` builds the hot path's others).

Issue 13: every movement changes a balance and needs the balance it left. Tortoise's
UPDATE cannot return it, so each movement read the account back (and callers read it
first to learn its id): two SELECTs around every UPDATE on the hottest path of the money
(a confirmation). `UPDATE ... RETURNING` (SQLite >= 3.35, PostgreSQL) does it in one
statement, in the caller's transaction. Only `ledger` calls this module; its tests run
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Literal

from pixweb.services import sql

_SQL = (
    "UPDATE account SET balance_cents = balance_cents + ?"
    " WHERE {column} = ?{floor} RETURNING id, merchant_id, balance_cents"
)


def add(
    column: Literal["id", "merchant_id"], key: int, amount_cents: int
) -> sql.Plan[tuple[int, int, int] | None]:
    """Add a signed amount to the account whose `column` is `key`, unless it is a debit
    that would overdraw: (account id, merchant id, new balance), or None if nothing changed.

    A step of the caller's plan, run inside its transaction."""
    debit = amount_cents < 0
    statement = _SQL.format(column=column, floor=" AND balance_cents >= ?" if debit else "")
    values = [amount_cents, key, -amount_cents] if debit else [amount_cents, key]
    rows = yield from sql.statement_plan(statement, values)
    if not rows:
        return None
    row = rows[0]
    return int(row["id"]), int(row["merchant_id"]), int(row["balance_cents"])
