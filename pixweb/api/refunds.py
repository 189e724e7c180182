"""Refunds of a charge and of a received Pix: ask for one, list them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import document_headers, tag, validate_request, validate_response

from pixweb import validation
from pixweb.api.openapi import errors
from pixweb.api.security import bearer_required
from pixweb.api.types import TEXT, Amount, IdempotencyHeaders, idempotency_key
from pixweb.deps import current_merchant, get_broker, get_psp_clients, requires_scope
from pixweb.errors import NotFoundError
from pixweb.models import Refund, RefundStatus
from pixweb.services import received, refunds

blueprint = Blueprint("api_refunds", __name__)


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: Amount | None = Field(None, description="What to refund (default: all that is left)")
    description: str | None = Field(None, max_length=140, json_schema_extra=TEXT)
    external: bool = Field(
        False,
        description="Without a connected PSP: you refunded it in your bank app, record it here",
    )

    def request(self) -> refunds.Request:
        return refunds.Request(self.value, self.description, self.external, idempotency_key())


class RefundOut(BaseModel):
    id: UUID
    end_to_end_id: str | None = Field(description="The refunded Pix (none: paid from a balance)")
    value: str = Field(examples=["10.00"])
    description: str | None
    status: RefundStatus = Field(
        description="processing: asked of the PSP, its value already debited. refunded: done."
        " failed: the PSP did not make it (`reason`), its value credited back"
    )
    reason: str | None
    requested_at: datetime
    settled_at: datetime | None
    payment_id: UUID | None = Field(description="The charge it refunds, if the Pix paid one")
    external: bool = Field(description="Made in the bank app and recorded here")

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        return cls.model_validate(refunds.refund_dict(refund))


class RefundList(BaseModel):
    items: list[RefundOut]


def _named(end_to_end_id: str) -> None:
    """A path no received Pix can have (too long, control characters) names none: 404."""
    if len(end_to_end_id) > received.E2E_MAX or validation.has_forbidden(end_to_end_id):
        raise NotFoundError("no received Pix with this end_to_end_id")


@blueprint.post("/payments/<uuid:payment_id>/refunds")
@tag(["refunds"])
@bearer_required
@requires_scope("refunds:write")
@document_headers(IdempotencyHeaders)
@errors(409, 422, 502, 503)
@validate_request(RefundIn)
@validate_response(RefundOut, 201)
@validate_response(RefundOut, 200)
async def refund_payment(payment_id: UUID, data: RefundIn) -> tuple[RefundOut, int]:
    """Refund a paid charge, fully (the default) or in part.

    Through your PSP, or in the ledger for a charge paid from a pixweb balance; without a
    PSP, record a refund you made in your bank app (`external`). The value leaves your
    balance now and comes back if the PSP does not make it. 422 names the rule refused.
    """
    merchant = await current_merchant()
    refund, created = await refunds.refund_payment(
        merchant.id, payment_id, data.request(), clients=get_psp_clients(), broker=get_broker()
    )
    return RefundOut.of(refund), 201 if created else 200


@blueprint.get("/payments/<uuid:payment_id>/refunds")
@tag(["refunds"])
@bearer_required
@requires_scope("charges:read")
@validate_response(RefundList)
async def list_payment_refunds(payment_id: UUID) -> RefundList:
    """List a charge's refunds, oldest first."""
    merchant = await current_merchant()
    items = await refunds.list_for_payment(merchant.id, payment_id)
    return RefundList(items=[RefundOut.of(refund) for refund in items])


@blueprint.post("/pix/received/<end_to_end_id>/refunds")
@tag(["refunds"])
@bearer_required
@requires_scope("refunds:write")
@document_headers(IdempotencyHeaders)
@errors(409, 422, 502, 503)
@validate_request(RefundIn)
@validate_response(RefundOut, 201)
@validate_response(RefundOut, 200)
async def refund_received(end_to_end_id: str, data: RefundIn) -> tuple[RefundOut, int]:
    """Refund a received Pix (one that paid no charge, or one that did), fully or in part."""
    merchant = await current_merchant()
    _named(end_to_end_id)
    refund, created = await refunds.refund_received(
        merchant.id, end_to_end_id, data.request(), clients=get_psp_clients(), broker=get_broker()
    )
    return RefundOut.of(refund), 201 if created else 200


@blueprint.get("/pix/received/<end_to_end_id>/refunds")
@tag(["refunds"])
@bearer_required
@requires_scope("charges:read")
@validate_response(RefundList)
async def list_received_refunds(end_to_end_id: str) -> RefundList:
    """List a received Pix's refunds, oldest first."""
    merchant = await current_merchant()
    _named(end_to_end_id)
    items = await refunds.list_for_received(merchant.id, end_to_end_id)
    return RefundList(items=[RefundOut.of(refund) for refund in items])
