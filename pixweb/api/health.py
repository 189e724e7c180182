"""Operations: liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from quart import Blueprint, Response
from quart_schema import tag, validate_response
from tortoise.connection import get_connection

from pixweb.api.openapi import media
from pixweb.deps import get_broker, get_metrics
from pixweb.metrics import CONTENT_TYPE

blueprint = Blueprint("api_health", __name__)
CHECK_TIMEOUT = 2.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: bool
    broker: bool


@blueprint.get("/healthz")
@tag(["operations"])
@validate_response(Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


async def _database_ok() -> bool:
    try:
        await asyncio.wait_for(get_connection("default").execute_query("SELECT 1"), CHECK_TIMEOUT)
    except Exception:  # any failure means "not ready"; the detail is in the logs
        return False
    return True


@blueprint.get("/readyz")
@tag(["operations"])
@validate_response(Readiness, 200)
@validate_response(Readiness, 503)
async def readyz() -> tuple[Readiness, int]:
    """Database and broker reachable (200), or not (503): take this process out of rotation."""
    database, broker = await asyncio.gather(_database_ok(), get_broker().ping())
    ready = database and broker
    status = Readiness(status="ok" if ready else "unavailable", database=database, broker=broker)
    return status, 200 if ready else 503


@blueprint.get("/metrics")
@tag(["operations"])
@media(200, "text/plain", description="Prometheus text exposition")
async def metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(get_metrics().render(), content_type=CONTENT_TYPE)
