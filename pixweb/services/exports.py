"""CSV exports of a merchant's charges and movements, streamed a page at a time.

The files are written for spreadsheet users in Brazil: UTF-8 with a BOM (so Excel reads the
accents), `;` between cells, a decimal comma without thousands separator ("1234,56"), a header
row in Portuguese, and dates as "dd/mm/aaaa hh:mm:ss" in Brasília time (America/Sao_Paulo),
which pt-BR spreadsheets read as dates. A cell a spreadsheet would run as a formula (starting
with = + - @, a tab or a carriage return) is prefixed with an apostrophe; amounts are written
by pixweb itself and are never guarded (a refund's "-10,00" stays a number).

The rows are read with the same functions and filters as the JSON lists, keyset page after
keyset page, and each page is yielded as soon as it is formatted: a merchant with 100,000
movements gets the file without it ever sitting in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.expressions import Q, RawSQL

from pixweb import money
from pixweb.models import Movement, MovementKind, Payment
from pixweb.services import ledger, payments
from pixweb.services.clock import utcnow

BRAZIL = ZoneInfo("America/Sao_Paulo")
BOM = "\ufeff"
PAGE_SIZE = 1000
MEDIA_TYPE = "text/csv; charset=utf-8"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

PAYMENT_COLUMNS = (
    "id",
    "criada_em",
    "descricao",
    "valor",
    "status",
    "txid",
    "pago_em",
    "end_to_end_id",
    "valor_devolvido",
)
MOVEMENT_COLUMNS = (
    "id",
    "data",
    "tipo",
    "valor",
    "saldo_apos",
    "referencia",
    "contraparte",
    "descricao",
)


def decimal_comma(cents: int) -> str:
    """Centavos as a pt-BR spreadsheet number: 123456 -> "1234,56", -1000 -> "-10,00"."""
    return money.format_amount(cents).replace(".", ",")


def local_datetime(moment: datetime | None) -> str:
    """A timestamp as Brasília time, "22/11/2026 14:05:09"; empty for none.

    Formatted field by field: strftime took half of this function's time, on every row."""
    if moment is None:
        return ""
    t = moment.astimezone(BRAZIL)
    return f"{t.day:02d}/{t.month:02d}/{t.year} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def text_cell(value: str | None) -> str:
    """A text cell a spreadsheet shows as text, never runs as a formula."""
    text = value or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(rows: Iterable[Sequence[str]]) -> str:
    """Rows as `;`-separated CSV lines (RFC 4180 quoting, CRLF line ends)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def payment_row(payment: Payment, now: datetime) -> list[str]:
    """One charge as its CSV cells, in PAYMENT_COLUMNS order."""
    return [
        str(payment.id),
        local_datetime(payment.created_at),
        text_cell(payment.description),
        decimal_comma(payment.amount_cents),
        str(payment.status_at(now)),
        text_cell(payment.txid),
        local_datetime(payment.paid_at),
        text_cell(payment.end_to_end_id),
        decimal_comma(payment.refunded_cents),
    ]


async def payments_csv(
    merchant_id: int,
    *,
    where: payments.PaymentFilter | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[bytes]:
    """Yield the merchant's charges as CSV (newest first, the JSON list's filters), page by page."""
    head = BOM + csv_lines([PAYMENT_COLUMNS])
    cursor: str | None = None
    while True:
        page = await payments.list_payments(
            merchant_id, where=where, limit=page_size, cursor=cursor
        )
        now = utcnow()
        # The header goes with the first page: the first chunk is ready only once the query
        # ran, so a caller that awaits it sees a failing query before the response starts.
        yield (head + csv_lines(payment_row(p, now) for p in page.items)).encode()
        head = ""
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def started(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Run `body` to its first chunk now (a failing query raises here), then stream the rest."""
    first = await anext(body)

    async def rest() -> AsyncIterator[bytes]:
        yield first
        async for chunk in body:
            yield chunk

    return rest()


# Each column is read as the database gives it (RawSQL annotations): Tortoise's per-field
# conversions (iso8601 parsing SQLite's timestamp text at ~11 µs a row, the kind's enum)
# were most of a CSV row's cost. The timestamp is parsed by _moment.
MOVEMENT_FIELDS = (
    "id",
    "created_at",
    "kind",
    "amount_cents",
    "balance_after_cents",
    "reference",
    "counterpart",
    "description",
)
_RAW_MOVEMENT = {f"raw_{name}": RawSQL(name) for name in MOVEMENT_FIELDS}


def _moment(value: datetime | str) -> datetime:
    """A timestamp read raw: SQLite keeps Tortoise's ISO text, PostgreSQL's driver a datetime
    (either without an offset is UTC, as Tortoise reads it)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _movement_row(row: tuple[Any, ...]) -> list[str]:
    """One movement (its MOVEMENT_FIELDS values) as its CSV cells, in MOVEMENT_COLUMNS order."""
    movement_id, created_at, kind, amount, balance_after, reference, counterpart, text = row
    return [
        str(movement_id),
        local_datetime(_moment(created_at)),
        kind,
        decimal_comma(amount),
        decimal_comma(balance_after),
        text_cell(reference),
        text_cell(counterpart),
        text_cell(text),
    ]


async def movements_csv(
    merchant_id: int,
    *,
    kind: MovementKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[bytes]:
    """Yield the account's movements as CSV (newest first, the JSON list's filters), by page.

    The filters are `accounts.list_movements`'; the pages follow (created_at, id), which the
    (account_id, created_at) index serves in order: paging by id alone sorts every remaining
    row of the account for each page, quadratic on a large account."""
    head = BOM + csv_lines([MOVEMENT_COLUMNS])
    account = await ledger.get_account(merchant_id)
    query = Movement.filter(account_id=account.id)
    if kind is not None:
        query = query.filter(kind=kind)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lt=until)
    after: Q | None = None
    while True:
        # Plain tuples, not models: a page costs a fraction of the memory and time.
        page = (
            await (query.filter(after) if after else query)
            .order_by("-created_at", "-id")
            .limit(page_size)
            .annotate(**_RAW_MOVEMENT)
            .values_list(*_RAW_MOVEMENT)
        )
        if not page and not head:
            return
        yield (head + csv_lines(_movement_row(m) for m in page)).encode()
        head = ""
        if len(page) < page_size:
            return
        last_id, last_at = page[-1][0], _moment(page[-1][1])
        after = Q(created_at__lt=last_at) | Q(created_at=last_at, id__lt=last_id)
