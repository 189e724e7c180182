"""One charge's page on the dashboard: its code to pass on, its whole story, its actions.

`/dashboard/charges/<id>` shows the amount, status, QR code and copy-paste code, the link
and WhatsApp share of the payer's page, and its story (`timeline.py`). Its buttons cancel a
pending charge, refund a paid one in two steps (a preview that moves no money, then a
confirmation carrying the preview's one-use key), and attach a waiting Pix through the
dashboard's own attach route.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote
from uuid import UUID

from quart import Blueprint, redirect, render_template, request, url_for
from quart_schema import hide
from werkzeug.wrappers import Response as WerkzeugResponse

from pixweb import dashboard_view, money
from pixweb.deps import check_csrf, get_broker, get_psp_clients, session_merchant
from pixweb.errors import AuthenticationError, PixwebError
from pixweb.models import (
    Merchant,
    Movement,
    MovementKind,
    Payment,
    PaymentStatus,
    PixOutcome,
    ReceivedPix,
    Refund,
    RefundStatus,
)
from pixweb.presenters import absolute_url
from pixweb.services import ledger, payments, refunds
from pixweb.services.clock import utcnow
from pixweb.web import timeline
from pixweb.web.forms import FIELD_MESSAGES, parse_brl

blueprint = Blueprint("web_charges", __name__)
blueprint.before_request(check_csrf)

REFUNDABLE = (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED)


async def _merchant() -> Merchant:
    merchant = await session_merchant()
    if merchant is None:
        raise AuthenticationError("log in first")
    return merchant


def _share(payment: Payment) -> dict[str, str]:
    link = absolute_url("web_payments.payment_page", payment_id=payment.id)
    about = f" ({payment.description})" if payment.description else ""
    message = f"Pague {money.format_brl(payment.amount_cents)}{about} com Pix: {link}"
    return {"link": link, "whatsapp": "https://wa.me/?text=" + quote(message, safe="")}


async def _paid_from_balance(payment: Payment) -> bool:
    reference = f"payment:{payment.id}"
    return await Movement.exists(reference=reference, kind=MovementKind.PAGAMENTO)


async def _refund_context(merchant: Merchant, payment: Payment) -> dict[str, Any]:
    """What the refund form needs: what is left, and whether the merchant refunds outside."""
    done = await Refund.filter(payment_id=payment.id).exclude(status=RefundStatus.FAILED)
    left = payment.amount_cents - sum(refund.amount_cents for refund in done)
    external = False
    if not await _paid_from_balance(payment):
        # Without a PSP, or for a Pix the PSP cannot name (the seed's confirmation, keyed by
        # its txid), the merchant refunds in the bank app and records it here.
        query = ReceivedPix.filter(payment_id=payment.id, outcome=PixOutcome.MATCHED)
        record = await query.first()
        client = await get_psp_clients().for_merchant(merchant.id)
        external = client is None or record is None or not refunds.refundable_at_psp(record)
    return {"payment": payment, "left_cents": left, "external_choice": external}


async def _page(merchant: Merchant, payment: Payment, *, cancel_error: str | None = None) -> str:
    status = payment.status_at(utcnow())
    context: dict[str, Any] = {
        "merchant": merchant,
        "payment": payment,
        "status": status,
        "share": _share(payment),
        "events": await timeline.build(payment, merchant.id),
        "cancel_error": cancel_error,
        "refund": None,
        "waiting": [],
    }
    if status in REFUNDABLE:
        refund = await _refund_context(merchant, payment)
        # All of it asked back already (still in process at the PSP): nothing left to offer.
        if refund["left_cents"] > 0:
            context["refund"] = {**refund, "form": {"key": secrets.token_hex(16)}, "errors": {}}
    if status in (PaymentStatus.PENDING, PaymentStatus.EXPIRED):
        query = ReceivedPix.filter(merchant_id=merchant.id).exclude(outcome=PixOutcome.MATCHED)
        context["waiting"] = [
            (record, secrets.token_hex(16))
            for record in await query.order_by("-created_at", "-id").limit(20)
        ]
        context["outcome_label"] = dashboard_view.outcome_label
    return await render_template("pages/charge.html", **context)


@blueprint.get("/dashboard/charges/<uuid:payment_id>")
@hide
async def charge_page(payment_id: UUID) -> str | WerkzeugResponse:
    """The charge's page; another merchant's charge is a 404."""
    merchant = await session_merchant()
    if merchant is None:
        return redirect(url_for("web_auth.login_page"))
    payment = await payments.get_payment(payment_id, merchant_id=merchant.id)
    return await _page(merchant, payment)


@blueprint.get("/dashboard/charges/<uuid:payment_id>/timeline")
@hide
async def charge_timeline(payment_id: UUID) -> str:
    """The timeline again, with the status beside the title: the page asks for it while a
    refund is in process at the PSP. Polling a page the merchant has open while a PSP
    settles a refund (seconds) costs less than a socket kind of its own for it."""
    merchant = await _merchant()
    payment = await payments.get_payment(payment_id, merchant_id=merchant.id)
    context = {"payment": payment, "status": payment.status_at(utcnow()), "oob": True}
    events = await timeline.build(payment, merchant.id)
    html = await render_template("partials/charge_timeline.html", events=events, **context)
    return html + await render_template("partials/charge_status.html", **context)


def _back(payment_id: UUID) -> WerkzeugResponse:
    """Back to the charge's page after an action (HTMX follows HX-Redirect)."""
    location = url_for("web_charges.charge_page", payment_id=payment_id)
    if request.headers.get("HX-Request"):
        response = WerkzeugResponse("", 200)
        response.headers["HX-Redirect"] = location
        return response
    response = redirect(location, 303)
    return response


