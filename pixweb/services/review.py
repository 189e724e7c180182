"""What paying a pasted BR Code from the balance would do, read before any money moves.

The dashboard shows this review (who receives, how much, for what) and only then asks to
confirm; the confirmation itself is `settlement.pay_brcode`, which checks everything again
inside its transaction. The review refuses what the payment would refuse, with the same
errors, so a refusal is told before the merchant confirms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pixweb.errors import ConflictError, UnprocessableError
from pixweb.models import Merchant, PaymentStatus
from pixweb.services import ledger
from pixweb.services.clock import utcnow

# The one reading of "this code is a pixweb charge", shared with the payment itself.
from pixweb.services.settlement import pixweb_charge


@dataclass(frozen=True)
class ChargeReview:
    """A pixweb charge as its payer sees it before paying."""

    code: str
    payment_id: UUID
    recipient: str
    city: str
    amount_cents: int
    description: str | None
    expires_at: datetime


async def review_brcode(payer: Merchant, code: str) -> ChargeReview:
    """Describe the charge `code` stands for; raise what paying it now would raise."""
    payment = await pixweb_charge(code)
    if payment.merchant_id == payer.id:
        raise UnprocessableError("cannot pay your own charge", fields={"brcode": "your own"})
    status = payment.status_at(utcnow())
    if status != PaymentStatus.PENDING:
        raise ConflictError(f"payment is {status} and cannot be paid")
    account = await ledger.get_account(payer.id)
    if account.balance_cents < payment.amount_cents:
        raise ledger.InsufficientFundsError(
            "insufficient balance", fields={"value": "exceeds balance"}
        )
    return ChargeReview(
        code=payment.brcode,
        payment_id=payment.id,
        recipient=payment.merchant.name,
        city=payment.merchant.city,
        amount_cents=payment.amount_cents,
        description=payment.description,
        expires_at=payment.expires_at,
    )
