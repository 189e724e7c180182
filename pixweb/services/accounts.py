"""Merchant accounts: deposits, withdrawals, transfers, history and daily PIX totals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from pixweb import validation
from pixweb.broker import Broker
from pixweb.errors import NotFoundError, UnprocessableError
from pixweb.models import Merchant, Movement, MovementKind
from pixweb.services import merchant_events, merchants
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox
from pixweb.services.ledger import (
    Idempotency,
    Leg,
    apply_legs,
    apply_movement,
    get_account,
    movement_dict,
    once,
    request_hash,
)


async def _single(
    merchant: Merchant,
    kind: MovementKind,
    amount_cents: int,
    *,
    broker: Broker,
    idempotency_key: str | None,
) -> tuple[Movement, bool]:
    account = await get_account(merchant.id)
    signed = amount_cents if kind == MovementKind.DEPOSITO else -amount_cents

    async def work(outbox: Outbox, idempotency: Idempotency) -> Movement:
        return await apply_movement(
            account, kind, signed, outbox=outbox, now=utcnow(), idempotency=idempotency
        )

    fingerprint = request_hash(kind, amount_cents)
    return await once(account, idempotency_key, fingerprint, work, broker=broker)


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
    email = merchants.normalize_email(to_email, field="to_email")
    if description is not None:
        validation.check_text("description", description)
    recipient = await Merchant.get_or_none(email=email)
    if recipient is None:
        raise NotFoundError("no merchant with this e-mail", fields={"to_email": "not found"})
    if recipient.id == sender.id:
        raise UnprocessableError("cannot transfer to yourself", fields={"to_email": "is you"})
    source, target = await get_account(sender.id), await get_account(recipient.id)

    async def work(outbox: Outbox, idempotency: Idempotency) -> Movement:
        legs: list[Leg] = [
            (source, MovementKind.TRANSFERENCIA_ENVIADA, -amount_cents, recipient.name),
            (target, MovementKind.TRANSFERENCIA_RECEBIDA, amount_cents, sender.name),
        ]
        sent, credited = await apply_legs(
            legs,
            outbox=outbox,
            now=utcnow(),
            reference=f"transfer:{uuid.uuid4().hex}",  # the same on both legs
            description=description,
            idempotency=idempotency,
        )
        # Told to the receiving merchant, as its movements list shows the credit.
        data = movement_dict(credited)
        await merchant_events.emit(outbox, recipient.id, "transfer.received", data)
        return sent

    fingerprint = request_hash("transfer", recipient.id, amount_cents, description)
    return await once(source, idempotency_key, fingerprint, work, broker=broker)


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
