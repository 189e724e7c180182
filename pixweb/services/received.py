"""Received Pix: each recorded once by its end_to_end_id, matched to its charge, credited once.

The one path every source calls (the PSP's webhook, reconciliation, the seed's confirmation,
the sandbox). A Pix is money in the merchant's bank account whatever happened to its charge:
every one is credited with a pix_recebido movement in the same transaction as its record;
only a `matched` one marks its charge paid. The others wait, with their outcome, for the
merchant to reconcile them (`attach`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from pixweb import money, validation
from pixweb.broker import Broker
from pixweb.errors import ConflictError, InvalidInputError, NotFoundError
from pixweb.models import (
    PAID_STATES,
    MovementKind,
    Notification,
    Payment,
    PaymentStatus,
    PixOutcome,
    PixSource,
    ReceivedPix,
)
from pixweb.services import ledger, merchant_events, payments, psp_charges, sql
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel

TXID_KEY = "txid:"  # the key of a Pix whose bank named no end_to_end_id
TO_RECONCILE = "pix_a_conciliar"  # the notification's `tipo` for every outcome but matched
PAYER_NAME_MAX = 200
E2E_MAX = TXID_MAX = 35  # the API Pix's longest (some PSPs' e2eids run to 35)
PAYMENT_E2E_MAX = 32  # Payment.end_to_end_id: the BCB's format


def txid_key(txid: str) -> str:
    """The record key of a seed confirmation without end_to_end_id: one per charge.

    A static charge's txid (25) fits beside the prefix; a PSP charge's (35) is digested to
    fit the record's 35 characters (120 bits of SHA-256: one key per charge all the same)."""
    if len(txid) + len(TXID_KEY) <= E2E_MAX:
        return f"{TXID_KEY}{txid}"
    return TXID_KEY + hashlib.sha256(txid.encode()).hexdigest()[: E2E_MAX - len(TXID_KEY)]


def mask_document(document: str | None) -> str | None:
    """A payer's CPF or CNPJ as the BCB shows it: ***.456.789-** or **.345.678/0001-**.

    Anything else (already masked, malformed) is kept only as asterisks: a full document
    is never stored.
    """
    if not document:
        return None
    raw = "".join(ch for ch in document.upper() if ch.isascii() and ch.isalnum())
    if len(raw) == 11 and raw.isdigit():
        return f"***.{raw[3:6]}.{raw[6:9]}-**"
    if len(raw) == 14:  # CNPJs may carry letters from 2026 on
        return f"**.{raw[2:5]}.{raw[5:8]}/{raw[8:12]}-**"
    return "*" * min(len(document), 18)


async def mark_paid(
    payment: Payment,
    now: datetime,
    end_to_end_id: str | None,
    *,
    outbox: Outbox,
    unexpired: bool = True,
) -> bool:
    """Pending (and unexpired, unless told) -> paid, as one conditional UPDATE: true for
    the one winner, which records charge.paid (in the caller's transaction).

    The winner's `payment` then holds what it wrote, so the paid announcement built from
    it (`status_event`) carries the state a page renders, whichever path settled it.
    """
    if paid := await sql.run(_mark_paid(payment, now, end_to_end_id, unexpired=unexpired)):
        await merchant_events.charge(outbox, "charge.paid", payment)
    return paid


def _mark_paid(
    payment: Payment, now: datetime, end_to_end_id: str | None, *, unexpired: bool
) -> sql.Plan[bool]:
    still: dict[str, Any] = {"id": payment.id, "status": PaymentStatus.PENDING}
    if unexpired:
        still["expires_at__gt"] = now
    paid = {"status": PaymentStatus.PAID, "paid_at": now, "end_to_end_id": end_to_end_id}
    try:
        updated = yield from sql.update_plan(Payment, paid, **still)
    except IntegrityError as exc:
        raise ConflictError("end_to_end_id already settled another payment") from exc
    if updated:
        payment.status, payment.paid_at = PaymentStatus.PAID, now
        payment.end_to_end_id = end_to_end_id
    return bool(updated)


