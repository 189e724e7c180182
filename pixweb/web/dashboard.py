"""The merchant's live dashboard and its forms (each answers its own form partial)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from quart import Blueprint, redirect, render_template, request, url_for
from quart_schema import hide
from werkzeug.wrappers import Response as WerkzeugResponse

from pixweb import money
from pixweb.deps import check_csrf, get_broker, get_psp_clients, session_merchant
from pixweb.errors import AuthenticationError, InvalidInputError, NotFoundError, PixwebError
from pixweb.models import Merchant, Payment
from pixweb.pix import qr
from pixweb.presenters import absolute_url, dashboard_context, public_base
from pixweb.services import accounts, ledger, notifications, payments, settlement
from pixweb.services import review as payment_review
from pixweb.web.forms import messages_for, parse_brl

blueprint = Blueprint("web_dashboard", __name__)
blueprint.before_request(check_csrf)

Outcome = dict[str, Any]  # what the form partial shows after an action succeeded
Action = Callable[[Merchant, dict[str, str]], Awaitable[Outcome]]


async def _merchant() -> Merchant:
    merchant = await session_merchant()
    if merchant is None:
        raise AuthenticationError("log in first")
    return merchant


@blueprint.get("/dashboard")
@hide
async def dashboard() -> str | WerkzeugResponse:
    """Balance, movements, charges, notifications and forms, kept live by /ws/dashboard."""
    merchant = await session_merchant()
    if merchant is None:
        return redirect(url_for("web_auth.login_page"))
    context = await dashboard_context(merchant)
    return await render_template("pages/dashboard.html", forms=tuple(ACTIONS), **context)


@blueprint.get("/")
@hide
async def home() -> WerkzeugResponse:
    """Send a visitor where they can start: the dashboard, or the login page first."""
    logged_in = await session_merchant() is not None
    return redirect(url_for("web_dashboard.dashboard" if logged_in else "web_auth.login_page"))


async def _charge(merchant: Merchant, form: dict[str, str]) -> Outcome:
    payment, _ = await payments.create_payment(
        merchant,
        amount_cents=parse_brl(form["value"]),
        description=form["description"] or None,
        expires_in=_expires_in(form["expires_in"]),
        broker=get_broker(),
        clients=get_psp_clients(),
        public_base=public_base(),
    )
    return {"success": "Cobrança criada.", "created": _shareable(payment)}


def _shareable(payment: Payment) -> dict[str, Any]:
    """A new charge as the merchant passes it on: QR, copy-paste code, link, WhatsApp."""
    link = absolute_url("web_payments.payment_page", payment_id=payment.id)
    amount = money.format_brl(payment.amount_cents)
    about = f" ({payment.description})" if payment.description else ""
    message = f"Pague {amount}{about} com Pix: {link}"
    return {
        "payment": payment,
        "link": link,
        "qr_svg": qr.svg_inline(payment.brcode),
        "whatsapp": "https://wa.me/?text=" + quote(message, safe=""),
    }


async def _pay(merchant: Merchant, form: dict[str, str]) -> Outcome:
    """Two steps: review the code (no money moves), then confirm with the review's key."""
    if form["step"] == "cancel":
        return {}
    if form["step"] != "confirm":
        review = await payment_review.review_brcode(merchant, form["brcode"])
        return {"review": review, "form": {"brcode": review.code, "key": secrets.token_hex(16)}}
    movement, _ = await settlement.pay_brcode(
        merchant, form["brcode"], broker=get_broker(), idempotency_key=_pay_key(form["key"])
    )
    amount = money.format_brl(-movement.amount_cents)
    return {"success": f"Pagamento de {amount} para {movement.counterpart} realizado."}


def _pay_key(key: str) -> str:
    # Made by the review step: one confirmation, however often it is sent, pays once.
    if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
        raise InvalidInputError("review the payment first", fields={"brcode": "not reviewed"})
    return f"dashboard-pay:{key}"


async def _deposit(merchant: Merchant, form: dict[str, str]) -> Outcome:
    movement, _ = await accounts.deposit(merchant, parse_brl(form["value"]), broker=get_broker())
    return {"success": f"Depósito de {money.format_brl(movement.amount_cents)} realizado."}


async def _withdraw(merchant: Merchant, form: dict[str, str]) -> Outcome:
    movement, _ = await accounts.withdraw(merchant, parse_brl(form["value"]), broker=get_broker())
    return {"success": f"Saque de {money.format_brl(-movement.amount_cents)} realizado."}


async def _transfer(merchant: Merchant, form: dict[str, str]) -> Outcome:
    movement, _ = await accounts.transfer(
        merchant,
        form["to_email"],
        parse_brl(form["value"]),
        description=form["description"] or None,
        broker=get_broker(),
    )
    amount = money.format_brl(-movement.amount_cents)
    return {"success": f"Transferência de {amount} enviada."}


def _expires_in(text: str) -> int:
    if not text:
        return payments.EXPIRES_DEFAULT
    # ASCII digits, few of them: "²".isdigit() is True yet int() refuses it (and 5,000 digits).
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise InvalidInputError("expires_in must be seconds", fields={"expires_in": "invalid"})
    return int(text)


# In the page's order: what a merchant does most comes first.
ACTIONS: dict[str, Action] = {
    "charge": _charge,
    "pay": _pay,
    "transfer": _transfer,
    "deposit": _deposit,
    "withdraw": _withdraw,
}


@blueprint.post("/dashboard/<name>")
@hide
async def submit(name: str) -> tuple[str, int]:
    """Run one dashboard form; errors re-render it with 422 and Portuguese messages."""
    if name not in ACTIONS:
        raise NotFoundError("no such form")
    merchant = await _merchant()
    form = defaultdict(str, {k: v.strip() for k, v in (await request.form).items()})
    context: dict[str, Any] = {"name": name, "form": {}, "errors": {}, "success": None}
    status = 200
    try:
        context.update(await ACTIONS[name](merchant, form))
    except PixwebError as error:
        available = None
        if isinstance(error, ledger.InsufficientFundsError):
            available = (await ledger.get_account(merchant.id)).balance_cents
        context.update(form=form, errors=messages_for(error, available_cents=available))
        status = 422
    return await render_template("partials/action_form.html", **context), status


@blueprint.post("/dashboard/notifications/read")
@hide
async def read_notifications() -> str:
    """Mark every notification read; answer the refreshed list."""
    merchant = await _merchant()
    await notifications.mark_read(merchant.id, None)
    history = await notifications.history(merchant.id, limit=10)
    return await render_template(
        "partials/notifications.html", notifications=history.items, unread=history.unread
    )
