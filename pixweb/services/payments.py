"""PIX charges: create, list, cancel and confirm, publishing each change after commit.

With a PSP connected (or the development sandbox), a charge is created at the PSP first
(`PUT /cob/{txid}`, pixweb.services.psp_charges) and its BR Code is the PSP's dynamic one;
a cancel removes it there first. Without one, charges carry static BR Codes built here.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count, Sum
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from pixweb import validation
from pixweb.broker import Broker, Event
from pixweb.errors import ConflictError, InvalidInputError, NotFoundError
from pixweb.models import (
    PAID_STATES,
    Merchant,
    Payment,
    PaymentStatus,
    ReceivedPix,
    WebhookDelivery,
)
from pixweb.pix import brcode
from pixweb.psp.client import PspClient
from pixweb.services import merchant_events, psp_charges, psp_sandbox, sql
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel, payment_channel
from pixweb.services.ledger import request_hash
from pixweb.services.merchant_events import payment_data as payment_data
from pixweb.services.psp_clients import PspClients

TXID_ALPHABET = string.ascii_letters + string.digits
TXID_LENGTH = 25
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 60, 7 * 24 * 3600, 3600
PAGE_MAX = 100
_TEMPLATE_26_MAX = 99


def new_txid(length: int = TXID_LENGTH) -> str:
    """Draw an alphanumeric txid: 25 characters (about 148 bits) unless told."""
    # Bytes under 248 (4 x 62) map uniformly onto the alphabet: one draw of random bytes
    # instead of 25 `secrets.choice` calls, on every charge's path.
    chars: list[str] = []
    while len(chars) < length:
        chars += [TXID_ALPHABET[b % 62] for b in secrets.token_bytes(48) if b < 248]
    return "".join(chars[:length])


def _brcode_description(key: str, description: str | None) -> str | None:
    # Field 26 holds GUI (18), key (4 + len) and description (4 + len) in 99 characters:
    # the description is informative, so it gives way when the key is long.
    if not description:
        return None
    room = _TEMPLATE_26_MAX - 18 - (4 + len(key)) - 4
    text = brcode.ascii_text(description, min(72, room)) if room > 0 else ""
    return text or None


async def create_payment(
    merchant: Merchant,
    *,
    amount_cents: int,
    description: str | None = None,
    expires_in: int = EXPIRES_DEFAULT,
    idempotency_key: str | None = None,
    broker: Broker,
    clients: PspClients | None = None,
    public_base: str = "",
) -> tuple[Payment, bool]:
    """Create a pending charge with its BR Code; return it and whether it is new.

    With an idempotency key, a repeat of the same request returns the first payment and
    the same key with another request is a ConflictError. With `clients` and a PSP (or the
    sandbox, reached at `public_base`), the charge is created at the PSP first: its
    failures (PspError) leave nothing created here.
    """
    if description is not None:
        validation.check_text("description", description)
    if not EXPIRES_MIN <= expires_in <= EXPIRES_MAX:
        raise InvalidInputError(
            f"expires_in must be {EXPIRES_MIN}..{EXPIRES_MAX} seconds",
            fields={"expires_in": f"must be between {EXPIRES_MIN} and {EXPIRES_MAX}"},
        )
    fingerprint = request_hash(amount_cents, description, expires_in) if idempotency_key else None
    if idempotency_key:
        existing = await _idempotent_replay(merchant, idempotency_key, fingerprint)
        if existing:
            return existing, False
    client = None
    if clients is not None:
        client = await psp_sandbox.client_for(merchant, clients=clients, public_base=public_base)
    if client is not None:
        txid, code = await _cob(
            client, merchant, amount_cents, description, expires_in, idempotency_key
        )
    else:
        txid = new_txid()
        code = brcode.build(
            key=merchant.pix_key,
            name=merchant.name,
            city=merchant.city,
            amount_cents=amount_cents,
            txid=txid,
            description=_brcode_description(merchant.pix_key, description),
        )
    now, outbox = utcnow(), Outbox()
    try:
        payment = await sql.run_in_transaction(
            _created_plan(
                outbox,
                merchant_id=merchant.id,
                amount_cents=amount_cents,
                description=description,
                txid=txid,
                brcode=code,
                created_at=now,
                expires_at=now + timedelta(seconds=expires_in),
                idempotency_key=idempotency_key,
                request_hash=fingerprint,
            )
        )
    except IntegrityError:
        # Lost a race with the same idempotency key: the winner's payment is the answer.
        if idempotency_key:
            existing = await _idempotent_replay(merchant, idempotency_key, fingerprint)
            if existing:
                return existing, False
        raise
    outbox.add(
        account_channel(merchant.id),
        {
            "type": "payment.created",
            "payment_id": str(payment.id),
            "merchant_id": merchant.id,
            "expires_at": payment.expires_at.isoformat(),
        },
    )
    await outbox.publish(broker)
    return payment, True


def _created_plan(outbox: Outbox, **fields: Any) -> sql.Plan[Payment]:
    """The charge's row and its charge.created event: one transaction (one hand-off to
    SQLite's thread, where `Payment.create` and the event took five)."""
    payment: Payment = yield from sql.insert_plan(Payment, **fields)
    endpoints = yield from merchant_events.endpoints_plan(payment.merchant_id)
    yield from merchant_events.charge_plan(outbox, "charge.created", payment, endpoints)
    return payment


