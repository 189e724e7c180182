"""CSV exports of the merchant's charges and movements (Bearer), streamed.

The format (BOM, `;`, decimal comma, Brasília dates, formula guard) is services/exports'.
The filters are the JSON lists' (`GET /payments`, `GET /accounts/me/movements`) without their
paging: the file holds every row that matches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel, Field
from quart import Blueprint, Response
from quart_schema import tag, validate_querystring

from pixweb.api.openapi import media
from pixweb.api.payments import PaymentFilterQuery
from pixweb.api.security import bearer_required
from pixweb.api.types import Timestamp
from pixweb.deps import current_merchant, requires_scope
from pixweb.models import MovementKind
from pixweb.services import exports

blueprint = Blueprint("api_exports", __name__)

CSV_DESCRIPTION = (
    "UTF-8 CSV with a BOM, `;` separated, decimal comma (1234,56), a header row, dates as "
    "dd/mm/aaaa hh:mm:ss in America/Sao_Paulo; cells that would start a formula get a `'`"
)


class MovementsCsvQuery(BaseModel):
    kind: MovementKind | None = None
    since: Timestamp | None = Field(None, description="RFC 3339: 2024-05-01T12:00:00Z")
    until: Timestamp | None = Field(None, description="RFC 3339: 2024-05-01T12:00:00Z")


def csv_response(body: AsyncIterator[bytes], filename: str) -> Response:
    """A streamed CSV download."""
    response = Response(body, content_type=exports.MEDIA_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/payments.csv")
@tag(["payments"])
@bearer_required
@requires_scope("charges:read")
@validate_querystring(PaymentFilterQuery)
@media(200, exports.MEDIA_TYPE, description=CSV_DESCRIPTION)
async def export_payments(query_args: PaymentFilterQuery) -> Response:
    """The merchant's charges as CSV, newest first; the `GET /payments` filters."""
    merchant = await current_merchant()
    body = await exports.started(exports.payments_csv(merchant.id, where=query_args.to_filter()))
    return csv_response(body, "cobrancas.csv")


@blueprint.get("/accounts/me/movements.csv")
@tag(["accounts"])
@bearer_required
@requires_scope("account:read")
@validate_querystring(MovementsCsvQuery)
@media(200, exports.MEDIA_TYPE, description=CSV_DESCRIPTION)
async def export_movements(query_args: MovementsCsvQuery) -> Response:
    """The account's movements as CSV, newest first; the movements list's filters."""
    merchant = await current_merchant()
    body = await exports.started(
        exports.movements_csv(
            merchant.id, kind=query_args.kind, since=query_args.since, until=query_args.until
        )
    )
    return csv_response(body, "movimentos.csv")
