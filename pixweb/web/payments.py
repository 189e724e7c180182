"""The payer's page of one PIX charge, and the development sandbox that pays it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from quart import Blueprint, Response, render_template, request, session
from quart_schema import hide

from pixweb import money
from pixweb.deps import SESSION_MERCHANT, get_broker, get_config
from pixweb.errors import ConflictError, InvalidInputError, NotFoundError, UnprocessableError
from pixweb.models import Payment, PaymentStatus
from pixweb.presenters import status_context
from pixweb.psp.sandbox.http import get_worker
from pixweb.psp.sandbox.problems import SandboxError
from pixweb.psp.sandbox.scenarios import Scenario
from pixweb.services import payments, psp_sandbox, settlement
from pixweb.services.clock import utcnow

blueprint = Blueprint("web_payments", __name__)

# Apps that fetch a shared link to draw its preview: a WhatsApp message is not a payer.
LINK_PREVIEWERS = ("whatsapp", "facebookexternalhit", "telegrambot", "twitterbot", "slackbot")


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _payer_opened(payment: Payment) -> bool:
    """Whether this GET is a person opening the payer's page: not the page's own HTMX
    refresh, not the charge's merchant (its session says so, no query), not a preview."""
    if request.method != "GET" or _htmx():
        return False
    if session.get(SESSION_MERCHANT) == payment.merchant_id:
        return False
    agent = request.headers.get("User-Agent", "").lower()
    return not any(name in agent for name in LINK_PREVIEWERS)


@blueprint.get("/payments/pix/<uuid:payment_id>")
@hide
async def payment_page(payment_id: UUID) -> Response:
    """Show the QR code, copy-paste code, amount and live status of a charge."""
    payment = await payments.get_payment(payment_id, with_merchant=True)
    if payment.first_viewed_at is None and _payer_opened(payment):
        await payments.record_first_view(payment)
    context = status_context(payment, sandbox=not get_config().production)
    template = "partials/payment_status.html" if _htmx() else "pages/payment.html"
    body = await render_template(template, **context)
    # The same URL answers a page or a partial, and the status must never be stale.
    return Response(body, headers={"Vary": "HX-Request", "Cache-Control": "no-store"})


RECEIPT_STATES = {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}


@blueprint.get("/payments/pix/<uuid:payment_id>/comprovante")
@hide
async def receipt_page(payment_id: UUID) -> Response:
    """The payer's printable receipt of a paid charge (404 before it is paid)."""
    payment = await payments.get_payment(payment_id, with_merchant=True)
    if payment.status not in RECEIPT_STATES:
        raise NotFoundError("no receipt: the charge is not paid")
    body = await render_template("pages/receipt.html", payment=payment)
    return Response(body, headers={"Cache-Control": "no-store"})


async def _simulation() -> tuple[Scenario, int | None]:
    """`{"scenario", "value"?}` as JSON or a form (the panel's buttons); none: exact."""
    given: dict[str, Any] = {}
    if request.is_json:
        body = await request.get_json(silent=True)
        given = body if isinstance(body, dict) else {}
    else:
        given = dict((await request.form).items())
    try:
        scenario = Scenario(given.get("scenario") or Scenario.EXACT)
    except ValueError:
        names = ", ".join(s.value for s in Scenario)
        raise InvalidInputError(
            f"scenario must be one of {names}", fields={"scenario": f"one of {names}"}
        ) from None
    value = given.get("value")
    cents = None if value in (None, "") else money.parse_amount(value)
    return scenario, cents


@blueprint.post("/payments/pix/<uuid:payment_id>/simulate")
@hide
async def simulate_payment(payment_id: UUID) -> tuple[str, int]:
    """Sandbox (development only): a payer pays the charge. A charge at the sandbox PSP is
    paid there as the scenario says (its webhook reaches the intake); a static one through
    the bank confirmation's service, as before the sandbox PSP."""
    if get_config().production:
        raise NotFoundError("not found")
    scenario, cents = await _simulation()
    payment = await payments.get_payment(payment_id)
    if await psp_sandbox.is_sandbox_charge(payment):
        status = await _pay_at_sandbox(payment, scenario, cents)
    else:
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


async def _pay_at_sandbox(payment: Payment, scenario: Scenario, cents: int | None) -> int:
    """Pay a pending charge at the sandbox PSP: 200; 409 when expired or cancelled (the
    partial shows why); a paid charge is left alone (200), as the bank's call does."""
    now_status = payment.status_at(utcnow())
    if now_status in (PaymentStatus.EXPIRED, PaymentStatus.CANCELLED):
        return 409
    if now_status == PaymentStatus.PENDING:
        try:
            await psp_sandbox.simulate(payment, scenario, value_cents=cents, worker=get_worker())
        except SandboxError as refused:
            reasons = [v.razao for v in refused.violacoes if v.razao]
            raise UnprocessableError("; ".join(reasons) or refused.detail) from None
    return 200
