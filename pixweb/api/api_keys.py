"""API keys: make one (shown once), list them, revoke one. A logged-in merchant's token
only: an API key cannot make or revoke keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import tag, validate_request, validate_response

from pixweb.api.openapi import errors, media
from pixweb.api.security import bearer_required
from pixweb.deps import LOGIN_ONLY, current_merchant, get_broker, requires_scope
from pixweb.models import ApiKey
from pixweb.services import api_keys

blueprint = Blueprint("api_api_keys", __name__)

Scope = Literal[
    "charges:read",
    "charges:write",
    "refunds:write",
    "account:read",
    "account:write",
    "webhooks:manage",
]


# Text with something besides spaces (the service trims it) and no control character.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(
        min_length=1,
        max_length=api_keys.NAME_MAX,
        examples=["Loja virtual"],
        json_schema_extra={"pattern": NAME_PATTERN},
    )
    # Validated as plain strings, so that the service's error names an unknown scope; the
    # document lists the scopes.
    scopes: list[str] = Field(
        min_length=1,
        max_length=len(api_keys.SCOPES),
        examples=[["charges:read", "charges:write"]],
        json_schema_extra={"items": {"type": "string", "enum": list(api_keys.SCOPES)}},
    )


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(description="To the minute")
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyOut:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            scopes=row.scopes,  # type: ignore[arg-type]  # checked on the way in
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class CreatedApiKeyOut(ApiKeyOut):
    key: str = Field(
        description="The key: shown this once, never again. Send it as `Authorization: "
        "Bearer pxw_...`",
        examples=["pxw_3q2-7wEJx0aD9sQm1Vf6bT4yL8nK5cR0uP7hG2jZ1eA"],
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


@blueprint.post("/api-keys")
@tag(["api-keys"])
@bearer_required
@requires_scope(LOGIN_ONLY)
@validate_request(ApiKeyIn)
@validate_response(CreatedApiKeyOut, 201)
async def create_api_key(data: ApiKeyIn) -> tuple[CreatedApiKeyOut, int]:
    """Make an API key with some scopes: the answer holds the key, shown only this once."""
    merchant = await current_merchant()
    row, key = await api_keys.create_key(merchant.id, data.name, data.scopes)
    return CreatedApiKeyOut(**ApiKeyOut.of(row).model_dump(), key=key), 201


@blueprint.get("/api-keys")
@tag(["api-keys"])
@bearer_required
@requires_scope(LOGIN_ONLY)
@validate_response(ApiKeyList)
async def list_api_keys() -> ApiKeyList:
    """List the merchant's keys, newest first (never a key itself)."""
    merchant = await current_merchant()
    return ApiKeyList(items=[ApiKeyOut.of(row) for row in await api_keys.list_keys(merchant.id)])


@blueprint.delete("/api-keys/<int:key_id>")
@tag(["api-keys"])
@bearer_required
@requires_scope(LOGIN_ONLY)
@errors(404)
@media(204, description="Revoked (or it already was)")
async def revoke_api_key(key_id: int) -> tuple[str, int]:
    """Revoke a key: refused at once on every server; it stays listed, revoked."""
    merchant = await current_merchant()
    await api_keys.revoke_key(merchant.id, key_id, broker=get_broker())
    return "", 204
