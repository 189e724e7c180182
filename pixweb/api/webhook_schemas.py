"""The request and response models of the webhook endpoints API (api/webhook_endpoints.py),
kept apart so that the routes' module stays readable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from pixweb.api.types import INTEGER, TEXT
from pixweb.models import DeliveryStatus, WebhookEndpoint
from pixweb.services import webhook_endpoints as endpoints
from pixweb.services.outbox import EVENT_TYPES
from pixweb.services.webhook_log import DeliveryView

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
