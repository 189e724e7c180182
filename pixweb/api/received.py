"""Received Pix as the API shows them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from pixweb.api.errors import STATUS
from pixweb.errors import PixwebError
from pixweb.models import PixOutcome, PixSource, ReceivedPix
from pixweb.services import received


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
