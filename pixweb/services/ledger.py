"""The ledger's primitive: a balance changes only with its movement and notification.

Concurrency: a debit is one conditional UPDATE (`balance >= amount`), so concurrent
debits can never overdraw. Callers that touch two accounts update them in account-id
order, so opposite operations lock in the same order on PostgreSQL and cannot deadlock
(SQLite serializes the transactions of a process on its one connection).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from tortoise.expressions import F

from pixweb import money
from pixweb.errors import ConflictError, NotFoundError, UnprocessableError
from pixweb.models import Account, Movement, MovementKind, Notification
from pixweb.services.events import Outbox, account_channel

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
