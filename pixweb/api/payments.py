"""PIX charges for merchants, their QR images, and the bank's confirmation call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from quart import Blueprint, Response
from quart_schema import (
    document_headers,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from pixweb import money, validation
from pixweb.api.openapi import errors, media
from pixweb.api.received import ReconcileErrorOut, reconcile_error
from pixweb.api.security import bearer_required, signed_by_bank
from pixweb.api.types import (
    INTEGER,
    TEXT,
    Amount,
    IdempotencyHeaders,
    Timestamp,
    idempotency_key,
)
from pixweb.deps import current_merchant, get_broker, get_psp_clients, requires_scope
from pixweb.errors import NotFoundError
from pixweb.models import Payment, PaymentStatus
from pixweb.pix import qr
from pixweb.presenters import payment_dict, public_base
from pixweb.services import payments, psp_charges, settlement

blueprint = Blueprint("api_payments", __name__)

QR_MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


ExpiresIn = Annotated[int, Field(ge=payments.EXPIRES_MIN, le=payments.EXPIRES_MAX), INTEGER]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: Amount
    description: str | None = Field(None, max_length=140, json_schema_extra=TEXT)
    expires_in: ExpiresIn = payments.EXPIRES_DEFAULT


class QrCodeLinks(BaseModel):
    png: str
    svg: str


class PaymentOut(BaseModel):
    id: UUID
    value: str = Field(examples=["100.00"])
    description: str | None
    status: PaymentStatus
    bank_payment_id: str = Field(description="The txid the bank's confirmation carries")
    brcode: str = Field(description="Pix Copia e Cola")
    qr_code: QrCodeLinks
    payment_url: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls.model_validate(payment_dict(payment))


class PaymentTotals(BaseModel):
    count: int = Field(description="Payments matching the filter, across all pages")
    value: str = Field(examples=["1234.56"], description="Their amounts summed")


class PaymentList(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None
    totals: PaymentTotals


class PaymentFilterQuery(BaseModel):
    """The charges lists' filters (JSON list, CSV export): `to_filter()` for the service."""

    status: PaymentStatus | None = None
    since: Timestamp | None = Field(
        None, description="RFC 3339, inclusive (created at or after): 2024-05-01T12:00:00Z"
    )
    until: Timestamp | None = Field(
        None, description="RFC 3339, exclusive (created before): 2024-05-01T12:00:00Z"
    )
    q: str | None = Field(
        None,
        min_length=1,
        max_length=140,
        description="Search: part of the description (case-insensitive) or the exact txid",
        json_schema_extra=TEXT,
    )

    @field_validator("q")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and validation.has_forbidden(value):
            raise ValueError("must not contain control characters")
        return value

    def to_filter(self) -> payments.PaymentFilter:
        return payments.PaymentFilter(
            status=self.status, since=self.since, until=self.until, q=self.q
        )


class ListQuery(PaymentFilterQuery):
    limit: int = Field(20, ge=1, le=payments.PAGE_MAX)
    cursor: str | None = Field(
        None, max_length=200, description="Opaque: a `next_cursor` (400 for any other value)"
    )


class ConfirmationIn(BaseModel):
    # Banks add fields of their own (horario, infoPagador...): ignored, not refused.
    model_config = ConfigDict(extra="ignore", strict=True)
    # pixweb's static charges have 25-character txids, those made at a PSP 35 (the API Pix's
    # maximum, which the database holds).
    bank_payment_id: str = Field(
        min_length=1,
        max_length=psp_charges.COB_TXID_LENGTH,
        description="The charge's txid",
        json_schema_extra=TEXT,
    )
    value: Amount
    end_to_end_id: str | None = Field(None, pattern=r"^E[0-9]{8}[0-9]{12}[A-Za-z0-9]{11}$")


@blueprint.post("/payments/pix")
@tag(["payments"])
@bearer_required
@requires_scope("charges:write")
@document_headers(IdempotencyHeaders)
@errors(409, 422, 502, 503)
@validate_request(PaymentIn)
@validate_response(PaymentOut, 201)
@validate_response(PaymentOut, 200)
async def create_payment(data: PaymentIn) -> tuple[PaymentOut, int]:
    """Create a PIX charge: BR Code, QR code links and payment page.

    With a PSP connected, the charge is created at the PSP first (`PUT /cob/{txid}`) and
    `brcode` is its dynamic code; a retry with the same Idempotency-Key never creates a
    second one. The PSP refusing is a 422 naming its violations, failing a 502, unreachable
    a 503: no charge is created then. Without a PSP, the BR Code is static."""
    merchant = await current_merchant()
    payment, created = await payments.create_payment(
        merchant,
        amount_cents=data.value,
        description=data.description,
        expires_in=data.expires_in,
        idempotency_key=idempotency_key(),
        broker=get_broker(),
        clients=get_psp_clients(),
        public_base=public_base(),
    )
    payment.merchant = merchant
    return PaymentOut.of(payment), 201 if created else 200


@blueprint.get("/payments")
@tag(["payments"])
@bearer_required
@requires_scope("charges:read")
@validate_querystring(ListQuery)
@validate_response(PaymentList)
async def list_payments(query_args: ListQuery) -> PaymentList:
    """List the merchant's payments, newest first, filtered; `totals` cover every page."""
    merchant = await current_merchant()
    page = await payments.list_payments(
        merchant.id,
        where=query_args.to_filter(),
        limit=query_args.limit,
        cursor=query_args.cursor,
        with_totals=True,
    )
    assert page.totals is not None
    return PaymentList(
        items=[PaymentOut.of(p) for p in page.items],
        next_cursor=page.next_cursor,
        totals=PaymentTotals(
            count=page.totals.count, value=money.format_amount(page.totals.amount_cents)
        ),
    )