def _cancel_message(error: PixwebError) -> str:
    detail = error.detail or ""
    if detail.startswith("payment is"):
        said = {
            "paid": "já foi paga",
            "expired": "venceu",
            "cancelled": "já foi cancelada",
        }.get(detail.split()[2].rstrip(","), "não está pendente")
        return f"Esta cobrança {said} e não pode ser cancelada."
    return "Não foi possível cancelar a cobrança no PSP agora: tente de novo."


@blueprint.post("/dashboard/charges/<uuid:payment_id>/cancel")
@hide
async def cancel(payment_id: UUID) -> str | WerkzeugResponse | tuple[str, int]:
    """Cancel a pending charge (removed at the PSP first, when it was made there)."""
    merchant = await _merchant()
    payment = await payments.get_payment(payment_id, merchant_id=merchant.id)
    try:
        await payments.cancel_payment(
            payment.id, merchant_id=merchant.id, broker=get_broker(), clients=get_psp_clients()
        )
    except PixwebError as error:
        payment = await payments.get_payment(payment_id, merchant_id=merchant.id)
        return await _page(merchant, payment, cancel_error=_cancel_message(error)), 409
    return _back(payment.id)


def _refund_message(error: PixwebError, left_cents: int, balance_cents: int) -> dict[str, str]:
    """The merchant's words for a refused refund (the service's details are English)."""
    if isinstance(error, refunds.RefundExceedsError):
        return {
            "value": f"Valor acima do que resta devolver: no máximo {money.format_brl(left_cents)}."
        }
    if isinstance(error, refunds.RefundTooLateError):
        return {"": "Um Pix só pode ser devolvido em até 90 dias."}
    if isinstance(error, refunds.ExternalRefundError):
        return {"external": "Sem PSP conectado, devolva pelo app do banco e marque a caixa."}
    if isinstance(error, ledger.InsufficientFundsError):
        return {"": f"Saldo insuficiente: disponível {money.format_brl(balance_cents)}."}
    if error.fields and "value" in error.fields:
        return {"value": FIELD_MESSAGES["value"]}
    if error.fields and "description" in error.fields:
        return {
            "description": "Descrição inválida (até 140 caracteres, sem caracteres de controle)."
        }
    if "Idempotency-Key" in (error.detail or ""):
        return {"": "Este formulário já foi usado com outros dados: abra-o de novo."}
    return {"": "Esta cobrança não pode ser devolvida agora."}


@blueprint.post("/dashboard/charges/<uuid:payment_id>/refund")
@hide
async def refund(payment_id: UUID) -> str | WerkzeugResponse | tuple[str, int]:
    """Two steps: preview (no money moves), then confirm with the preview's key."""
    merchant = await _merchant()
    payment = await payments.get_payment(payment_id, merchant_id=merchant.id)
    form = {k: v.strip() for k, v in (await request.form).items()}
    step = form.get("step", "preview")
    context = await _refund_context(merchant, payment)
    balance = (await ledger.get_account(merchant.id)).balance_cents
    key = form.get("key", "")
    if not (len(key) == 32 and all(c in "0123456789abcdef" for c in key)) or step == "back":
        key = secrets.token_hex(16)
        if step == "confirm":
            step = "stale"
    values = {
        "key": key,
        "value": form.get("value", ""),
        "description": form.get("description", ""),
    }
    values["external"] = "1" if form.get("external") else ""
    context.update(form=values, errors={}, preview=None)

    async def answer(status: int) -> tuple[str, int]:
        return await render_template("partials/charge_refund_form.html", refund=context), status

    if step in ("back", "stale"):
        if step == "stale":
            context["errors"] = {"": "Formulário expirado: tente de novo."}
            return await answer(422)
        return await answer(200)
    try:
        cents = parse_brl(values["value"]) if values["value"] else context["left_cents"]
    except PixwebError:
        context["errors"] = {"value": FIELD_MESSAGES["value"]}
        return await answer(422)
    if step != "confirm":
        if cents > context["left_cents"]:
            error = refunds.RefundExceedsError("over", fields={"value": "over"})
            context["errors"] = _refund_message(error, context["left_cents"], balance)
            return await answer(422)
        context["preview"] = {"cents": cents, "before": balance, "after": balance - cents}
        return await answer(200)
    ask = refunds.Request(
        value_cents=cents,
        description=values["description"] or None,
        external=bool(values["external"]),
        idempotency_key=f"dashboard-refund:{key}",
    )
    try:
        await refunds.refund_payment(
            merchant.id, payment.id, ask, clients=get_psp_clients(), broker=get_broker()
        )
    except PixwebError as error:
        context["errors"] = _refund_message(error, context["left_cents"], balance)
        return await answer(422)
    return _back(payment.id)
