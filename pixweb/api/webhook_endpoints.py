"""The merchant's webhook endpoints: register, read, change, delete, rotate the secret,
send a test event, read the delivery log and resend one event.

The signing secret (`whsec_...`) is in the answer twice only: when the endpoint is created and
when its secret is rotated. A resend names a delivery of the log
(`/webhook-endpoints/<id>/deliveries/<delivery_id>/resend`) and makes a new delivery of the same
event, so the receiver sees the same `webhook-id` again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from pixweb.api.openapi import errors
from pixweb.api.security import bearer_required
from pixweb.api.types import INTEGER, TEXT
from pixweb.deps import current_merchant, get_broker, get_config, requires_scope
from pixweb.models import DeliveryStatus, WebhookEndpoint
from pixweb.netguard import UrlPolicy
from pixweb.services import webhook_endpoints as endpoints
from pixweb.services import webhook_log
from pixweb.services.outbox import EVENT_TYPES
from pixweb.services.webhook_log import DeliveryView

blueprint = Blueprint("api_webhook_endpoints", __name__)

EVENTS_DOC = "Event types, at least one"
EVENTS_SCHEMA: JsonDict = {"items": {"type": "string", "enum": list(EVENT_TYPES)}}
URL_DOC = (
    "Where events are POSTed (https in production; a public host unless the server "
    "allows private ones)"
)


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: str = Field(
        min_length=1, max_length=endpoints.URL_MAX, description=URL_DOC, json_schema_extra=TEXT
    )
    events: list[str] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES) * 2,
        description=EVENTS_DOC,
        json_schema_extra=EVENTS_SCHEMA,
    )
    description: str | None = Field(
        None, max_length=endpoints.DESCRIPTION_MAX, json_schema_extra=TEXT
    )


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: str | None = Field(
        None,
        min_length=1,
        max_length=endpoints.URL_MAX,
        description=URL_DOC,
        json_schema_extra=TEXT,
    )
    events: list[str] | None = Field(
        None,
        min_length=1,
        max_length=len(EVENT_TYPES) * 2,
        description=EVENTS_DOC,
        json_schema_extra=EVENTS_SCHEMA,
    )
    enabled: bool | None = Field(None, description="true re-enables and forgets past failures")
    description: str | None = Field(
        None,
        max_length=endpoints.DESCRIPTION_MAX,
        description="null clears it",
        json_schema_extra=TEXT,
    )

    def changes(self) -> endpoints.Changes:
        return endpoints.Changes(
            url=self.url,
            events=self.events,
            enabled=self.enabled,
            description=self.description,
            clear_description="description" in self.model_fields_set and not self.description,
        )


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled, in Portuguese (by the merchant, a 410 Gone, 3 days "
        "of failures)"
    )
    failing_since: datetime | None = Field(description="First failure of the current streak")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (after a rotation)"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointOut:
        return cls.model_validate(row, from_attributes=True)


class EndpointWithSecret(EndpointOut):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_...`): shown this once",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class EndpointList(BaseModel):
    items: list[EndpointOut]


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    grace_seconds: Annotated[
        int, Field(ge=0, le=int(endpoints.GRACE_MAX.total_seconds())), INTEGER
    ] = Field(
        int(endpoints.GRACE_DEFAULT.total_seconds()),
        description="How long the previous secret keeps signing (default 24 h, at most 7 days)",
    )


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None = Field(description="The answer's HTTP status (none: no answer)")
    response_body: str | None = Field(description="The first 1 KB of the answer")
    error: str | None = Field(description="What went wrong (timeout, refused connection...)")


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The `webhook-id` header of every attempt")
    event_type: str
    status: DeliveryStatus
    manual: bool = Field(description="A test event or a resend")
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    completed_at: datetime | None
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        row = view.delivery
        return cls(
            id=row.id,
            event_id=row.event_id,
            event_type=view.event_type,
            status=row.status,
            manual=row.manual,
            attempts=row.attempts,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            last_status_code=row.last_status_code,
            completed_at=row.completed_at,
            attempt_log=[AttemptOut.model_validate(a, from_attributes=True) for a in view.attempts],
        )


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class DeliveryQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=100), INTEGER] = 20
    cursor: str | None = Field(
        None, max_length=200, description="Opaque: a `next_cursor` (400 for any other value)"
    )


def _settings() -> tuple[str, UrlPolicy]:
    config = get_config()
    return config.encryption_key, endpoints.url_policy(config)


@blueprint.post("/webhook-endpoints")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(422)
@validate_request(EndpointIn)
@validate_response(EndpointWithSecret, 201)
async def create_webhook_endpoint(data: EndpointIn) -> tuple[EndpointWithSecret, int]:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    merchant = await current_merchant()
    key, policy = _settings()
    created = await endpoints.create(
        merchant.id,
        url=data.url,
        events=data.events,
        description=data.description,
        key=key,
        policy=policy,
    )
    body = EndpointOut.of(created.endpoint).model_dump()
    return EndpointWithSecret(**body, secret=created.secret), 201


@blueprint.get("/webhook-endpoints")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_response(EndpointList)
async def list_webhook_endpoints() -> EndpointList:
    """List your endpoints, oldest first (never a secret)."""
    merchant = await current_merchant()
    return EndpointList(
        items=[EndpointOut.of(e) for e in await endpoints.list_endpoints(merchant.id)]
    )


@blueprint.get("/webhook-endpoints/<int:endpoint_id>")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_response(EndpointOut)
async def get_webhook_endpoint(endpoint_id: int) -> EndpointOut:
    """One of your endpoints."""
    merchant = await current_merchant()
    return EndpointOut.of(await endpoints.get(merchant.id, endpoint_id))


@blueprint.patch("/webhook-endpoints/<int:endpoint_id>")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(422)
@validate_request(EndpointPatch)
@validate_response(EndpointOut)
async def update_webhook_endpoint(endpoint_id: int, data: EndpointPatch) -> EndpointOut:
    """Change the URL, the events, the description, or enable/disable the endpoint."""
    merchant = await current_merchant()
    _, policy = _settings()
    row = await endpoints.update(merchant.id, endpoint_id, data.changes(), policy=policy)
    return EndpointOut.of(row)


@blueprint.delete("/webhook-endpoints/<int:endpoint_id>")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
async def delete_webhook_endpoint(endpoint_id: int) -> tuple[str, int]:
    """Delete an endpoint: nothing more is sent to it (what was pending fails)."""
    merchant = await current_merchant()
    await endpoints.delete(merchant.id, endpoint_id)
    return "", 204


@blueprint.post("/webhook-endpoints/<int:endpoint_id>/rotate-secret")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_request(RotateIn)
@validate_response(EndpointWithSecret)
async def rotate_webhook_secret(endpoint_id: int, data: RotateIn) -> EndpointWithSecret:
    """A new signing secret, shown this once; the previous one signs too during the grace
    period (each request then carries both signatures)."""
    merchant = await current_merchant()
    key, _ = _settings()
    grace = timedelta(seconds=data.grace_seconds)
    created = await endpoints.rotate_secret(merchant.id, endpoint_id, grace=grace, key=key)
    body = EndpointOut.of(created.endpoint).model_dump()
    return EndpointWithSecret(**body, secret=created.secret)


@blueprint.post("/webhook-endpoints/<int:endpoint_id>/test")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(409)
@validate_response(DeliveryOut, 201)
async def test_webhook_endpoint(endpoint_id: int) -> tuple[DeliveryOut, int]:
    """Send a `webhook.test` event to this endpoint now (409 when it is disabled)."""
    merchant = await current_merchant()
    view = await webhook_log.send_test(merchant.id, endpoint_id, broker=get_broker())
    return DeliveryOut.of(view), 201


@blueprint.get("/webhook-endpoints/<int:endpoint_id>/deliveries")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_querystring(DeliveryQuery)
@validate_response(DeliveryList)
async def list_webhook_deliveries(endpoint_id: int, query_args: DeliveryQuery) -> DeliveryList:
    """The endpoint's deliveries, newest first, each with its attempts."""
    merchant = await current_merchant()
    page = await webhook_log.list_deliveries(
        merchant.id, endpoint_id, limit=query_args.limit, cursor=query_args.cursor
    )
    return DeliveryList(items=[DeliveryOut.of(v) for v in page.items], next_cursor=page.next_cursor)


@blueprint.post("/webhook-endpoints/<int:endpoint_id>/deliveries/<bigint:delivery_id>/resend")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(409)
@validate_response(DeliveryOut, 201)
async def resend_webhook_delivery(endpoint_id: int, delivery_id: int) -> tuple[DeliveryOut, int]:
    """Send this delivery's event again: a new delivery with the same `webhook-id`."""
    merchant = await current_merchant()
    view = await webhook_log.resend(merchant.id, endpoint_id, delivery_id, broker=get_broker())
    return DeliveryOut.of(view), 201
