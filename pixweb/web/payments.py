"""The payer's page of one PIX charge, and the development sandbox that pays it."""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, Response, render_template, request
from quart_schema import hide

from pixweb.deps import get_broker, get_config
from pixweb.errors import ConflictError, NotFoundError
from pixweb.presenters import status_context
from pixweb.services import payments, settlement

blueprint = Blueprint("web_payments", __name__)


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


@blueprint.get("/payments/pix/<uuid:payment_id>")
@hide
async def payment_page(payment_id: UUID) -> Response:
    """Show the QR code, copy-paste code, amount and live status of a charge."""
    payment = await payments.get_payment(payment_id, with_merchant=True)
    context = status_context(payment, sandbox=not get_config().production)
    template = "partials/payment_status.html" if _htmx() else "pages/payment.html"
    body = await render_template(template, **context)
    # The same URL answers a page or a partial, and the status must never be stale.
    return Response(body, headers={"Vary": "HX-Request", "Cache-Control": "no-store"})


@blueprint.post("/payments/pix/<uuid:payment_id>/simulate")
@hide
async def simulate_payment(payment_id: UUID) -> tuple[str, int]:
    """Sandbox (development only): pay the charge through the bank confirmation's service."""
    if get_config().production:
        raise NotFoundError("not found")
    payment = await payments.get_payment(payment_id)
    status = 200
    try:
        payment, _ = await settlement.confirm_payment(
            txid=payment.txid,
            amount_cents=payment.amount_cents,
            end_to_end_id=None,
            broker=get_broker(),
        )
    except ConflictError:
        status = 409  # expired or cancelled: the partial shows why
    context = status_context(payment, sandbox=True)
    return await render_template("partials/payment_status.html", **context), status
