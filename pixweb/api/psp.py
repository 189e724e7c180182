"""The merchant's own PSP connection (API Pix): connect, read, disconnect, rotate the webhook.

A failure at the PSP says where (`step`): "tls" (the handshake: client certificate, the
PSP's CA), "token" (client id and secret), "permission" (scopes), "webhook" (registering
pixweb's webhook URL). The merchant's credentials refused are 422, the PSP unreachable 503,
an answer pixweb cannot use 502.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from quart import Blueprint
from quart_schema import tag, validate_request, validate_response

from pixweb.api.openapi import errors
from pixweb.api.security import bearer_required
from pixweb.api.types import TEXT
from pixweb.deps import LOGIN_ONLY, current_merchant, get_psp_clients, requires_scope
from pixweb.presenters import public_base
from pixweb.services import psp_connections
from pixweb.services.psp_connections import ConnectionView, Credentials

blueprint = Blueprint("api_psp", __name__)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
CONNECT_EXAMPLE: JsonDict = {
    "base_url": "https://api.psp.example/v2",
    "token_url": "https://api.psp.example/oauth/token",
    "client_id": "Client_Id_0123456789",
    "client_secret": "Client_Secret_0123456789",
    "certificate_pem": PEM,
    "private_key_pem": "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n",
}


class PspConnectionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [CONNECT_EXAMPLE]}
    )
    base_url: str = Field(
        min_length=1,
        max_length=500,
        description="The PSP's API Pix address (https; a public host unless the server "
        "allows private ones)",
        json_schema_extra=TEXT,
    )
    token_url: str | None = Field(
        None,
        max_length=500,
        description="The OAuth2 token endpoint: `{base_url}/oauth/token` when absent",
        json_schema_extra=TEXT,
    )
    client_id: str = Field(min_length=1, max_length=255, json_schema_extra=TEXT)
    client_secret: str = Field(min_length=1, max_length=1024, json_schema_extra=TEXT)
    certificate_pem: str = Field(
        min_length=1,
        max_length=32768,
        description="The client certificate the PSP issued (PEM, its chain may follow)",
    )
    private_key_pem: str = Field(
        min_length=1, max_length=16384, description="Its private key (PEM, unencrypted)"
    )
    server_ca_pem: str | None = Field(
        None,
        max_length=32768,
        description="The PSP's own CA chain (homologation environments); public CAs if absent",
    )


class CertificateOut(BaseModel):
    subject: str
    issuer: str
    not_after: datetime
    expiring_soon: bool = Field(description="Expires within 30 days (or has expired)")
    expired: bool


class ReconciliationOut(BaseModel):
    status: str = Field(description="ok, or failed (`error` says why)")
    finished_at: datetime
    pages: int = Field(description="Pages of GET /pix read")
    recorded: dict[str, int] = Field(description="Pix recorded by this run, by outcome")
    already_recorded: int = Field(description="Pix listed that were recorded before")
    skipped: dict[str, int] = Field(description="Pix not recorded, by reason")
    reconciled_until: datetime | None = Field(
        description="Every Pix the PSP listed up to here is recorded"
    )
    error: str | None


class PspConnectionOut(BaseModel):
    base_url: str
    token_url: str
    client_id: str
    chave: str = Field(description="The Pix key whose webhook pixweb registered")
    certificate: CertificateOut
    webhook_url: str | None = Field(description="Registered at the PSP (null: see `problem`)")
    connected_at: datetime
    last_reconciliation_at: datetime | None = Field(description="The last successful run")
    last_reconciliation: ReconciliationOut | None = Field(description="What the last run found")
    problem: str | None = Field(
        description="Why the stored credentials cannot be used, if they cannot"
    )

    @classmethod
    def of(cls, view: ConnectionView) -> PspConnectionOut:
        return cls(
            base_url=view.base_url,
            token_url=view.token_url,
            client_id=view.client_id,
            chave=view.chave,
            certificate=CertificateOut(
                subject=view.certificate_subject,
                issuer=view.certificate_issuer,
                not_after=view.certificate_not_after,
                expiring_soon=view.certificate_expiring_soon,
                expired=view.certificate_expired,
            ),
            webhook_url=view.webhook_url,
            connected_at=view.connected_at,
            last_reconciliation_at=view.last_reconciliation_at,
            last_reconciliation=(
                ReconciliationOut.model_validate(view.last_reconciliation)
                if view.last_reconciliation
                else None
            ),
            problem=view.problem,
        )


class DisconnectionOut(BaseModel):
    disconnected: bool = True
    webhook_removed: bool = Field(description="False when the PSP could not be reached")
    detail: str


@blueprint.put("/merchants/me/psp")
@tag(["psp"])
@bearer_required
@requires_scope(LOGIN_ONLY)
@validate_request(PspConnectionIn)
@validate_response(PspConnectionOut)
@errors(409, 422, 502, 503)
async def connect_psp(data: PspConnectionIn) -> PspConnectionOut:
    """Connect (or replace) the merchant's PSP: proves the credentials and registers
    pixweb's webhook at the PSP before storing anything."""
    merchant = await current_merchant()
    view = await psp_connections.connect(
        merchant,
        Credentials(**data.model_dump()),
        clients=get_psp_clients(),
        public_base=public_base(),
    )
    return PspConnectionOut.of(view)


@blueprint.get("/merchants/me/psp")
@tag(["psp"])
@bearer_required
@requires_scope("account:read")
@validate_response(PspConnectionOut)
@errors(404)
async def get_psp() -> PspConnectionOut:
    """The merchant's PSP connection (404 when none), never a secret."""
    merchant = await current_merchant()
    view = await psp_connections.get_connection(merchant, clients=get_psp_clients())
    return PspConnectionOut.of(view)


@blueprint.delete("/merchants/me/psp")
@tag(["psp"])
@bearer_required
@requires_scope(LOGIN_ONLY)
@validate_response(DisconnectionOut)
@errors(404)
async def disconnect_psp() -> DisconnectionOut:
    """Disconnect: removes the webhook at the PSP when it answers, the connection anyway."""
    merchant = await current_merchant()
    result = await psp_connections.disconnect(merchant, clients=get_psp_clients())
    return DisconnectionOut(webhook_removed=result.webhook_removed, detail=result.detail)


@blueprint.post("/merchants/me/psp/webhook-token")
@tag(["psp"])
@bearer_required
@requires_scope(LOGIN_ONLY)
@validate_response(PspConnectionOut)
@errors(404, 409, 422, 502, 503)
async def rotate_webhook_token() -> PspConnectionOut:
    """Register a new webhook URL at the PSP; the old one stops working."""
    merchant = await current_merchant()
    view = await psp_connections.rotate_webhook_token(
        merchant, clients=get_psp_clients(), public_base=public_base()
    )
    return PspConnectionOut.of(view)
