"""The money path's hottest reads and conditional updates, with their SQL built once.

Issue 13 allows raw SQL on the hottest statements. Tortoise builds a query's SQL through
pypika at every call: about 0.2 ms of CPU for a one-row SELECT or a conditional UPDATE,
twice what running it through aiosqlite costs. A charge, a confirmation and a webhook
delivery each run several of them (the merchant's PSP connection and webhook endpoints,
the charge by txid, the charge's pending -> paid). Here each statement's text is built once
per shape and dialect, values are converted by the model's own fields (`to_db_value`, as
Tortoise converts them) and rows become instances as Tortoise's executor makes them
(`_init_from_db`), so what a read returns is what the equivalent QuerySet returns.
Conditions are equalities (None: IS NULL), `name__in` (a list) and `name__gt`, joined by AND.

Plans: a transaction of several statements is written as a generator that yields each
`Statement` and receives its answer (`*_plan` build the steps; `yield from` them). `run`
runs a plan in the caller's transaction, `run_in_transaction` in one of its own (or a
savepoint): on PostgreSQL one statement after another; on SQLite the whole plan, with its
BEGIN and COMMIT, in one hand-off to the thread aiosqlite runs SQLite on. Each
hand-off costs about 0.1 ms of CPU (a thread wake-up each way, and the event loop's
self-pipe), more than the statements themselves: a confirmation's six statements through
one call each took 2.0 ms of CPU, in one hand-off 0.3 ms (measured with aiosqlite alone).
A plan's Python code then runs on that thread, so it must not touch the event loop: it
builds rows, instances and outbox events, nothing else.

Every function uses the connection of the caller's transaction when there is one (the one
`in_transaction` set). Their tests run on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Literal, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model
from tortoise.transactions import in_transaction

M = TypeVar("M", bound=Model)
T = TypeVar("T")

_MARK = re.compile(r"\?")


def connection() -> tuple[BaseDBAsyncClient, bool]:
    """The caller's connection (its transaction's, inside one) and whether it is PostgreSQL."""
    client = get_connection("default")
    return client, client.capabilities.dialect == "postgres"


@lru_cache(maxsize=1024)
def for_dialect(sql: str, postgres: bool) -> str:
    """`sql` written with `?` marks, numbered `$1, $2...` for PostgreSQL (asyncpg); each
    statement's answer is kept, as its text is."""
    if not postgres:
        return sql
    numbers = iter(range(1, sql.count("?") + 1))
    return _MARK.sub(lambda _: f"${next(numbers)}", sql)


def _column(model: type[Model], name: str) -> str:
    return f'"{model._meta.fields_db_projection[name]}"'


def _where(model: type[Model], shape: tuple[tuple[str, int], ...]) -> str:
    """The WHERE clause for conditions of this shape: (key, how many values) each."""
    parts = []
    for key, count in shape:
        name, _, operator = key.partition("__")
        column = _column(model, name)
        if operator == "in":
            parts.append(f"{column} IN ({', '.join('?' * count)})" if count else "1 = 0")
        elif operator == "gt":
            parts.append(f"{column} > ?")
        elif operator:
            raise ValueError(f"unsupported condition: {key}")
        else:
            parts.append(f"{column} = ?" if count else f"{column} IS NULL")
    return " AND ".join(parts)


def _shape_and_values(
    model: type[Model], conditions: dict[str, Any]
) -> tuple[tuple[tuple[str, int], ...], list[Any]]:
    shape: list[tuple[str, int]] = []
    values: list[Any] = []
    for key, value in conditions.items():
        field = model._meta.fields_map[key.partition("__")[0]]
        if key.endswith("__in"):
            items = [field.to_db_value(item, model) for item in value]
            shape.append((key, len(items)))
            values.extend(items)
        elif value is None:
            shape.append((key, 0))
        else:
            shape.append((key, 1))
            values.append(field.to_db_value(value, model))
    return tuple(shape), values


@lru_cache(maxsize=1024)  # a shape per list length of an `__in`: bounded all the same
def _select_sql(
    model: type[Model], shape: tuple[tuple[str, int], ...], columns: tuple[str, ...], limit: bool
) -> str:
    listed = ", ".join(_column(model, name) for name in columns)
    sql = f'SELECT {listed} FROM "{model._meta.db_table}" WHERE {_where(model, shape)}'
    return sql + " LIMIT 1" if limit else sql


