"""Jinja filters for pt-BR pages."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from quart import Quart

from pixweb import money

BRAZIL = ZoneInfo("America/Sao_Paulo")


def brl(cents: int) -> str:
    """Centavos as "R$ 1.234,56"."""
    return money.format_brl(cents)


def local_time(moment: datetime) -> str:
    """A timestamp as Brasília time, "22/11/2026 às 14:05"."""
    return moment.astimezone(BRAZIL).strftime("%d/%m/%Y às %H:%M")


def init_app(app: Quart) -> None:
    """Register the filters on the app's Jinja environment."""
    app.add_template_filter(brl)
    app.add_template_filter(local_time)
