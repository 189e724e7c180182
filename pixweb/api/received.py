"""Received Pix: the merchant's list ("Pix a conciliar"), and attaching one to a charge."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import (
    document_headers,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from pixweb.api.errors import STATUS
from pixweb.api.openapi import errors
from pixweb.api.security import bearer_required
from pixweb.api.types import IdempotencyHeaders, Timestamp, idempotency_key
from pixweb.deps import current_merchant, get_broker, requires_scope
from pixweb.errors import NotFoundError, PixwebError
from pixweb.models import PixOutcome, PixSource, ReceivedPix
from pixweb.services import received

blueprint = Blueprint("api_received", __name__)

PAGE_MAX = 100


class ReceivedPixOut(BaseModel):
    end_to_end_id: str = Field(
        description='The BCB endToEndId, or "txid:<txid>" for a bank confirmation that named none'
    )
    txid: str | None = Field(description="The charge's txid the Pix carried, if any")
    value: str = Field(examples=["30.00"])
    paid_at: datetime = Field(description="When the payer's bank paid it (the PSP's horario)")
    payer_name: str | None
    payer_document: str | None = Field(
        description="Masked CPF (***.456.789-**) or CNPJ (**.345.678/0001-**)"
    )
    source: PixSource
    outcome: PixOutcome = Field(
        description="matched: it paid `payment_id` (or was attached to it). late: its charge"
        " had expired or been cancelled. duplicate: its charge was already paid."
        " amount_mismatch: another amount than its charge's. unknown_txid: its txid names no"
        " charge of yours. no_txid: paid to the Pix key directly. Every one was credited."
    )
    original_outcome: PixOutcome | None = Field(
        description="What it was before you attached it to a charge"
    )
    payment_id: UUID | None = Field(description="The charge it paid, or the one its txid names")
    created_at: datetime = Field(description="When pixweb recorded it")

    @classmethod
    def of(cls, record: ReceivedPix) -> ReceivedPixOut:
        return cls.model_validate(received.received_dict(record))


class ReceivedPixList(BaseModel):
    items: list[ReceivedPixOut]
    next_cursor: str | None


class ReceivedQuery(BaseModel):
    outcome: PixOutcome | None = None
    since: Timestamp | None = Field(None, description="Recorded at or after this time")
    limit: int = Field(20, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(
        None, max_length=200, description="Opaque: a `next_cursor` (400 for any other value)"
    )


class AttachIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    payment_id: UUID = Field(strict=False, description="A pending or expired charge of yours")


def _absent(value: object) -> bool:
    return value is None


class ReconcileErrorOut(BaseModel):
    """An error (as every other) that may carry the received Pix the charge could not take."""

    error: str = Field(examples=["conflict"])
    detail: str
    fields: dict[str, str] | None = Field(
        None, exclude_if=_absent, description="A message per field at fault"
    )
    received_pix: ReceivedPixOut | None = Field(
        None,
        exclude_if=_absent,
        description="The bank's Pix, recorded and credited, that the charge could not take",
    )


def reconcile_error(error: PixwebError, record: ReceivedPix) -> tuple[ReconcileErrorOut, int]:
    """A refused charge's error with the received Pix it recorded (a 409 or 422)."""
    status = next(s for cls, s in STATUS.items() if isinstance(error, cls))
    body = {"error": error.code, "detail": error.detail, "fields": error.fields}
    received_pix = ReceivedPixOut.of(record)
    return ReconcileErrorOut.model_validate({**body, "received_pix": received_pix}), status


@blueprint.get("/pix/received")
@tag(["received Pix"])
@bearer_required
@requires_scope("charges:read")
@validate_querystring(ReceivedQuery)
@validate_response(ReceivedPixList)
async def list_received(query_args: ReceivedQuery) -> ReceivedPixList:
    """List the Pix your account received, newest recorded first (filter by `outcome`)."""
    merchant = await current_merchant()
    page = await received.list_received(
        merchant.id,
        outcome=query_args.outcome,
        since=query_args.since,
        limit=query_args.limit,
        cursor=query_args.cursor,
    )
    items = [ReceivedPixOut.of(record) for record in page.items]
    return ReceivedPixList(items=items, next_cursor=page.next_cursor)


@blueprint.post("/pix/received/<end_to_end_id>/attach")
@tag(["received Pix"])
@bearer_required
@requires_scope("charges:write")
@document_headers(IdempotencyHeaders)
@errors(409)
@validate_request(AttachIn)
@validate_response(ReceivedPixOut)
async def attach_received(end_to_end_id: str, data: AttachIn) -> ReceivedPixOut:
    """Let a received Pix that paid no charge pay one of your pending or expired charges.

    The charge becomes paid (its page is told); the Pix was credited when it arrived and is
    not credited again. 404 for a Pix or charge that is not yours, 409 for a charge paid or
    cancelled, or a Pix that already paid another.
    """
    merchant = await current_merchant()
    if len(end_to_end_id) > received.E2E_MAX:
        raise NotFoundError("no received Pix with this end_to_end_id")
    record, _ = await received.attach(
        merchant.id,
        end_to_end_id,
        data.payment_id,
        idempotency_key=idempotency_key(),
        broker=get_broker(),
    )
    return ReceivedPixOut.of(record)
