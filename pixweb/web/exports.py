"""The dashboard's CSV downloads ("Baixar CSV"): the API's exports for the session's merchant."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Blueprint, Response, redirect, url_for
from quart_schema import hide
from werkzeug.wrappers import Response as WerkzeugResponse

from pixweb.deps import session_merchant
from pixweb.services import exports

blueprint = Blueprint("web_exports", __name__)


def _download(body: AsyncIterator[bytes], filename: str) -> Response:
    response = Response(body, content_type=exports.MEDIA_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/dashboard/payments.csv")
@hide
async def dashboard_payments_csv() -> Response | WerkzeugResponse:
    """Every charge of the logged-in merchant as CSV."""
    merchant = await session_merchant()
    if merchant is None:
        return redirect(url_for("web_auth.login_page"))
    return _download(await exports.started(exports.payments_csv(merchant.id)), "cobrancas.csv")


@blueprint.get("/dashboard/movements.csv")
@hide
async def dashboard_movements_csv() -> Response | WerkzeugResponse:
    """Every movement of the logged-in merchant's account as CSV."""
    merchant = await session_merchant()
    if merchant is None:
        return redirect(url_for("web_auth.login_page"))
    return _download(await exports.started(exports.movements_csv(merchant.id)), "movimentos.csv")