def received_dict(record: ReceivedPix) -> dict[str, Any]:
    """The JSON shape of a received Pix."""
    return {
        "end_to_end_id": record.end_to_end_id,
        "txid": record.txid,
        "value": money.format_amount(record.amount_cents),
        "paid_at": record.paid_at.isoformat(),
        "payer_name": record.payer_name,
        "payer_document": record.payer_document,
        "source": str(record.source),
        "outcome": str(record.outcome),
        "original_outcome": str(record.original_outcome) if record.original_outcome else None,
        "payment_id": str(record.payment_id) if record.payment_id else None,
        "created_at": record.created_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Incoming:
    """A Pix to record, checked (`incoming`): its record's columns and its end_to_end_id as
    the bank named it (None: the seed's confirmation without one, keyed by the txid)."""

    fields: dict[str, Any]
    end_to_end_id: str | None


def incoming(
    *,
    merchant_id: int | None = None,
    end_to_end_id: str | None,
    amount_cents: int,
    txid: str | None,
    paid_at: datetime,
    payer_name: str | None = None,
    payer_document: str | None = None,
    source: PixSource,
) -> Incoming:
    """A Pix as a source reported it, checked: InvalidInputError for what no record may
    hold (and then nothing is recorded). `merchant_id`: the account it reached, when the
    caller knows it (a PSP's webhook token); None: the txid's charge names it."""
    for name, text in (("txid", txid), ("payer_name", payer_name)):
        if text is not None:
            validation.check_text(name, text)
    if txid is not None and not 0 < len(txid) <= TXID_MAX:
        raise InvalidInputError("invalid txid", fields={"txid": f"1 to {TXID_MAX} characters"})
    key = _key(end_to_end_id, txid)
    if not 0 < amount_cents <= money.MAX_CENTS:
        raise InvalidInputError("value out of range", fields={"value": "out of range"})
    fields = {
        "merchant_id": merchant_id,
        "end_to_end_id": key,
        "amount_cents": amount_cents,
        "txid": txid,
        "paid_at": paid_at,
        "payer_name": (payer_name or "").strip()[:PAYER_NAME_MAX] or None,
        "payer_document": mask_document(payer_document),
        "source": source,
    }
    return Incoming(fields, end_to_end_id)


async def record_received_pix(
    pix: Incoming, *, broker: Broker, payment: Payment | None = None
) -> tuple[ReceivedPix, bool]:
    """Record a received Pix (checked by `incoming`) once, credit its merchant once, and
    settle its charge if it matches; return the record and whether it is new (False:
    known, nothing changed).

    Without a `merchant_id` the txid's charge names the merchant, and a txid naming no
    charge is a NotFoundError (no account to credit). Without `end_to_end_id` the record is
    keyed by the txid (`txid_key`). Concurrent calls for one Pix record and credit it once.
    `payment` is the txid's charge when the caller has just read it (saves reading it
    again; its settling is a conditional UPDATE all the same), and is then kept up to date.
    It runs in a transaction of its own and publishes its events once that has committed:
    several Pix in one transaction (a batch) are recorded with `record_plan` instead.
    """
    events = Outbox()
    result = await sql.run_in_transaction(record_plan(pix, events, payment=payment))
    await events.publish(broker)
    return result


def record_plan(
    pix: Incoming, outbox: Outbox, *, payment: Payment | None = None
) -> sql.Plan[tuple[ReceivedPix, bool]]:
    """`record_received_pix` as a step of the caller's plan (in a savepoint of its own):
    the record and whether it is new; its events are added to `outbox` only when it is.

    No read for an existing record first: the unique key answers it on the rare repeat
    (the savepoint undoes the credit, and the record that stands is read), and the common
    case, a new Pix, saves a statement (the intake and reconciliation skip the ones they
    know with one read per batch)."""
    if payment is not None and payment.txid != pix.fields["txid"]:
        payment = None  # not this Pix's charge: the plan reads the right one
    events = Outbox()  # this record's alone: nothing of a rolled-back savepoint leaks out
    fields = dict(pix.fields)  # the charge may name the merchant (`_charge_of`)
    try:
        step = _record(fields, payment, pix.end_to_end_id, events)
        record = yield from sql.savepoint_plan(step)
    except IntegrityError:
        # Recorded before, or by a concurrent call first (its unique key): that one stands,
        # and everything this one did is undone with its savepoint.
        known = yield from sql.select_plan(
            ReceivedPix, first=True, end_to_end_id=fields["end_to_end_id"]
        )
        if known:
            return known[0], False
        raise
    outbox.take(events)
    return record, True


def _key(end_to_end_id: str | None, txid: str | None) -> str:
    if end_to_end_id is not None:
        validation.check_text("end_to_end_id", end_to_end_id)
        if not 0 < len(end_to_end_id) <= E2E_MAX or end_to_end_id.startswith(TXID_KEY):
            raise InvalidInputError(
                "invalid end_to_end_id", fields={"end_to_end_id": f"1 to {E2E_MAX} characters"}
            )
        return end_to_end_id
    if not txid or len(txid) not in (payments.TXID_LENGTH, psp_charges.COB_TXID_LENGTH):
        # Keyed by the txid only for the seed's confirmations, which name pixweb's txids:
        # 25 characters for a static charge, 35 for one made at the PSP.
        raise InvalidInputError(
            "a Pix needs an end_to_end_id or a pixweb txid", fields={"end_to_end_id": "missing"}
        )
    return txid_key(txid)


def _record(
    fields: dict[str, Any], payment: Payment | None, end_to_end_id: str | None, outbox: Outbox
) -> sql.Plan[ReceivedPix]:
    """Read the txid's charge (unless the caller has), decide the outcome, credit the
    merchant, write the record and its events (`record_plan`'s step)."""
    payment = yield from _charge_of(fields, payment)
    now, amount, e2e = utcnow(), fields["amount_cents"], _payment_e2e(end_to_end_id)
    # One read of the merchant's webhook endpoints for both events (charge.paid, pix.received).
    endpoints = yield from merchant_events.endpoints_plan(fields["merchant_id"])
    outcome = yield from _outcome(payment, fields["txid"], amount, now, e2e)
    matched = outcome == PixOutcome.MATCHED
    reason = "" if matched else _reason(outcome, payment)
    # A matched Pix keeps its charge's reference and description, which the dashboard shows
    # and links; the others say which charge they were for and why they wait.
    if matched and payment is not None:
        reference, description = f"payment:{payment.id}", payment.description
        yield from merchant_events.charge_plan(outbox, "charge.paid", payment, endpoints)
    else:
        reference, description = f"pix:{fields['end_to_end_id']}", f"A conciliar: Pix {reason}"
    movement = yield from ledger.movement_plan(
        ("merchant_id", fields["merchant_id"]),
        MovementKind.PIX_RECEBIDO,
        amount,
        outbox=outbox,
        now=now,
        reference=reference,
        counterpart=end_to_end_id or fields["payer_name"],
        description=description[:140] if description else None,
    )
    record = yield from sql.insert_plan(
        ReceivedPix,
        **fields,
        outcome=outcome,
        payment_id=payment.id if payment is not None else None,
        movement_id=movement.id,
        created_at=now,
    )
    if matched and payment is not None:
        payments.status_event(payment, outbox)
    else:
        yield from _tell(record, f"Pix de {money.format_brl(amount)} recebido {reason}", outbox)
    data = received_dict(record)
    outbox.add(
        account_channel(record.merchant_id),
        {"type": "pix.received", "merchant_id": record.merchant_id, "pix": data},
    )
    yield from merchant_events.emit_plan(
        outbox, record.merchant_id, "pix.received", data, endpoints
    )
    return record


def _charge_of(fields: dict[str, Any], payment: Payment | None) -> sql.Plan[Payment | None]:
    """The charge the Pix names (its txid) for the account it reached, which the charge
    names when the caller did not (`fields["merchant_id"]` None: set here)."""
    txid, merchant_id = fields["txid"], fields["merchant_id"]
    if payment is None and txid is not None:
        found = yield from sql.select_plan(Payment, first=True, txid=txid)
        payment = found[0] if found else None
    if merchant_id is None:
        if payment is None:
            raise NotFoundError("no charge with this txid: no merchant to credit")
        fields["merchant_id"] = payment.merchant_id
    elif payment is not None and payment.merchant_id != merchant_id:
        return None  # another merchant's txid: not this account's charge to settle
    return payment


def _outcome(
    payment: Payment | None, txid: str | None, amount: int, now: datetime, e2e: str | None
) -> sql.Plan[PixOutcome]:
    if txid is None:
        return PixOutcome.NO_TXID
    if payment is None:
        return PixOutcome.UNKNOWN_TXID
    if amount != payment.amount_cents:
        return PixOutcome.AMOUNT_MISMATCH
    if (yield from _mark_paid(payment, now, e2e, unexpired=True)):
        return PixOutcome.MATCHED
    # Someone else settled or changed it: what is it now?
    (fresh,) = yield from sql.select_plan(Payment, id=payment.id)
    for name in Payment._meta.fields_db_projection:
        setattr(payment, name, getattr(fresh, name))
    return PixOutcome.DUPLICATE if payment.status in PAID_STATES else PixOutcome.LATE


def _reason(outcome: PixOutcome, payment: Payment | None) -> str:
    """Why a Pix waits to be reconciled, in the merchant's words ("após o vencimento...")."""
    if payment is None:
        if outcome == PixOutcome.NO_TXID:
            return "direto na chave Pix, sem cobrança"
        return "com um identificador de cobrança desconhecido"
    charge = f"da cobrança {_charge_name(payment)}"
    if outcome == PixOutcome.LATE:
        if payment.status == PaymentStatus.CANCELLED:
            return f"após o cancelamento {charge}"
        return f"após o vencimento {charge}"
    if outcome == PixOutcome.DUPLICATE:
        return f"para a cobrança {_charge_name(payment)}, que já estava paga"
    return f"para a cobrança {_charge_name(payment)}, de {money.format_brl(payment.amount_cents)}"


def _charge_name(payment: Payment) -> str:
    name = payment.description or f"#{str(payment.id)[:8]}"
    return name if len(name) <= 60 else name[:59] + "…"


def _tell(record: ReceivedPix, message: str, outbox: Outbox) -> sql.Plan[None]:
    notification = yield from sql.insert_plan(
        Notification,
        merchant_id=record.merchant_id,
        tipo=TO_RECONCILE,
        mensagem=message,
        dados={
            "valor": money.format_amount(record.amount_cents),
            "end_to_end_id": record.end_to_end_id,
            "resultado": str(record.outcome),
            "cobranca": str(record.payment_id) if record.payment_id else None,
        },
        created_at=record.created_at,
    )
    event = {
        "type": "notification",
        "merchant_id": record.merchant_id,
        "notification": ledger.notification_dict(notification),
    }
    outbox.add(account_channel(record.merchant_id), event)


async def attach(
    merchant_id: int,
    end_to_end_id: str,
    payment_id: UUID,
    *,
    idempotency_key: str | None = None,
    broker: Broker,
) -> tuple[ReceivedPix, bool]:
    """Let a received Pix pay one of the merchant's pending or expired charges, without a
    second credit; return the record and whether it changed (False: a replay).
    """
    validation.check_text("end_to_end_id", end_to_end_id)
    if idempotency_key and (
        used := await ReceivedPix.get_or_none(merchant_id=merchant_id, attach_key=idempotency_key)
    ):
        if (used.end_to_end_id, used.payment_id) != (end_to_end_id, payment_id):
            raise ConflictError("Idempotency-Key already used with a different request")
        return used, False
    outbox = Outbox()
    try:
        record, changed = await _attach(
            merchant_id, end_to_end_id, payment_id, idempotency_key, outbox
        )
    except IntegrityError:
        # A concurrent request with this key attached another Pix or charge first.
        if idempotency_key and await ReceivedPix.exists(
            merchant_id=merchant_id, attach_key=idempotency_key
        ):
            raise ConflictError("Idempotency-Key already used with a different request") from None
        raise
    await outbox.publish(broker)
    return record, changed


async def _attach(
    merchant_id: int, end_to_end_id: str, payment_id: UUID, key: str | None, outbox: Outbox
) -> tuple[ReceivedPix, bool]:
    async with in_transaction():
        record = await _lock_record(merchant_id, end_to_end_id)
        if record.outcome == PixOutcome.MATCHED:
            if record.payment_id != payment_id:
                raise ConflictError("this Pix already paid a charge")
            return record, False  # what was asked is what is: nothing to change
        payment = await Payment.get_or_none(id=payment_id, merchant_id=merchant_id)
        if payment is None:
            raise NotFoundError("payment not found")
        now = utcnow()
        e2e = _payment_e2e(record.end_to_end_id)
        if not await mark_paid(payment, now, e2e, outbox=outbox, unexpired=False):
            await payment.refresh_from_db()
            raise ConflictError(f"payment is {payment.status_at(now)} and cannot take this Pix")
        record.original_outcome, record.outcome = record.outcome, PixOutcome.MATCHED
        record.payment_id, record.attach_key = payment.id, key
        await record.save(update_fields=["original_outcome", "outcome", "payment_id", "attach_key"])
        payments.status_event(payment, outbox)
        event = {"type": "pix.attached", "merchant_id": merchant_id, "pix": received_dict(record)}
        outbox.add(account_channel(merchant_id), event)
    return record, True


async def _lock_record(merchant_id: int, end_to_end_id: str) -> ReceivedPix:
    # The row lock makes concurrent attachments of one Pix wait (PostgreSQL; SQLite runs
    # one transaction at a time), so the second sees the first's outcome.
    query = ReceivedPix.filter(merchant_id=merchant_id, end_to_end_id=end_to_end_id)
    record = await query.select_for_update().first()
    if record is None:
        raise NotFoundError("no received Pix with this end_to_end_id")
    return record


def _payment_e2e(key: str | None) -> str | None:
    """The end_to_end_id a charge keeps: none for a txid key (the bank named none), nor for
    one longer than the BCB's 32 that some PSPs send (its record keeps it)."""
    if key is None or key.startswith(TXID_KEY) or len(key) > PAYMENT_E2E_MAX:
        return None
    return key


@dataclass(frozen=True)
class Page:
    items: list[ReceivedPix]
    next_cursor: str | None


async def list_received(
    merchant_id: int,
    *,
    outcome: PixOutcome | None = None,
    since: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """List a merchant's received Pix, newest recorded first, a page at a time."""
    query = ReceivedPix.filter(merchant_id=merchant_id)
    if outcome is not None:
        query = query.filter(outcome=outcome)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if cursor:
        query = query.filter(payments.decode_cursor(cursor))
    items = await query.order_by("-created_at", "-id").limit(limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return Page(items, payments.encode_cursor(items[-1]) if more else None)


async def count_to_reconcile(merchant_id: int) -> int:
    """How many of a merchant's received Pix paid no charge (the dashboard's counter)."""
    query = ReceivedPix.filter(Q(merchant_id=merchant_id) & ~Q(outcome=PixOutcome.MATCHED))
    return await query.count()