def select_plan(model: type[M], *, first: bool = False, **conditions: Any) -> Plan[list[M]]:
    """The model's rows meeting every condition, as instances (the first one only, asked)."""
    shape, values = _shape_and_values(model, conditions)
    columns = tuple(model._meta.fields_db_projection)
    rows = yield Statement(_select_sql(model, shape, columns, first), values)
    return [model._init_from_db(**row) for row in rows]  # as Tortoise's executor makes them


async def select(model: type[M], *, first: bool = False, **conditions: Any) -> list[M]:
    """`select_plan` on its own."""
    return await run(select_plan(model, first=first, **conditions))


async def get_or_none(model: type[M], **conditions: Any) -> M | None:
    """The one row meeting the conditions (a unique key's), or None."""
    rows = await select(model, first=True, **conditions)
    return rows[0] if rows else None


async def values(model: type[Model], name: str, **conditions: Any) -> list[Any]:
    """One field of the rows meeting the conditions, as the database holds it."""
    shape, params = _shape_and_values(model, conditions)
    rows = await run(statement_plan(_select_sql(model, shape, (name,), False), params))
    column = model._meta.fields_db_projection[name]
    return [row[column] for row in rows]


@lru_cache(maxsize=256)
def _update_sql(model: type[Model], changed: tuple[str, ...], shape: tuple[Any, ...]) -> str:
    assignments = ", ".join(f"{_column(model, name)} = ?" for name in changed)
    return f'UPDATE "{model._meta.db_table}" SET {assignments} WHERE {_where(model, shape)}'


def update_plan(model: type[Model], changes: dict[str, Any], **conditions: Any) -> Plan[int]:
    """Set `changes` on the rows meeting the conditions; how many rows changed."""
    fields = model._meta.fields_map
    params = [fields[name].to_db_value(value, model) for name, value in changes.items()]
    shape, where = _shape_and_values(model, conditions)
    text = _update_sql(model, tuple(changes), shape)
    count = yield Statement(text, params + where, returns="count")
    return int(count)


async def update(model: type[Model], changes: dict[str, Any], **conditions: Any) -> int:
    """`update_plan` on its own."""
    return await run(update_plan(model, changes, **conditions))


def insert_plan(model: type[M], **given: Any) -> Plan[M]:
    """Write one row, as `model.create(**given)` does, and return it as an instance.

    Fields not given take their default (called, when callable); each value is converted
    (and validated) by its field's `to_db_value`, as Tortoise converts them."""
    meta = model._meta
    if unknown := set(given) - set(meta.fields_db_projection):
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    row: dict[str, Any] = {}
    for name in _inserted_fields(model):
        field = meta.fields_map[name]
        if name in given:
            value = given[name]
        else:
            value = field.default() if callable(field.default) else field.default
        row[meta.fields_db_projection[name]] = field.to_db_value(value, model)
    made = yield Statement(_insert_sql(model), list(row.values()))
    if meta.generated_db_fields:  # the primary key the database chose
        row[meta.db_pk_column] = made[0][meta.db_pk_column]
    return model._init_from_db(**row)


@lru_cache(maxsize=64)
def _inserted_fields(model: type[Model]) -> tuple[str, ...]:
    fields = model._meta.fields_map
    return tuple(name for name in model._meta.fields_db_projection if not fields[name].generated)


@lru_cache(maxsize=64)
def _insert_sql(model: type[Model]) -> str:
    columns = ", ".join(_column(model, name) for name in _inserted_fields(model))
    marks = ", ".join("?" * len(_inserted_fields(model)))
    sql = f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({marks})'
    if model._meta.generated_db_fields:
        sql += f' RETURNING "{model._meta.db_pk_column}"'
    return sql


def statement_plan(text: str, values: Sequence[Any]) -> Plan[list[dict[str, Any]]]:
    """One statement written by hand (`?` marks): its rows."""
    rows: list[dict[str, Any]] = yield Statement(text, values)
    return rows


