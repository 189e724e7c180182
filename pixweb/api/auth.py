"""Merchant registration and login (bearer JWT)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from quart import Blueprint
from quart_schema import tag, validate_request, validate_response

from pixweb import throttle
from pixweb.api.openapi import errors
from pixweb.api.types import TEXT, TRIMMED_TEXT
from pixweb.deps import get_config, get_psp_clients
from pixweb.models import Merchant
from pixweb.presenters import public_base
from pixweb.services import merchants, psp_sandbox

blueprint = Blueprint("api_auth", __name__)


REGISTER_EXAMPLE: JsonDict = {
    "name": "Padaria São João",
    "email": "padaria@example.com",
    "password": "correct horse battery",
    "city": "São Paulo",
    "pix_key": "(11) 99876-5432",
}
LOGIN_EXAMPLE: JsonDict = {"email": "loja@example.com", "password": "correct horse battery"}


class RegisterIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [REGISTER_EXAMPLE]}
    )
    name: str = Field(
        min_length=1,
        max_length=100,
        description="Not empty once folded to ASCII (400)",
        json_schema_extra=TRIMMED_TEXT,
    )
    email: str = Field(
        max_length=254,
        description="An address, local@domain.tld (400 if not)",
        json_schema_extra=TRIMMED_TEXT,
    )
    password: str = Field(min_length=8, max_length=256, json_schema_extra=TEXT)
    city: str = Field(
        min_length=1,
        max_length=60,
        description="Not empty once folded to ASCII (400)",
        json_schema_extra=TRIMMED_TEXT,
    )
    pix_key: str = Field(
        max_length=100,
        json_schema_extra=TRIMMED_TEXT,
        description="CPF, CNPJ, e-mail, phone or random key (EVP), masks allowed:"
        " 123.456.789-09, (12) 99876-5432, +55 12 99876-5432. 11 bare digits are a CPF."
        " CPF and CNPJ check digits are verified (400 if wrong).",
    )


class MerchantOut(BaseModel):
    id: int
    name: str
    email: str
    city: str
    pix_key: str
    pix_key_type: str
    created_at: datetime

    @classmethod
    def of(cls, merchant: Merchant) -> MerchantOut:
        return cls(
            id=merchant.id,
            name=merchant.name,
            email=merchant.email,
            city=merchant.city,
            pix_key=merchant.pix_key,
            pix_key_type=merchant.pix_key_type,
            created_at=merchant.created_at,
        )


class LoginIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [LOGIN_EXAMPLE]}
    )
    email: str = Field(max_length=254, json_schema_extra=TEXT)
    password: str = Field(max_length=256, json_schema_extra=TEXT)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


@blueprint.post("/auth/register")
@tag(["auth"])
@errors(409, 429)
@validate_request(RegisterIn)
@validate_response(MerchantOut, 201)
async def register(data: RegisterIn) -> tuple[MerchantOut, int]:
    """Create a merchant account."""
    await throttle.count_attempt()
    merchant = await merchants.register_merchant(**data.model_dump())
    await psp_sandbox.connect_new_merchant(
        merchant, clients=get_psp_clients(), public_base=public_base()
    )
    return MerchantOut.of(merchant), 201


@blueprint.post("/auth/login")
@tag(["auth"])
@errors(401, 429)
@validate_request(LoginIn)
@validate_response(TokenOut, 200)
async def login(data: LoginIn) -> TokenOut:
    """Exchange e-mail and password for a bearer token."""
    await throttle.count_attempt(data.email)
    merchant = await merchants.authenticate(data.email, data.password)
    ttl = get_config().token_ttl_seconds
    token = merchants.issue_token(merchant, secret=get_config().secret_key, ttl_seconds=ttl)
    return TokenOut(access_token=token, expires_in=ttl)