async def _cob(
    client: PspClient,
    merchant: Merchant,
    amount_cents: int,
    description: str | None,
    expires_in: int,
    idempotency_key: str | None,
) -> tuple[str, str]:
    """The charge at the PSP: its txid (fixed before the call) and dynamic BR Code."""
    keyed = idempotency_key is not None
    txid = (
        psp_charges.cob_txid(merchant.id, idempotency_key)
        if idempotency_key is not None
        else new_txid(psp_charges.COB_TXID_LENGTH)
    )
    asked = psp_charges.cob_request(
        chave=merchant.pix_key,
        amount_cents=amount_cents,
        description=description,
        expires_in=expires_in,
    )
    cob = await psp_charges.create_cob(client, txid, asked, keyed=keyed)
    assert cob.pix_copia_e_cola is not None, "create_cob checks it"
    return txid, cob.pix_copia_e_cola


async def _idempotent_replay(
    merchant: Merchant, key: str, fingerprint: str | None
) -> Payment | None:
    existing = await sql.get_or_none(Payment, merchant_id=merchant.id, idempotency_key=key)
    if existing is not None and existing.request_hash != fingerprint:
        raise ConflictError("Idempotency-Key already used with a different request")
    return existing


async def get_payment(
    payment_id: UUID, *, merchant_id: int | None = None, with_merchant: bool = False
) -> Payment:
    """Load a payment (restricted to one merchant when given), or raise NotFoundError.

    `with_merchant` also loads `payment.merchant` (a join only the payer's page needs).
    """
    owner = {} if merchant_id is None else {"merchant_id": merchant_id}
    if with_merchant:
        payment = await Payment.filter(id=payment_id, **owner).select_related("merchant").first()
    else:  # the payer's socket and the API: `sql` builds this one's text once
        payment = await sql.get_or_none(Payment, id=payment_id, **owner)
    if payment is None:
        raise NotFoundError("payment not found")
    return payment


_BRCODES: OrderedDict[UUID, str] = OrderedDict()
BRCODES_KEPT = 4096


async def brcode_of(payment_id: UUID) -> str:
    """A payment's BR Code, remembered: it never changes, and QR images are asked often."""
    if (code := _BRCODES.get(payment_id)) is None:
        code = _BRCODES[payment_id] = (await get_payment(payment_id)).brcode
        if len(_BRCODES) > BRCODES_KEPT:
            _BRCODES.popitem(last=False)
    return code


@dataclass(frozen=True)
class Totals:
    count: int
    amount_cents: int


@dataclass(frozen=True)
class Page:
    items: list[Payment]
    next_cursor: str | None
    totals: Totals | None = None


@dataclass(frozen=True)
class PaymentFilter:
    """What a charges list (JSON, dashboard, CSV) is narrowed to; every field optional.

    `since` is inclusive and `until` exclusive (on `created_at`); `q` matches the
    description (case-insensitive substring, LIKE wildcards taken literally) or the exact txid.
    """

    status: PaymentStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None


def _status_filter(status: PaymentStatus, now: datetime) -> Q:
    if status == PaymentStatus.EXPIRED:
        return Q(status=PaymentStatus.PENDING, expires_at__lte=now)
    if status == PaymentStatus.PENDING:
        return Q(status=PaymentStatus.PENDING, expires_at__gt=now)
    return Q(status=status)


def filtered(merchant_id: int, where: PaymentFilter) -> QuerySet[Payment]:
    """The merchant's payments matching `where` (unordered): the lists' and exports' query."""
    query = Payment.filter(merchant_id=merchant_id)
    if where.status is not None:
        query = query.filter(_status_filter(where.status, utcnow()))
    if where.since is not None:
        query = query.filter(created_at__gte=where.since)
    if where.until is not None:
        query = query.filter(created_at__lt=where.until)
    if where.q:
        # Tortoise escapes %, _ and \ in icontains; a txid matches exactly.
        # A txid holds at most 35 characters: a longer q is only a description search (as a
        # filter value Tortoise refuses it, a 500).
        by_txid = Q(txid=where.q) if len(where.q) <= psp_charges.COB_TXID_LENGTH else Q(pk=None)
        query = query.filter(Q(description__icontains=where.q) | by_txid)
    return query


async def totals(merchant_id: int, where: PaymentFilter) -> Totals:
    """How many payments match and their summed amount, in one aggregate query."""
    rows = (
        await filtered(merchant_id, where)
        .annotate(count=Count("id"), total=Sum("amount_cents"))
        .values("count", "total")
    )
    row = rows[0] if rows else {}
    return Totals(count=int(row.get("count") or 0), amount_cents=int(row.get("total") or 0))


