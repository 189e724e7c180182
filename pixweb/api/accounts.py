"""The merchant's account: balance, deposits, withdrawals, transfers, paying PIX codes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from quart import Blueprint
from quart_schema import (
    document_headers,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from pixweb import money
from pixweb.api.openapi import errors
from pixweb.api.security import Handler, bearer_required
from pixweb.api.types import (
    DB_ID_MAX,
    TEXT,
    TRIMMED_TEXT,
    Amount,
    IdempotencyHeaders,
    Timestamp,
    idempotency_key,
)
from pixweb.deps import current_merchant, get_broker, requires_scope
from pixweb.models import Movement, MovementKind
from pixweb.services import accounts, ledger, settlement

blueprint = Blueprint("api_accounts", __name__)


class AccountOut(BaseModel):
    id: int
    merchant_id: int
    name: str
    email: str
    balance: str = Field(examples=["100.00"])
    created_at: datetime


class MovementOut(BaseModel):
    id: int
    kind: MovementKind
    amount: str = Field(examples=["-30.00"], description="Signed: debits are negative")
    balance_after: str
    reference: str | None
    counterpart: str | None
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, movement: Movement) -> MovementOut:
        return cls.model_validate(ledger.movement_dict(movement))


class MovementList(BaseModel):
    items: list[MovementOut]
    next_before: int | None = Field(description="Pass as `before` for the next page")


class ValueIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: Amount


TRANSFER_EXAMPLE: JsonDict = {
    "to_email": "fornecedor@example.com",
    "value": "10.00",
    "description": "Pão",
}


class TransferIn(ValueIn):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [TRANSFER_EXAMPLE]}
    )
    to_email: str = Field(
        max_length=254,
        description="Another merchant's e-mail (400 if no address, 404 if no one)",
        json_schema_extra=TRIMMED_TEXT,
    )
    description: str | None = Field(None, max_length=140, json_schema_extra=TEXT)


class PayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    brcode: str = Field(
        min_length=1,
        max_length=1024,
        description="Pix Copia e Cola of a pixweb charge (422 for any other code)",
        json_schema_extra=TEXT,
    )


class MovementsQuery(BaseModel):
    kind: MovementKind | None = None
    since: Timestamp | None = Field(None, description="RFC 3339: 2024-05-01T12:00:00Z")
    until: Timestamp | None = Field(None, description="RFC 3339: 2024-05-01T12:00:00Z")
    limit: int = Field(20, ge=1, le=100)
    before: int | None = Field(None, ge=1, le=DB_ID_MAX)


def _created(result: tuple[Movement, bool]) -> tuple[MovementOut, int]:
    movement, created = result
    return MovementOut.of(movement), 201 if created else 200


@blueprint.get("/accounts/me")
@tag(["accounts"])
@bearer_required
@requires_scope("account:read")
@validate_response(AccountOut)
async def get_account() -> AccountOut:
    """The merchant's account and balance."""
    merchant = await current_merchant()
    account = await ledger.get_account(merchant.id)
    return AccountOut(
        id=account.id,
        merchant_id=merchant.id,
        name=merchant.name,
        email=merchant.email,
        balance=money.format_amount(account.balance_cents),
        created_at=account.created_at,
    )


def _money_route(path: str, body: type[BaseModel], *statuses: int) -> Callable[[Handler], Handler]:
    """Stack the decorators every money-moving route shares; `statuses`: its error statuses."""

    def decorate(handler: Handler) -> Handler:
        for decorator in (
            errors(409, *statuses),  # 409: an Idempotency-Key reused for another request
            validate_response(MovementOut, 200),
            validate_response(MovementOut, 201),
            validate_request(body),
            document_headers(IdempotencyHeaders),
            requires_scope("account:write"),
            bearer_required,
            tag(["accounts"]),
            blueprint.post(path),
        ):
            handler = decorator(handler)
        return handler

    return decorate


@_money_route("/accounts/me/deposits", ValueIn)
async def deposit(data: ValueIn) -> tuple[MovementOut, int]:
    """Add money to the account."""
    merchant = await current_merchant()
    return _created(
        await accounts.deposit(
            merchant, data.value, broker=get_broker(), idempotency_key=idempotency_key()
        )
    )


@_money_route("/accounts/me/withdrawals", ValueIn, 422)
async def withdraw(data: ValueIn) -> tuple[MovementOut, int]:
    """Take money out of the account (never below zero: 422)."""
    merchant = await current_merchant()
    return _created(
        await accounts.withdraw(
            merchant, data.value, broker=get_broker(), idempotency_key=idempotency_key()
        )
    )


@_money_route("/accounts/me/transfers", TransferIn, 404, 422)
async def transfer(data: TransferIn) -> tuple[MovementOut, int]:
    """Send money to another merchant by e-mail."""
    merchant = await current_merchant()
    return _created(
        await accounts.transfer(
            merchant,
            data.to_email,
            data.value,
            description=data.description,
            broker=get_broker(),
            idempotency_key=idempotency_key(),
        )
    )


@_money_route("/accounts/me/payments", PayIn, 422)
async def pay(data: PayIn) -> tuple[MovementOut, int]:
    """Pay a pixweb charge's copy-paste code from the balance."""
    merchant = await current_merchant()
    return _created(
        await settlement.pay_brcode(
            merchant, data.brcode, broker=get_broker(), idempotency_key=idempotency_key()
        )
    )


@blueprint.get("/accounts/me/movements")
@tag(["accounts"])
@bearer_required
@requires_scope("account:read")
@validate_querystring(MovementsQuery)
@validate_response(MovementList)
async def list_movements(query_args: MovementsQuery) -> MovementList:
    """The account's movements, newest first; filter by kind and date range."""
    merchant = await current_merchant()
    page = await accounts.list_movements(
        merchant.id,
        kind=query_args.kind,
        since=query_args.since,
        until=query_args.until,
        limit=query_args.limit,
        before=query_args.before,
    )
    return MovementList(items=[MovementOut.of(m) for m in page.items], next_before=page.next_before)
