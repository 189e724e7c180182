"""The merchant's live dashboard and its forms (each answers its own form partial)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, redirect, render_template, request, url_for
from quart_schema import hide
from werkzeug.wrappers import Response as WerkzeugResponse

from pixweb import money
from pixweb.deps import check_csrf, get_broker, session_merchant
from pixweb.errors import AuthenticationError, InvalidInputError, NotFoundError, PixwebError
from pixweb.models import Merchant
from pixweb.presenters import dashboard_context
from pixweb.services import accounts, notifications, payments, settlement
from pixweb.web.forms import messages_for, parse_brl

blueprint = Blueprint("web_dashboard", __name__)
blueprint.before_request(check_csrf)

Action = Callable[[Merchant, dict[str, str]], Awaitable[str]]


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


async def _deposit(merchant: Merchant, form: dict[str, str]) -> str:
    movement, _ = await accounts.deposit(merchant, parse_brl(form["value"]), broker=get_broker())
    return f"Depósito de {money.format_brl(movement.amount_cents)} realizado."


async def _withdraw(merchant: Merchant, form: dict[str, str]) -> str:
    movement, _ = await accounts.withdraw(merchant, parse_brl(form["value"]), broker=get_broker())
    return f"Saque de {money.format_brl(-movement.amount_cents)} realizado."


async def _transfer(merchant: Merchant, form: dict[str, str]) -> str:
    movement, _ = await accounts.transfer(
        merchant,
        form["to_email"],
        parse_brl(form["value"]),
        description=form["description"] or None,
        broker=get_broker(),
    )
    return f"Transferência de {money.format_brl(-movement.amount_cents)} enviada."


async def _pay(merchant: Merchant, form: dict[str, str]) -> str:
    movement, _ = await settlement.pay_brcode(merchant, form["brcode"], broker=get_broker())
    return f"Pagamento de {money.format_brl(-movement.amount_cents)} realizado."


async def _charge(merchant: Merchant, form: dict[str, str]) -> str:
    payment, _ = await payments.create_payment(
        merchant,
        amount_cents=parse_brl(form["value"]),
        description=form["description"] or None,
        expires_in=_expires_in(form["expires_in"]),
        broker=get_broker(),
    )
    link = url_for("web_payments.payment_page", payment_id=payment.id)
    return f'Cobrança criada: <a href="{link}" target="_blank">abrir página de pagamento</a>'


def _expires_in(text: str) -> int:
    if not text:
        return payments.EXPIRES_DEFAULT
    if not text.isdigit():
        raise InvalidInputError("expires_in must be seconds", fields={"expires_in": "invalid"})
    return int(text)


ACTIONS: dict[str, Action] = {
    "deposit": _deposit,
    "withdraw": _withdraw,
    "transfer": _transfer,
    "pay": _pay,
    "charge": _charge,
}


@blueprint.post("/dashboard/<name>")
@hide
async def submit(name: str) -> tuple[str, int]:
    """Run one dashboard form; errors re-render it with 422 and Portuguese messages."""
    if name not in ACTIONS:
        raise NotFoundError("no such form")
    merchant = await _merchant()
    form = defaultdict(str, {k: v.strip() for k, v in (await request.form).items()})
    context: dict[str, Any] = {"name": name, "form": form, "errors": {}, "success": None}
    status = 200
    try:
        context["success"] = await ACTIONS[name](merchant, form)
        context["form"] = {}
    except PixwebError as error:
        context["errors"] = messages_for(error)
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