def encode_cursor(row: Payment | ReceivedPix | WebhookDelivery) -> str:
    """The opaque cursor after `row` in a newest-first list (payments, received Pix,
    webhook deliveries)."""
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type[UUID] | type[int] = UUID) -> Q:
    """The rows after a cursor: created before it, or at once with a smaller id."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id = raw.split("|")
        created_at, last_id = datetime.fromisoformat(created), id_type(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError("invalid cursor", fields={"cursor": "invalid cursor"}) from exc
    return Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=last_id)


async def list_payments(
    merchant_id: int,
    *,
    status: PaymentStatus | None = None,
    limit: int = 20,
    cursor: str | None = None,
    where: PaymentFilter | None = None,
    with_totals: bool = False,
) -> Page:
    """List a merchant's payments newest first, a page at a time (totals for the filter)."""
    if where is None:
        where = PaymentFilter(status=status)
    query = filtered(merchant_id, where)
    if cursor:
        query = query.filter(decode_cursor(cursor))
    items = await query.order_by("-created_at", "-id").limit(limit + 1)
    more = len(items) > limit
    items = items[:limit]
    summary = await totals(merchant_id, where) if with_totals else None
    return Page(items, encode_cursor(items[-1]) if more else None, summary)


async def cancel_payment(
    payment_id: UUID, *, merchant_id: int, broker: Broker, clients: PspClients | None = None
) -> Payment:
    """Cancel a pending, unexpired payment; anything else is a ConflictError.

    A charge made at the merchant's PSP is removed there first: the PSP failing or refusing
    (PspError) leaves the charge as it was."""
    now = utcnow()
    if clients is not None:
        await _remove_cob(payment_id, merchant_id, clients, now)
    outbox = Outbox()
    async with in_transaction():
        updated = await Payment.filter(
            id=payment_id, merchant_id=merchant_id, status=PaymentStatus.PENDING, expires_at__gt=now
        ).update(status=PaymentStatus.CANCELLED, cancelled_at=now)
        payment = await get_payment(payment_id, merchant_id=merchant_id)
        if updated:
            await merchant_events.charge(outbox, "charge.cancelled", payment)
    if not updated:
        raise ConflictError(f"payment is {payment.status_at(now)}, only pending can be cancelled")
    status_event(payment, outbox)
    await outbox.publish(broker)
    return payment


async def _remove_cob(
    payment_id: UUID, merchant_id: int, clients: PspClients, now: datetime
) -> None:
    payment = await get_payment(payment_id, merchant_id=merchant_id)
    if not psp_charges.is_cob(payment.txid) or payment.status_at(now) != PaymentStatus.PENDING:
        return  # a static charge, or one the conflict below names
    client = await clients.for_merchant(merchant_id)
    if client is not None:
        await psp_charges.remove_cob(client, payment.txid)


def status_event(payment: Payment, outbox: Outbox) -> None:
    """Tell the payment's page and its merchant's dashboard about its new status.

    The event carries the committed state a page shows (status, paid_at), so a page's
    room renders it without reading the payment again (`apply_status_event`). It is built
    from `payment` alone, never from a status given beside it: the caller first brings
    `payment` to what it committed (a re-read, or `settlement._mark_paid`).
    """
    status = payment.status
    assert (status in PAID_STATES) == (payment.paid_at is not None), "stale payment"
    event = {
        "type": f"payment.{status}",
        "payment_id": str(payment.id),
        "merchant_id": payment.merchant_id,
        "status": str(status),
        "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
    }
    outbox.add(payment_channel(payment.id), event)
    outbox.add(account_channel(payment.merchant_id), event)


def apply_status_event(payment: Payment, event: Event) -> bool:
    """Bring a loaded payment up to a `status_event` of its own; False for any other event."""
    if event.get("payment_id") != str(payment.id) or "status" not in event:
        return False
    try:
        status = PaymentStatus(event["status"])
        paid_at = datetime.fromisoformat(event["paid_at"]) if event.get("paid_at") else None
    except (TypeError, ValueError):
        return False
    if (status in PAID_STATES) != (paid_at is not None):
        return False  # not a state a payment can be in: the caller reads the real one
    payment.status, payment.paid_at = status, paid_at
    return True


async def record_first_view(payment: Payment) -> None:
    """Record when a payer first opened the charge's page (the timeline's "abriu a página").

    Free once recorded (the loaded payment says so); else one conditional UPDATE, so of
    two first views at once only one write lands and later views change nothing.
    """
    if payment.first_viewed_at is not None:
        return
    now = utcnow()
    query = Payment.filter(id=payment.id, first_viewed_at__isnull=True)
    if await query.update(first_viewed_at=now):
        payment.first_viewed_at = now
