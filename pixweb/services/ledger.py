"""The ledger's primitive: a balance changes only with its movement and notification.

Concurrency: a debit is one conditional UPDATE (`balance >= amount`), so concurrent
debits can never overdraw. Callers that touch two accounts update them in account-id
order, so opposite operations lock in the same order on PostgreSQL and cannot deadlock
(SQLite serializes the transactions of a process on its one connection).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb import money
from pixweb.broker import Broker
from pixweb.errors import ConflictError, NotFoundError, PixwebError, UnprocessableError
from pixweb.models import Account, Movement, MovementKind, Notification
from pixweb.services import balances, sql
from pixweb.services.events import Outbox, account_channel

MESSAGES = {
    MovementKind.DEPOSITO: "Depósito de {valor} realizado",
    MovementKind.SAQUE: "Saque de {valor} realizado",
    MovementKind.TRANSFERENCIA_ENVIADA: "Você transferiu {valor} para {contraparte}",
    MovementKind.TRANSFERENCIA_RECEBIDA: "Você recebeu {valor} de {contraparte}",
    MovementKind.PAGAMENTO: "Pagamento Pix de {valor} para {contraparte} realizado",
    MovementKind.PIX_RECEBIDO: "Você recebeu um Pix de {valor}",
    MovementKind.DEVOLUCAO: "Devolução de {valor} solicitada",
    MovementKind.DEVOLUCAO_ESTORNADA: "Devolução de {valor} não realizada: valor estornado",
    MovementKind.ESTORNO: "Estorno de {valor} da cobrança paga com saldo",
}


class InsufficientFundsError(UnprocessableError):
    code = "insufficient_funds"


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
    return await sql.run(
        movement_plan(
            ("id", account.id),
            kind,
            amount_cents,
            outbox=outbox,
            now=now,
            reference=reference,
            counterpart=counterpart,
            description=description,
            idempotency=idempotency,
        )
    )


def movement_plan(
    account: tuple[Literal["id", "merchant_id"], int],
    kind: MovementKind,
    amount_cents: int,
    *,
    outbox: Outbox,
    now: datetime,
    reference: str | None,
    counterpart: str | None,
    description: str | None,
    idempotency: tuple[str, str] | None = None,
) -> sql.Plan[Movement]:
    """The plan that changes the balance and writes the movement and its notification:
    the one writer of movements, whatever moved the money. The account is named by its
    id, or by its merchant (a received Pix's credit: no read of the account first)."""
    changed = yield from balances.add(*account, amount_cents)
    if changed is None and amount_cents < 0:
        raise InsufficientFundsError("insufficient balance", fields={"value": "exceeds balance"})
    if changed is None:
        raise NotFoundError("account not found")
    account_id, merchant_id, balance = changed
    key, fingerprint = idempotency or (None, None)
    movement = yield from sql.insert_plan(
        Movement,
        account_id=account_id,
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
    notification = yield from sql.insert_plan(
        Notification,
        merchant_id=merchant_id,
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
        account_channel(merchant_id),
        {
            "type": "movement",
            "merchant_id": merchant_id,
            "balance": money.format_amount(balance),
            "balance_cents": balance,
            "movement": movement_dict(movement),
            "notification": notification_dict(notification),
        },
    )
    return movement


Idempotency = tuple[str, str] | None  # (key, fingerprint) for the movement that keeps it
Work = Callable[[Outbox, Idempotency], Awaitable[Movement]]
Leg = tuple[Account, MovementKind, int, str | None]  # account, kind, signed amount, counterpart


async def once(
    account: Account, key: str | None, fingerprint: str, work: Work, *, broker: Broker
) -> tuple[Movement, bool]:
    """Run `work` in one transaction unless this key already ran it; publish after commit.

    Returns the movement and whether it is new. A failure while a concurrent request with
    the same key won (the unique key clashed, or it took the funds or the charge first)
    answers as that request's replay.
    """
    if replayed := await replay(account.id, key, fingerprint):
        return replayed, False
    outbox = Outbox()
    try:
        async with in_transaction():
            movement = await work(outbox, (key, fingerprint) if key else None)
    except (IntegrityError, PixwebError):
        if replayed := await replay(account.id, key, fingerprint):
            return replayed, False
        raise
    await outbox.publish(broker)
    return movement, True


async def apply_legs(
    legs: list[Leg],
    *,
    outbox: Outbox,
    now: datetime,
    reference: str,
    description: str | None,
    idempotency: Idempotency,
) -> list[Movement]:
    """Move money between accounts; return the legs' movements in their order (the first
    leg's keeps the key).

    Accounts are updated in id order, the fixed lock order that keeps two opposite
    operations from deadlocking on PostgreSQL.
    """
    moved: dict[int, Movement] = {}
    for n in sorted(range(len(legs)), key=lambda n: legs[n][0].id):
        account, kind, amount, counterpart = legs[n]
        moved[n] = await apply_movement(
            account,
            kind,
            amount,
            outbox=outbox,
            now=now,
            reference=reference,
            counterpart=counterpart,
            description=description,
            idempotency=idempotency if n == 0 else None,
        )
    return [moved[n] for n in range(len(legs))]
