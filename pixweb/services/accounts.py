"""The ledger: balances change only with an append-only movement, inside a transaction.

Concurrency: a debit is one conditional UPDATE (`balance >= amount`), so concurrent
withdrawals can never overdraw; a transfer updates both rows in account-id order, so
two opposite transfers lock in the same order on PostgreSQL and cannot deadlock
(SQLite serializes transactions of a process on its one connection).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pixweb import money
from pixweb.broker import Broker
from pixweb.errors import ConflictError, InvalidInputError, NotFoundError, UnprocessableError
from pixweb.models import Account, Merchant, Movement, MovementKind, Notification
from pixweb.services import merchants
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox

MESSAGES = {
    MovementKind.DEPOSITO: "Depósito de {valor} realizado",
    MovementKind.SAQUE: "Saque de {valor} realizado",
    MovementKind.TRANSFERENCIA_ENVIADA: "Você transferiu {valor} para {contraparte}",
    MovementKind.TRANSFERENCIA_RECEBIDA: "Você recebeu {valor} de {contraparte}",
    MovementKind.PAGAMENTO: "Pagamento Pix de {valor} para {contraparte} realizado",
    MovementKind.PIX_RECEBIDO: "Você recebeu um Pix de {valor}",
}


class InsufficientFundsError(UnprocessableError):
    code = "insufficient_funds"


def account_channel(merchant_id: int) -> str:
    """Name the broker channel of one merchant's account (balance, movements, notices)."""
    return f"account:{merchant_id}"


def movement_dict(movement: Movement) -> dict[str, Any]:
    """The JSON shape of a movement."""
    return {
        "id": movement.id,
        "kind": str(movement.kind),
        "amount": money.format_amount(movement.amount_cents),
        "balance_after": money.format_amount(movement.balance_after_cents),
        "reference": movement.reference,
        "counterpart": movement.counterpart,
        "description": movement.description,
        "created_at": movement.created_at.isoformat(),
    }


def notification_dict(notification: Notification) -> dict[str, Any]:
    """The JSON shape of a notification (the second seed's `notificacao` fields)."""
    return {
        "id": notification.id,
        "tipo": notification.tipo,
        "mensagem": notification.mensagem,
        "timestamp": notification.created_at.isoformat(),
        "dados": notification.dados,
        "lida": notification.read_at is not None,
    }


async def get_account(merchant_id: int) -> Account:
    """Load a merchant's account (every merchant has one)."""
    account = await Account.get_or_none(merchant_id=merchant_id)
    if account is None:
        raise NotFoundError("account not found")
    return account


def request_hash(*parts: object) -> str:
    """Fingerprint a request's meaning, to tell a replay from a reuse of its key."""
    canonical = json.dumps(parts, default=str, separators=(",", ":"))  # None stays null
    return hashlib.sha256(canonical.encode()).hexdigest()


async def replay(account_id: int, key: str | None, fingerprint: str) -> Movement | None:
    """The movement an earlier request with this key made; ConflictError for another request."""
    if not key:
        return None
    movement = await Movement.get_or_none(account_id=account_id, idempotency_key=key)
    if movement is not None and movement.request_hash != fingerprint:
        raise ConflictError("Idempotency-Key already used with a different request")
    return movement


