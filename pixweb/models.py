"""Tortoise models: merchants and their PIX payments."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import uuid4

from tortoise import fields
from tortoise.models import Model

# Model docstrings become table comments: Tortoise 1.1 splits SQLite DDL on ";", so
# a semicolon in a docstring breaks the migration. Keep them out.


class PaymentStatus(StrEnum):
    """Stored status. `expired` is derived from `expires_at`, never stored."""

    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Merchant(Model):
    """A business that charges with PIX, paid to its Pix key."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    city = fields.CharField(max_length=60)
    pix_key = fields.CharField(max_length=77)
    pix_key_type = fields.CharField(max_length=5)
    created_at = fields.DatetimeField(auto_now_add=True)

    payments: fields.ReverseRelation[Payment]

    class Meta:
        table = "merchant"


class Payment(Model):
    """A PIX charge: one static BR Code with amount and a unique txid."""

    id = fields.UUIDField(primary_key=True, default=uuid4)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="payments", on_delete=fields.RESTRICT
    )
    amount_cents = fields.BigIntField()
    description = fields.CharField(max_length=140, null=True)
    txid = fields.CharField(max_length=25, unique=True)
    brcode = fields.TextField()
    status = fields.CharEnumField(PaymentStatus, max_length=9, default=PaymentStatus.PENDING)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)
    end_to_end_id = fields.CharField(max_length=32, null=True, unique=True)
    idempotency_key = fields.CharField(max_length=255, null=True)
    request_hash = fields.CharField(max_length=64, null=True)

    merchant_id: int

    class Meta:
        table = "payment"
        unique_together = (("merchant_id", "idempotency_key"),)
        indexes = (("merchant_id", "created_at"),)

    def status_at(self, now: datetime) -> PaymentStatus:
        """Return the status as the payer sees it at `now` (pending turns expired)."""
        if self.status == PaymentStatus.PENDING and now >= self.expires_at:
            return PaymentStatus.EXPIRED
        return self.status
