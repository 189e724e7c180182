"""What the API, the pages and the sockets show of a payment, in one place.

`payment_dict` is the JSON shape (API responses and `?format=json` sockets);
`status_context` feeds `partials/payment_status.html` (page, HTMX and socket pushes).
"""

from __future__ import annotations

from typing import Any

from quart import url_for

from pixweb import money
from pixweb.models import Payment, PaymentStatus
from pixweb.pix import qr
from pixweb.services.clock import utcnow


def payment_dict(payment: Payment) -> dict[str, Any]:
    """Describe a payment as the API does, with absolute links to its QR codes and page."""
    qr_endpoint = "api_payments.qr_code"
    return {
        "id": payment.id,
        "value": money.format_amount(payment.amount_cents),
        "description": payment.description,
        "status": payment.status_at(utcnow()),
        "bank_payment_id": payment.txid,
        "brcode": payment.brcode,
        "qr_code": {
            "png": url_for(qr_endpoint, filename=f"{payment.id}.png", _external=True),
            "svg": url_for(qr_endpoint, filename=f"{payment.id}.svg", _external=True),
        },
        "payment_url": url_for("web_payments.payment_page", payment_id=payment.id, _external=True),
        "created_at": payment.created_at,
        "expires_at": payment.expires_at,
        "paid_at": payment.paid_at,
    }


def status_context(payment: Payment, *, oob: bool = False) -> dict[str, Any]:
    """Variables of the status partial; `oob` marks a push that HTMX swaps by id."""
    status = payment.status_at(utcnow())
    return {
        "payment": payment,
        "status": status,
        "qr_svg": qr.svg_inline(payment.brcode) if status == PaymentStatus.PENDING else "",
        "oob": oob,
    }
