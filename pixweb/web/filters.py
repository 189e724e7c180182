"""Jinja filters and globals for pt-BR pages."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from quart import Quart, url_for

from pixweb import money
from pixweb.deps import CSRF_FIELD, csrf_token

BRAZIL = ZoneInfo("America/Sao_Paulo")
NBSP = "\u00a0"
_CURRENCY_SPACE = re.compile(r"R\$ (?=-?[0-9])")
_CHARGE_REFERENCE = re.compile(r"payment:([0-9a-f-]{36})")


def brl(cents: int) -> str:
    """Centavos as "R$ 1.234,56", with a no-break space: "R$" never wraps away from its number."""
    return money.format_brl(cents).replace("R$ ", "R$" + NBSP)


def money_text(text: str) -> str:
    """A sentence with amounts in it ("Você recebeu R$ 10,00"), its "R$" kept with each number."""
    return _CURRENCY_SPACE.sub("R$" + NBSP, str(text))


def charge_id(reference: str | None) -> str | None:
    """The charge a movement settled ("payment:<id>" references), else None."""
    match = _CHARGE_REFERENCE.fullmatch(reference or "")
    return match.group(1) if match else None


def local_time(moment: datetime) -> str:
    """A timestamp as Brasília time, "22/11/2026 às 14:05"."""
    return moment.astimezone(BRAZIL).strftime("%d/%m/%Y às %H:%M")


KIND_LABELS = {
    "deposito": "Depósito",
    "saque": "Saque",
    "transferencia_enviada": "Transferência enviada",
    "transferencia_recebida": "Transferência recebida",
    "pagamento": "Pagamento Pix",
    "pix_recebido": "Pix recebido",
    "devolucao": "Devolução Pix",
    "devolucao_estornada": "Devolução não realizada",
    "estorno": "Estorno",
}
STATUS_LABELS = {
    "pending": "aguardando",
    "paid": "paga",
    "expired": "expirada",
    "cancelled": "cancelada",
    "partially_refunded": "devolvida em parte",
    "refunded": "devolvida",
}


def kind_label(kind: str) -> str:
    """A movement kind as people read it."""
    return KIND_LABELS.get(str(kind), str(kind))


def status_label(status: str) -> str:
    """A payment status as people read it."""
    return STATUS_LABELS.get(str(status), str(status))


def ws_path(endpoint: str, **values: Any) -> str:
    """The path of a WebSocket route: the htmx ws extension adds ws:// or wss:// to match
    the page, where url_for would name the host and scheme the request came with."""
    return urlsplit(url_for(endpoint, **values)).path


def init_app(app: Quart) -> None:
    """Register the filters and globals on the app's Jinja environment."""
    app.add_template_filter(brl)
    app.add_template_filter(money_text)
    app.add_template_filter(charge_id)
    app.add_template_filter(local_time)
    app.add_template_global(ws_path)
    app.add_template_global(csrf_token)
    app.add_template_filter(kind_label)
    app.add_template_filter(status_label)
    app.jinja_env.globals["csrf_field"] = CSRF_FIELD
