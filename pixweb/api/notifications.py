"""The merchant's notification history and unread count."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from pixweb.api.security import bearer_required
from pixweb.api.types import DB_ID_MAX, INTEGER
from pixweb.deps import current_merchant, requires_scope
from pixweb.services import ledger, notifications

blueprint = Blueprint("api_notifications", __name__)


class NotificationOut(BaseModel):
    id: int
    tipo: str
    mensagem: str
    timestamp: datetime
    dados: dict[str, Any]
    lida: bool


class NotificationList(BaseModel):
    items: list[NotificationOut]
    unread: int
    next_before: int | None


class HistoryQuery(BaseModel):
    limit: int = Field(20, ge=1, le=100)
    before: int | None = Field(None, ge=1, le=DB_ID_MAX)


class ReadIn(BaseModel):
    # The document states one_of's rule too: ids (all false or absent), or all true (no ids).
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["ids"],
                    "properties": {"ids": {"type": "array"}, "all": {"const": False}},
                },
                {
                    "required": ["all"],
                    "properties": {"ids": {"type": "null"}, "all": {"const": True}},
                },
            ]
        },
    )
    ids: list[Annotated[int, Field(ge=1, le=DB_ID_MAX), INTEGER]] | None = Field(
        None, max_length=500
    )
    all: bool = False

    @model_validator(mode="after")
    def one_of(self) -> ReadIn:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids" or "all": true')
        return self


class ReadOut(BaseModel):
    marked: int
    unread: int


@blueprint.get("/notifications")
@tag(["notifications"])
@bearer_required
@requires_scope("account:read")
@validate_querystring(HistoryQuery)
@validate_response(NotificationList)
async def list_notifications(query_args: HistoryQuery) -> NotificationList:
    """Notification history, newest first, with the unread count."""
    merchant = await current_merchant()
    page = await notifications.history(
        merchant.id, limit=query_args.limit, before=query_args.before
    )
    return NotificationList(
        items=[NotificationOut.model_validate(ledger.notification_dict(n)) for n in page.items],
        unread=page.unread,
        next_before=page.next_before,
    )


@blueprint.post("/notifications/read")
@tag(["notifications"])
@bearer_required
@requires_scope("account:write")
@validate_request(ReadIn)
@validate_response(ReadOut)
async def mark_read(data: ReadIn) -> ReadOut:
    """Mark notifications as read: `{"ids": [...]}` or `{"all": true}`."""
    merchant = await current_merchant()
    marked = await notifications.mark_read(merchant.id, None if data.all else data.ids)
    unread = (await notifications.history(merchant.id, limit=1)).unread
    return ReadOut(marked=marked, unread=unread)
