"""What the API, the pages and the sockets show, in one place (they never import each other).

`absolute_url` is the one builder of absolute links (on PIXWEB_PUBLIC_URL, never the Host);
`payment_dict` is a payment's JSON shape (API responses and `?format=json` sockets);
`webhook_body` is what a merchant's webhook endpoint receives for an outbox event;
`status_context` feeds `partials/payment_status.html` (page, HTMX and socket pushes);
`dashboard_context` feeds the dashboard page and its socket's resync.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlsplit

from quart import (
    current_app,
    has_request_context,
    has_websocket_context,
    request,
    url_for,
    websocket,
)

from pixweb import money
from pixweb.config import DEVELOPMENT_PUBLIC_URL, is_loopback_host
from pixweb.deps import get_config
from pixweb.models import Merchant, Payment, WebhookEvent
from pixweb.services import accounts, ledger, notifications, payments
from pixweb.services.clock import utcnow


def public_base() -> str:
    """Where payers reach pixweb: PIXWEB_PUBLIC_URL (required in production).

    Development without it uses the request's own address only when that is loopback (what
    `make run` serves), else `pixweb run`'s address: a Host header is the client's to choose,
    and a link built from it would send payers wherever the client said.
    """
    configured = get_config().public_url
    if configured:
        return configured
    asked = request if has_request_context() else websocket if has_websocket_context() else None
    if asked is not None:
        try:
            parts = urlsplit("//" + asked.host)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return DEVELOPMENT_PUBLIC_URL
        if is_loopback_host(host) and "@" not in parts.netloc:
            scheme = "https" if asked.scheme in ("https", "wss") else "http"
            host = f"[{host}]" if ":" in host else host
            return f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    return DEVELOPMENT_PUBLIC_URL


def absolute_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of a route, on the public address (see `public_base`).

    Outside a request (the webhook delivery worker, in an app context) `url_for` wants a
    SERVER_NAME; the path then comes from the URL map itself, the host never mattering."""
    if has_request_context() or has_websocket_context():
        return public_base() + url_for(endpoint, **values)
    return public_base() + current_app.url_map.bind("").build(endpoint, values)


def payment_dict(payment: Payment) -> dict[str, Any]:
    """Describe a payment as the API does, with absolute links to its QR codes and page."""
    return _with_links(payments.payment_data(payment))


def _with_links(data: dict[str, Any]) -> dict[str, Any]:
    """A payment's data (`payments.payment_data`, or an event's copy) with its links."""
    qr_endpoint, payment_id = "api_payments.qr_code", data["id"]
    return {
        **data,
        "qr_code": {
            "png": absolute_url(qr_endpoint, filename=f"{payment_id}.png"),
            "svg": absolute_url(qr_endpoint, filename=f"{payment_id}.svg"),
        },
        "payment_url": absolute_url("web_payments.payment_page", payment_id=payment_id),
    }


def webhook_body(event: WebhookEvent) -> dict[str, Any]:
    """The JSON body sent to a merchant's endpoint: `{"id", "type", "created_at", "data"}`.

    A charge.* event's data is the charge as `GET /payments/<id>` shows it: its links are
    added here, in an app context, on the public address (`absolute_url`)."""
    data = event.data
    if event.type.startswith("charge.") and "id" in data:
        data = _with_links(data)
    created_at = event.created_at.isoformat()
    if created_at.endswith("+00:00"):  # as the API writes timestamps (pydantic's RFC 3339)
        created_at = created_at[:-6] + "Z"
    return {"id": event.id, "type": event.type, "created_at": created_at, "data": data}


def status_context(payment: Payment, *, sandbox: bool, oob: bool = False) -> dict[str, Any]:
    """Variables of the status partial; `oob` marks a push that HTMX swaps by id, `sandbox`
    shows the development-only "Simular pagamento" button on a pending charge."""
    status = payment.status_at(utcnow())
    return {
        "payment": payment,
        "status": status,
        # An image the browser keeps (immutable), not an inline <svg>: encoding a QR costs
        # ~10 ms of CPU, and every payer socket (re)opening is sent this fragment.
        "qr_url": url_for("api_payments.qr_code", filename=f"{payment.id}.svg"),
        "oob": oob,
        "sandbox": sandbox,
    }


CHART_WIDTH, CHART_HEIGHT = 600, 160


def chart_bars(series: list[tuple[date, int]]) -> list[dict[str, Any]]:
    """Bars of the PIX-received chart, in SVG user units (tallest bar = full height)."""
    peak = max((cents for _, cents in series), default=0) or 1
    slot = CHART_WIDTH / max(len(series), 1)
    return [
        {
            "x": round(i * slot + slot * 0.15, 1),
            "width": round(slot * 0.7, 1),
            "height": round(CHART_HEIGHT * cents / peak, 1),
            "y": round(CHART_HEIGHT - CHART_HEIGHT * cents / peak, 1),
            "label": day.strftime("%d/%m"),
            "value": money.format_brl(cents),
        }
        for i, (day, cents) in enumerate(series)
    ]


async def dashboard_context(merchant: Merchant) -> dict[str, Any]:
    """Everything the dashboard shows, read fresh: for the page and every socket resync."""
    account = await ledger.get_account(merchant.id)
    recent = await accounts.list_movements(merchant.id, limit=10)
    charges = await payments.list_payments(merchant.id, limit=10)
    history = await notifications.history(merchant.id, limit=10)
    return {
        "merchant": merchant,
        "balance_cents": account.balance_cents,
        "account_id": account.id,
        "movements": recent.items,
        "charges": charges.items,
        "notifications": history.items,
        "unread": history.unread,
        "now": utcnow(),
        **await chart_context(merchant.id),
    }


async def chart_context(merchant_id: int) -> dict[str, Any]:
    """Variables of the PIX-received chart partial."""
    series = await accounts.daily_pix_received(merchant_id)
    total = money.format_brl(sum(cents for _, cents in series))
    return {"chart": chart_bars(series), "chart_total": total}
