"""The merchant's live dashboard and its forms (each answers its own form partial)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

from quart import Blueprint, redirect, render_template, request, url_for
from quart_schema import hide
from werkzeug.wrappers import Response as WerkzeugResponse

from pixweb import dashboard_view, money
from pixweb.deps import check_csrf, get_broker, get_psp_clients, session_merchant
from pixweb.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PixwebError,
)
from pixweb.models import Merchant, Payment, PaymentStatus, PixOutcome, ReceivedPix
from pixweb.pix import qr
from pixweb.presenters import absolute_url, dashboard_context, public_base
from pixweb.services import accounts, ledger, notifications, payments, received, settlement
from pixweb.services import review as payment_review
from pixweb.services.clock import utcnow
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
    listing = await _charges_listing(merchant)
    if request.headers.get("HX-Target") in ("charges-results", "charges-more"):
        return await render_template("partials/charges_results.html", **listing)
    context = await dashboard_context(merchant)
    extras = await dashboard_view.dashboard_extras(merchant.id)
    page = {**context, **extras, **listing}
    return await render_template("pages/dashboard.html", forms=tuple(ACTIONS), **page)


CHARGES_PAGE = 10
BRAZIL = ZoneInfo("America/Sao_Paulo")
CHARGE_STATUSES = tuple(PaymentStatus)


def _day(text: str, field: str, errors: dict[str, str]) -> datetime | None:
    """A `yyyy-mm-dd` date input as midnight in Brasília; a bad one is noted in `errors`."""
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time(), BRAZIL)
    except ValueError:
        errors[field] = "Data inválida."
        return None


async def _charges_listing(merchant: Merchant) -> dict[str, Any]:
    """The charges section: its filter (from the query string), one page and the totals.

    Without a filter the list is the live one (`#charges-list`: the socket inserts new
    charges at its top); a filtered list has another id, so live inserts skip it (rows on
    it still update in place).
    """
    args = request.args
    errors: dict[str, str] = {}
    form = {k: args.get(k, "").strip() for k in ("status", "de", "ate", "q")}
    status = form["status"] if form["status"] in CHARGE_STATUSES else ""
    if form["status"] and not status:
        errors["status"] = "Situação inválida."
    since = _day(form["de"], "de", errors)
    until = _day(form["ate"], "ate", errors)
    if until is not None:
        until = datetime.combine(until.date() + timedelta(days=1), time(), BRAZIL)
    where = payments.PaymentFilter(
        status=PaymentStatus(status) if status else None,
        since=since,
        until=until,
        q=form["q"][:140] or None,
    )
    try:
        page = await payments.list_payments(
            merchant.id,
            where=where,
            limit=CHARGES_PAGE,
            cursor=args.get("cursor") or None,
            with_totals=True,
        )
    except InvalidInputError:
        errors["cursor"] = "Página inválida."
        page = await payments.list_payments(
            merchant.id, where=where, limit=CHARGES_PAGE, with_totals=True
        )
    filtered = where != payments.PaymentFilter()
    query = {k: v for k, v in form.items() if v}
    more = None
    if page.next_cursor:
        query["cursor"] = page.next_cursor
        more = url_for("web_dashboard.dashboard") + "?" + urlencode(query)
    return {
        "charges": page.items,
        "totals": page.totals,
        "filter": form,
        "filter_errors": errors,
        "filtered": filtered,
        "more_url": more,
        "appending": bool(args.get("cursor")) and "cursor" not in errors,
        "statuses": CHARGE_STATUSES,
        "now": utcnow(),
    }


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


def _is_key(key: str) -> bool:
    """A form's one-use key as `secrets.token_hex(16)` made it."""
    return len(key) == 32 and all(c in "0123456789abcdef" for c in key)


STALE_FORM = "Formulário expirado: tente de novo."


def _pay_key(key: str) -> str:
    # Made by the review step: one confirmation, however often it is sent, pays once.
    if not _is_key(key):
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


async def _waiting(merchant: Merchant, pix_id: UUID) -> ReceivedPix:
    record = await ReceivedPix.get_or_none(id=pix_id, merchant_id=merchant.id)
    if record is None:
        raise NotFoundError("no received Pix with this id")
    return record


async def _attach_form(
    record: ReceivedPix, *, key: str, error: str | None = None, selected: UUID | None = None
) -> str:
    charges = await dashboard_view.attachable_charges(record.merchant_id)
    if record.outcome == PixOutcome.MATCHED:
        error, charges = error or "Este Pix já pagou uma cobrança.", []
    return await render_template(
        "partials/attach_form.html",
        pix=record,
        key=key,
        error=error,
        charges=charges,
        selected=selected or record.payment_id,
        now=utcnow(),
    )


@blueprint.get("/dashboard/received/<uuid:pix_id>/attach")
@hide
async def attach_form(pix_id: UUID) -> str:
    """The form attaching a waiting Pix to a charge, with the charges it may pay now."""
    record = await _waiting(await _merchant(), pix_id)
    return await _attach_form(record, key=secrets.token_hex(16))


def _attach_error(error: PixwebError) -> str:
    """The merchant's words for a refused attachment (the service's details are English)."""
    detail = error.detail or ""
    if "Idempotency-Key" in detail:
        return "Este formulário já foi usado: abra-o de novo."
    if "already paid a charge" in detail:
        return "Este Pix já pagou outra cobrança."
    if detail.startswith("payment is"):
        status = detail.split()[2]
        said = {"cancelled": "foi cancelada"}.get(status, "já foi paga")
        return f"Esta cobrança {said} e não pode receber este Pix."
    if isinstance(error, NotFoundError):
        return "Cobrança não encontrada."
    return "Não foi possível associar este Pix."


@blueprint.post("/dashboard/received/<uuid:pix_id>/attach")
@hide
async def attach_pix(pix_id: UUID) -> tuple[str, int, dict[str, str]]:
    """Let a waiting Pix pay a charge (no money moves); the socket updates the lists.

    The answer is a toast (the item leaves the list through the socket's push); a refusal
    re-renders the form with 422. The form's key makes a repeated submit one attachment.
    """
    merchant = await _merchant()
    record = await _waiting(merchant, pix_id)
    form = await request.form
    key = form.get("key", "")
    if not _is_key(key):
        return await _attach_form(record, key=secrets.token_hex(16), error=STALE_FORM), 422, {}
    try:
        payment_id = UUID(form.get("payment_id", ""))
    except ValueError:
        return await _attach_form(record, key=key, error="Escolha uma cobrança."), 422, {}
    try:
        record, _ = await received.attach(
            merchant.id,
            record.end_to_end_id,
            payment_id,
            idempotency_key=f"dashboard-attach:{key}",
            broker=get_broker(),
        )
    except (NotFoundError, ConflictError) as error:
        said = _attach_error(error)
        html = await _attach_form(record, key=key, error=said, selected=payment_id)
        return html, 422, {}
    payment = await payments.get_payment(payment_id, merchant_id=merchant.id)
    name = payment.description or f"#{str(payment.id)[:8]}"
    message = f"Pix de {money.format_brl(record.amount_cents)} associado à cobrança {name}: paga."
    html = await render_template("partials/attach_done.html", message=message)
    return html, 200, {"HX-Retarget": "#toasts", "HX-Reswap": "afterbegin"}