@blueprint.get("/payments/<uuid:payment_id>")
@tag(["payments"])
@bearer_required
@requires_scope("charges:read")
@validate_response(PaymentOut)
async def get_payment(payment_id: UUID) -> PaymentOut:
    """Fetch one of the merchant's payments."""
    merchant = await current_merchant()
    return PaymentOut.of(await payments.get_payment(payment_id, merchant_id=merchant.id))


@blueprint.post("/payments/<uuid:payment_id>/cancel")
@tag(["payments"])
@bearer_required
@requires_scope("charges:write")
@errors(409, 422, 502, 503)
@validate_response(PaymentOut)
async def cancel_payment(payment_id: UUID) -> PaymentOut:
    """Cancel a pending payment (removed at the PSP first when it was created there: the
    PSP refusing 422, failing 502, unreachable 503, and the charge stays as it was)."""
    merchant = await current_merchant()
    payment = await payments.cancel_payment(
        payment_id, merchant_id=merchant.id, broker=get_broker(), clients=get_psp_clients()
    )
    return PaymentOut.of(payment)


@blueprint.get("/payments/pix/qr_code/<filename>")
@tag(["payments"])
@media(200, *QR_MEDIA_TYPES.values(), description="The QR image")
async def qr_code(filename: str) -> Response:
    """The payment's BR Code as a QR image: `<id>.png` or `<id>.svg`."""
    stem, _, extension = filename.rpartition(".")
    try:
        payment_id = UUID(stem)
    except ValueError:
        raise NotFoundError("no such QR code") from None
    if extension not in QR_MEDIA_TYPES or str(payment_id) != stem.lower():
        raise NotFoundError("no such QR code")
    code = await payments.brcode_of(payment_id)
    image = qr.png(code) if extension == "png" else qr.svg(code)
    response = Response(image, content_type=QR_MEDIA_TYPES[extension])
    # A payment's BR Code never changes: the image can be cached for good.
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


class ConfirmationHeaders(BaseModel):
    x_pix_signature: str = Field(description="sha256=<hex HMAC-SHA256 of the raw body>")


CONFIRMATION_DETAILS = {
    settlement.Confirmation.SETTLED: "This confirmation settled the charge.",
    settlement.Confirmation.REPLAYED: (
        "The charge was already settled by this same confirmation: nothing changed."
    ),
    settlement.Confirmation.ALREADY_SETTLED_BY_BALANCE: (
        "The charge was already settled by a payment from a pixweb balance. This Pix is a"
        " separate received Pix: it was not credited to the charge, and the merchant was"
        " notified."
    ),
}
# With its end_to_end_id, a Pix for a charge paid from a balance is money of its own.
RECORDED_DUPLICATE_DETAIL = (
    "The charge was already settled by a payment from a pixweb balance. This Pix was"
    " recorded as a separate received Pix (duplicate) and credited to the merchant, to"
    " reconcile (GET /pix/received)."
)


class ConfirmationOut(PaymentOut):
    confirmation: settlement.Confirmation = Field(
        description="settled: this confirmation paid the charge. replayed: a repeat of the"
        " confirmation that paid it. already_settled_by_balance: the charge had been paid"
        " from a pixweb balance; this Pix, with an end_to_end_id, was recorded and credited"
        " as a received Pix to reconcile (without one: not credited, the merchant notified)."
    )
    detail: str = Field(description="The same, in a sentence")


@blueprint.post("/payments/pix/confirmation")
@tag(["bank"])
@document_headers(ConfirmationHeaders)
@errors(401, 404, 409, 422)
@signed_by_bank
@validate_request(ConfirmationIn)
@validate_response(ConfirmationOut)
@validate_response(ReconcileErrorOut, 409)
@validate_response(ReconcileErrorOut, 422)
async def confirm_payment(
    data: ConfirmationIn,
) -> ConfirmationOut | tuple[ReconcileErrorOut, int]:
    """The bank confirms a PIX received for a payment (idempotent).

    200 with the payment and `confirmation`, which says what happened: `settled` (this
    confirmation paid the charge and credited the merchant), `replayed` (the bank repeated
    the confirmation that paid it: nothing changed) or `already_settled_by_balance` (the
    charge had been paid from a pixweb balance; this Pix is a separate received Pix).

    A Pix with an `end_to_end_id` is money in the merchant's account whatever its charge
    says: late (charge expired or cancelled: 409), a second one for a paid charge (409) or
    of another amount (422) is recorded once and credited as a received Pix to reconcile,
    and the error carries it as `received_pix`. Without an `end_to_end_id` only a Pix that
    pays its charge is recorded: the others cannot be told from a repeat. An unknown
    `bank_payment_id` is a 404: no merchant to credit.
    """
    try:
        payment, outcome = await settlement.confirm_payment(
            txid=data.bank_payment_id,
            amount_cents=data.value,
            end_to_end_id=data.end_to_end_id,
            broker=get_broker(),
        )
    except (settlement.PixToReconcileError, settlement.AmountToReconcileError) as error:
        return reconcile_error(error, error.received)
    detail = CONFIRMATION_DETAILS[outcome]
    if outcome == settlement.Confirmation.ALREADY_SETTLED_BY_BALANCE and data.end_to_end_id:
        detail = RECORDED_DUPLICATE_DETAIL
    return ConfirmationOut.model_validate(
        {**payment_dict(payment), "confirmation": outcome, "detail": detail}
    )
