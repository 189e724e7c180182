"""Charges' service functions that need no database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from pixweb.models import Payment, PaymentStatus
from pixweb.services.payments import TXID_ALPHABET, TXID_LENGTH, apply_status_event, new_txid


def test_txids_are_25_alphanumerics_drawn_uniformly() -> None:
    txids = [new_txid() for _ in range(4000)]
    assert len(set(txids)) == len(txids)
    assert all(len(t) == TXID_LENGTH and t.isascii() and t.isalnum() for t in txids)
    counts = Counter("".join(txids))
    assert set(counts) == set(TXID_ALPHABET)
    expected = len(txids) * TXID_LENGTH / len(TXID_ALPHABET)  # ~1,613 each
    # A plain `byte % 62` would draw the first 8 characters 25% more often than the rest.
    assert all(abs(n - expected) < 0.12 * expected for n in counts.values()), counts


def test_a_status_event_brings_a_loaded_payment_up_to_date() -> None:
    payment = Payment(id=uuid4(), status=PaymentStatus.PENDING, paid_at=None)
    paid_at = datetime(2026, 11, 28, 12, 30, 15, 123456, tzinfo=UTC)
    event = {
        "type": "payment.paid",
        "payment_id": str(payment.id),
        "status": "paid",
        "paid_at": paid_at.isoformat(),
    }
    assert apply_status_event(payment, event)
    assert (payment.status, payment.paid_at) == (PaymentStatus.PAID, paid_at)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "payment.paid", "payment_id": "another", "status": "paid", "paid_at": None},
        {"type": "payment.expired", "at": 1.0},  # the room's own expiry timer
        {"type": "payment.paid", "status": "refunded"},
        {"type": "payment.paid", "status": "paid", "paid_at": "yesterday"},
    ],
)
def test_anything_else_leaves_the_payment_alone(event: dict[str, object]) -> None:
    payment = Payment(id=uuid4(), status=PaymentStatus.PENDING, paid_at=None)
    event.setdefault("payment_id", str(payment.id))
    assert not apply_status_event(payment, event)
    assert (payment.status, payment.paid_at) == (PaymentStatus.PENDING, None)