def savepoint_plan(plan: Plan[T]) -> Plan[T]:
    """`plan` as a step of its caller's plan that is all or nothing: an error it does not
    catch undoes what it wrote (and only that) before reaching the caller's plan, which
    may catch it and go on (a batch whose items each stand or fall alone)."""
    yield Statement("SAVEPOINT pixweb_step", ())
    try:
        result = yield from plan
    except Exception:
        yield Statement("ROLLBACK TO SAVEPOINT pixweb_step", ())
        yield Statement("RELEASE SAVEPOINT pixweb_step", ())
        raise
    yield Statement("RELEASE SAVEPOINT pixweb_step", ())
    return result


@dataclass(frozen=True, slots=True)
class Statement:
    """One step of a plan: its text with `?` marks and its values (converted already),
    and what the plan gets back: its rows (as dicts) or how many rows it changed."""

    text: str
    values: Sequence[Any]
    returns: Literal["rows", "count"] = "rows"


Plan = Generator[Statement, Any, T]


async def run(plan: Plan[T]) -> T:
    """Run a plan in the caller's transaction (or with each statement on its own outside
    one, as Tortoise would) and return what it returns."""
    return await _run(plan, own_transaction=False)


async def run_in_transaction(plan: Plan[T]) -> T:
    """Run a plan in a transaction of its own, or in a savepoint of the caller's: an error
    it does not catch undoes all it did, and only that. On SQLite the BEGIN (or SAVEPOINT),
    the statements and the COMMIT (or RELEASE, or the rollback) are one hand-off."""
    client, postgres = connection()
    if postgres:
        async with in_transaction():
            return await _run(plan, own_transaction=False)
    if isinstance(client, TransactionalDBClient):  # the caller's transaction: a savepoint
        return await _run(savepoint_plan(plan), own_transaction=False)
    return await _run(plan, own_transaction=True)


async def _run(plan: Plan[T], *, own_transaction: bool) -> T:
    client, postgres = connection()
    try:  # the plan's code up to its first statement: one that writes nothing costs no call
        statement = next(plan)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    if postgres:
        while True:
            try:
                answer = await _on_postgres(client, statement)
            except Exception as exc:  # Tortoise's own (IntegrityError...): into the plan
                step = partial(plan.throw, exc)
            else:
                step = partial(plan.send, answer)
            try:
                statement = step()
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
    async with client.acquire_connection() as sqlite:  # a transaction's, or the shared lock
        # aiosqlite runs a function on its SQLite thread through `_execute`, the way its own
        # execute_insert and execute_fetchall run there.
        result: T = await sqlite._execute(
            _on_sqlite_thread, sqlite._conn, plan, statement, own_transaction
        )
        return result


async def _on_postgres(client: BaseDBAsyncClient, statement: Statement) -> Any:
    text = for_dialect(statement.text, True)
    if statement.returns == "count":
        count, _ = await client.execute_query(text, list(statement.values))
        return count
    # execute_query_dict: Tortoise's execute_query drops the rows of an UPDATE on asyncpg.
    return await client.execute_query_dict(text, list(statement.values))


def _on_sqlite_thread(
    sqlite: sqlite3.Connection, plan: Plan[T], statement: Statement, own_transaction: bool
) -> T:
    if own_transaction:
        sqlite.execute("BEGIN")
    try:
        while True:
            try:
                cursor = sqlite.execute(statement.text, statement.values)
                rows = cursor.fetchall()  # an UPDATE's count is known once its rows are read
            except sqlite3.Error as exc:  # raised where the plan yielded it, as Tortoise's
                step = partial(plan.throw, _as_tortoises(exc))
            else:
                answer = cursor.rowcount if statement.returns == "count" else list(map(dict, rows))
                step = partial(plan.send, answer)
            try:
                statement = step()
            except StopIteration as done:
                result: T = done.value
                break
    except BaseException:
        if own_transaction:
            sqlite.execute("ROLLBACK")
        raise
    if own_transaction:
        sqlite.execute("COMMIT")
    return result


def _as_tortoises(error: sqlite3.Error) -> Exception:
    """The error Tortoise's SQLite client raises for this one."""
    if isinstance(error, sqlite3.IntegrityError):
        return IntegrityError(error)
    if isinstance(error, sqlite3.OperationalError):
        return OperationalError(error)
    return error