async def apply_movement(
    account: Account,
    kind: MovementKind,
    amount_cents: int,
    *,
    outbox: Outbox,
    now: datetime,
    reference: str | None = None,
    counterpart: str | None = None,
    description: str | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Movement:
    """Change one balance by a signed amount and write its movement and notification.

    Must run inside a transaction; a debit that would overdraw raises InsufficientFundsError.
    """
    query = Account.filter(id=account.id)
    if amount_cents < 0:
        query = query.filter(balance_cents__gte=-amount_cents)
    if not await query.update(balance_cents=F("balance_cents") + amount_cents):
        raise InsufficientFundsError("insufficient balance", fields={"value": "exceeds balance"})
    balance = (await Account.get(id=account.id)).balance_cents
    key, fingerprint = idempotency or (None, None)
    movement = await Movement.create(
        account_id=account.id,
        kind=kind,
        amount_cents=amount_cents,
        balance_after_cents=balance,
        reference=reference,
        counterpart=counterpart,
        description=description,
        created_at=now,
        idempotency_key=key,
        request_hash=fingerprint,
    )
    message = MESSAGES[kind].format(
        valor=money.format_brl(abs(amount_cents)), contraparte=counterpart or ""
    )
    notification = await Notification.create(
        merchant_id=account.merchant_id,
        tipo=kind.value,
        mensagem=message,
        dados={
            "valor": money.format_amount(abs(amount_cents)),
            "movimento": movement.id,
            "referencia": reference,
            "contraparte": counterpart,
        },
        created_at=now,
    )
    outbox.add(
        account_channel(account.merchant_id),
        {
            "type": "movement",
            "merchant_id": account.merchant_id,
            "balance": money.format_amount(balance),
            "balance_cents": balance,
            "amount_cents": amount_cents,
            "movement": movement_dict(movement),
            "notification": notification_dict(notification),
        },
    )
    return movement


async def _single(
    merchant: Merchant,
    kind: MovementKind,
    amount_cents: int,
    *,
    broker: Broker,
    idempotency_key: str | None,
) -> tuple[Movement, bool]:
    account = await get_account(merchant.id)
    fingerprint = request_hash(kind, amount_cents)
    if replayed := await replay(account.id, idempotency_key, fingerprint):
        return replayed, False
    signed = amount_cents if kind == MovementKind.DEPOSITO else -amount_cents
    outbox = Outbox()
    try:
        async with in_transaction():
            movement = await apply_movement(
                account,
                kind,
                signed,
                outbox=outbox,
                now=utcnow(),
                idempotency=(idempotency_key, fingerprint) if idempotency_key else None,
            )
    except (IntegrityError, InsufficientFundsError):
        # A concurrent request with the same key may have won: answer as its replay.
        if replayed := await replay(account.id, idempotency_key, fingerprint):
            return replayed, False
        raise
    await outbox.publish(broker)
    return movement, True


async def deposit(
    merchant: Merchant, amount_cents: int, *, broker: Broker, idempotency_key: str | None = None
) -> tuple[Movement, bool]:
    """Credit the merchant's account; return the movement and whether it is new."""
    return await _single(
        merchant,
        MovementKind.DEPOSITO,
        amount_cents,
        broker=broker,
        idempotency_key=idempotency_key,
    )


async def withdraw(
    merchant: Merchant, amount_cents: int, *, broker: Broker, idempotency_key: str | None = None
) -> tuple[Movement, bool]:
    """Debit the merchant's account, never below zero."""
    return await _single(
        merchant, MovementKind.SAQUE, amount_cents, broker=broker, idempotency_key=idempotency_key
    )


async def transfer(
    sender: Merchant,
    to_email: str,
    amount_cents: int,
    *,
    description: str | None = None,
    broker: Broker,
    idempotency_key: str | None = None,
) -> tuple[Movement, bool]:
    """Move money to another merchant's account; return the sender's movement."""
    try:
        email = merchants.normalize_email(to_email)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.detail, fields={"to_email": exc.detail}) from exc
    recipient = await Merchant.get_or_none(email=email)
    if recipient is None:
        raise NotFoundError("no merchant with this e-mail", fields={"to_email": "not found"})
    if recipient.id == sender.id:
        raise UnprocessableError("cannot transfer to yourself", fields={"to_email": "is you"})
    source, target = await get_account(sender.id), await get_account(recipient.id)
    fingerprint = request_hash("transfer", recipient.id, amount_cents, description)
    if replayed := await replay(source.id, idempotency_key, fingerprint):
        return replayed, False
    outbox, now = Outbox(), utcnow()
    reference = f"transfer:{uuid.uuid4().hex}"  # the same on both legs
    legs = [
        (source, MovementKind.TRANSFERENCIA_ENVIADA, -amount_cents, recipient),
        (target, MovementKind.TRANSFERENCIA_RECEBIDA, amount_cents, sender),
    ]
    try:
        async with in_transaction():
            movements = {}
            # Fixed lock order (account id) so opposite transfers cannot deadlock.
            for account, kind, amount, other in sorted(legs, key=lambda leg: leg[0].id):
                mine = account is source and bool(idempotency_key)
                movements[kind] = await apply_movement(
                    account,
                    kind,
                    amount,
                    outbox=outbox,
                    now=now,
                    reference=reference,
                    counterpart=other.name,
                    description=description,
                    idempotency=(idempotency_key or "", fingerprint) if mine else None,
                )
    except (IntegrityError, InsufficientFundsError):
        # A concurrent request with the same key may have won: answer as its replay.
        if replayed := await replay(source.id, idempotency_key, fingerprint):
            return replayed, False
        raise
    await outbox.publish(broker)
    return movements[MovementKind.TRANSFERENCIA_ENVIADA], True


@dataclass(frozen=True)
class MovementPage:
    items: list[Movement]
    next_before: int | None


async def list_movements(
    merchant_id: int,
    *,
    kind: MovementKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    before: int | None = None,
) -> MovementPage:
    """A page of the account's movements, newest first (ids grow with time)."""
    account = await get_account(merchant_id)
    query = Movement.filter(account_id=account.id)
    if kind is not None:
        query = query.filter(kind=kind)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lt=until)
    if before is not None:
        query = query.filter(id__lt=before)
    items = await query.order_by("-id").limit(limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return MovementPage(items, items[-1].id if more else None)


async def daily_pix_received(
    merchant_id: int, *, days: int = 30, now: datetime | None = None
) -> list[tuple[date, int]]:
    """PIX received per day (UTC) over the last `days` days, oldest first, zeros included."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    start = datetime.combine(first, time.min, tzinfo=UTC)
    account = await get_account(merchant_id)
    rows = await Movement.filter(
        account_id=account.id, kind=MovementKind.PIX_RECEBIDO, created_at__gte=start
    ).values_list("created_at", "amount_cents")
    totals = {first + timedelta(days=n): 0 for n in range(days)}
    for created_at, amount in rows:
        day = created_at.astimezone(UTC).date()
        if day in totals:
            totals[day] += amount
    return sorted(totals.items())
