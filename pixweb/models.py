"""Tortoise models: merchants, their PIX payments, accounts, ledger, notifications and the
Pix their accounts received."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from tortoise import fields
from tortoise.models import Model

# Model docstrings become table comments: Tortoise 1.1 splits SQLite DDL on ";", so
# a semicolon in a docstring breaks the migration. Keep them out.


class PaymentStatus(StrEnum):
    """Stored status. `expired` is derived from `expires_at`, never stored."""

    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"  # paid, part of it refunded (services.refunds)
    REFUNDED = "refunded"  # paid, all of it refunded


# A charge someone paid, whatever its refunds gave back since (each has its paid_at).
PAID_STATES = frozenset(
    {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)


class MovementKind(StrEnum):
    """Ledger movement kinds, named as the seed bank API names them (pt-BR)."""

    DEPOSITO = "deposito"
    SAQUE = "saque"
    TRANSFERENCIA_ENVIADA = "transferencia_enviada"
    TRANSFERENCIA_RECEBIDA = "transferencia_recebida"
    PAGAMENTO = "pagamento"
    PIX_RECEBIDO = "pix_recebido"
    DEVOLUCAO = "devolucao"  # a refund of a received Pix, debited when it is requested
    DEVOLUCAO_ESTORNADA = "devolucao_estornada"  # a refund the PSP did not make, credited back
    ESTORNO = "estorno"  # a charge paid from a pixweb balance reversed: one on each account


class PixSource(StrEnum):
    """What brought pixweb a received Pix."""

    WEBHOOK = "webhook"  # the PSP's standard webhook
    RECONCILIATION = "reconciliation"  # found by paging the PSP's GET /pix
    CONFIRMATION = "confirmation"  # the seed's signed POST /payments/pix/confirmation
    SANDBOX = "sandbox"  # pixweb's own sandbox PSP


class PixOutcome(StrEnum):
    """What a received Pix did to the charge its txid names. Only `matched` paid one."""

    MATCHED = "matched"  # paid its charge (or attached to one by the merchant)
    LATE = "late"  # its charge had expired or been cancelled
    DUPLICATE = "duplicate"  # its charge was already paid by another Pix or a balance
    AMOUNT_MISMATCH = "amount_mismatch"  # another amount than its charge's
    UNKNOWN_TXID = "unknown_txid"  # its txid names no charge of this merchant
    NO_TXID = "no_txid"  # paid to the Pix key directly


class Merchant(Model):
    """A business that charges with PIX, paid to its Pix key."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    city = fields.CharField(max_length=60)
    pix_key = fields.CharField(max_length=77)
    pix_key_type = fields.CharField(max_length=5)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Stored in each session cookie; logging out bumps it, so copies of a cookie die too.
    session_version = fields.IntField(default=0, db_default=0)

    payments: fields.ReverseRelation[Payment]
    account: fields.BackwardOneToOneRelation[Account]

    class Meta:
        table = "merchant"


class Payment(Model):
    """A PIX charge: its BR Code (static, or the PSP's dynamic one), amount and unique txid.

    The txid is pixweb's own 25 characters for a static code, 26 to 35 (the API Pix's
    pattern) for a charge created at the merchant's PSP."""

    id = fields.UUIDField(primary_key=True, default=uuid4)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="payments", on_delete=fields.RESTRICT
    )
    amount_cents = fields.BigIntField()
    description = fields.CharField(max_length=140, null=True)
    txid = fields.CharField(max_length=35, unique=True)
    brcode = fields.TextField()
    status = fields.CharEnumField(PaymentStatus, max_length=18, default=PaymentStatus.PENDING)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)
    end_to_end_id = fields.CharField(max_length=32, null=True, unique=True)
    idempotency_key = fields.CharField(max_length=255, null=True)
    request_hash = fields.CharField(max_length=64, null=True)
    # What its refunds gave back (DEVOLVIDO, external or estorno): the payer's page says it.
    refunded_cents = fields.BigIntField(default=0, db_default=0)
    # The charge's story (/dashboard/charges/<id>): when a payer first opened its page, when
    # the merchant cancelled it, when pixweb recorded its expiry (and sent charge.expired).
    first_viewed_at = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)
    expiry_recorded_at = fields.DatetimeField(null=True)

    merchant_id: int

    class Meta:
        table = "payment"
        unique_together = (("merchant_id", "idempotency_key"),)
        indexes = (("merchant_id", "created_at"), ("status", "expiry_recorded_at", "expires_at"))

    def status_at(self, now: datetime) -> PaymentStatus:
        """Return the status as the payer sees it at `now` (pending turns expired)."""
        if self.status == PaymentStatus.PENDING and now >= self.expires_at:
            return PaymentStatus.EXPIRED
        return self.status


class Account(Model):
    """A merchant's balance in centavos, changed only together with a Movement row."""

    id = fields.IntField(primary_key=True)
    merchant: fields.OneToOneRelation[Merchant] = fields.OneToOneField(
        "models.Merchant", related_name="account", on_delete=fields.RESTRICT
    )
    balance_cents = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    merchant_id: int

    class Meta:
        table = "account"


class Movement(Model):
    """One append-only ledger line: signed amount and the balance it left."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="movements", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(MovementKind, max_length=22)
    amount_cents = fields.BigIntField()
    balance_after_cents = fields.BigIntField()
    reference = fields.CharField(max_length=64, null=True)
    counterpart = fields.CharField(max_length=254, null=True)
    description = fields.CharField(max_length=140, null=True)
    created_at = fields.DatetimeField()
    idempotency_key = fields.CharField(max_length=255, null=True)
    request_hash = fields.CharField(max_length=64, null=True)

    account_id: int

    class Meta:
        table = "movement"
        unique_together = (("account_id", "idempotency_key"),)
        indexes = (("account_id", "created_at"), ("reference",))


class Notification(Model):
    """What a merchant is told about a movement, kept for the history and unread count."""

    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="notifications", on_delete=fields.RESTRICT
    )
    tipo = fields.CharField(max_length=22)
    mensagem = fields.CharField(max_length=200)
    dados: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()
    read_at = fields.DatetimeField(null=True)

    merchant_id: int

    class Meta:
        table = "notification"
        indexes = (("merchant_id", "created_at"),)


class ReceivedPix(Model):
    """A Pix a merchant's bank account received, recorded once by its end_to_end_id.

    `movement` is the one pix_recebido movement that credited it, whatever its outcome.
    """

    id = fields.UUIDField(primary_key=True, default=uuid4)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="received_pix", on_delete=fields.RESTRICT
    )
    # The BCB's endToEndId (32 characters, some PSPs send up to 35), or "txid:<txid>" for
    # a seed confirmation that named none, so that every credit has its record.
    end_to_end_id = fields.CharField(max_length=35, unique=True)
    amount_cents = fields.BigIntField()
    txid = fields.CharField(max_length=35, null=True)
    paid_at = fields.DatetimeField()  # the PSP's `horario`
    payer_name = fields.CharField(max_length=200, null=True)
    payer_document = fields.CharField(max_length=18, null=True)  # masked, never the full one
    source = fields.CharEnumField(PixSource, max_length=14)
    outcome = fields.CharEnumField(PixOutcome, max_length=15)
    # What it was when recorded, once the merchant attached it to a charge (outcome matched).
    original_outcome = fields.CharEnumField(PixOutcome, max_length=15, null=True)
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", related_name="received_pix", null=True, on_delete=fields.RESTRICT
    )
    movement: fields.OneToOneRelation[Movement] = fields.OneToOneField(
        "models.Movement", related_name="received_pix", on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField()
    attach_key = fields.CharField(max_length=255, null=True)  # the attachment's Idempotency-Key

    merchant_id: int
    payment_id: UUID | None
    movement_id: int

    class Meta:
        table = "received_pix"
        unique_together = (("merchant_id", "attach_key"),)
        indexes = (("merchant_id", "created_at"),)


class PspConnection(Model):
    """A merchant's account at its PSP, reached through the Banco Central's API Pix.

    client_secret, private_key_pem and webhook_url (it carries the webhook token) are
    pixweb.crypto ciphertexts bound to the merchant and the field. The webhook intake finds
    the merchant by webhook_token_hash, the SHA-256 of the token.
    """

    id = fields.IntField(primary_key=True)
    merchant: fields.OneToOneRelation[Merchant] = fields.OneToOneField(
        "models.Merchant", related_name="psp_connection", on_delete=fields.RESTRICT
    )
    base_url = fields.CharField(max_length=500)
    token_url = fields.CharField(max_length=500)
    client_id = fields.CharField(max_length=255)
    client_secret = fields.TextField()  # encrypted
    certificate_pem = fields.TextField()  # the client certificate and its chain: public
    private_key_pem = fields.TextField()  # encrypted
    server_ca_pem = fields.TextField(null=True)
    certificate_subject = fields.TextField()
    certificate_issuer = fields.TextField()
    certificate_not_after = fields.DatetimeField()
    chave = fields.CharField(max_length=77)  # the Pix key whose webhook pixweb registered
    webhook_token_hash = fields.CharField(max_length=64, unique=True)
    webhook_url = fields.TextField()  # encrypted
    # Bumped by every change: a change computed from an older read is refused, not lost.
    revision = fields.IntField(default=1)
    connected_at = fields.DatetimeField()
    last_reconciliation_at = fields.DatetimeField(null=True)
    # Reconciliation's checkpoint: every Pix the PSP lists up to this `horario` is recorded
    # (pixweb.services.reconcile); and what its last run found.
    reconciled_until = fields.DatetimeField(null=True)
    last_reconciliation: dict[str, Any] | None = fields.JSONField(null=True)
    # pixweb's own sandbox PSP (development only): plain http to this server, client
    # credentials derived from the app's secret, no certificate (its PEM fields are empty).
    sandbox = fields.BooleanField(default=False, db_default=False)

    merchant_id: int

    class Meta:
        table = "psp_connection"


# The built-in sandbox PSP (pixweb.psp.sandbox, development only): what a PSP would keep for
# each merchant, its receiver. Statuses are the API Pix's own words (pixweb.psp.schemas).


class SandboxCob(Model):
    """An immediate charge (cob) at the sandbox PSP, unique per receiver and txid."""

    id = fields.IntField(primary_key=True)  # also the charge's loc.id
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="sandbox_cobs", on_delete=fields.CASCADE
    )
    txid = fields.CharField(max_length=35)
    revisao = fields.IntField(default=0)
    status = fields.CharField(max_length=31)  # CobStatus
    amount_cents = fields.BigIntField()
    chave = fields.CharField(max_length=77)
    expiracao = fields.IntField()  # seconds after criacao
    criacao = fields.DatetimeField()  # moved back by the late-payment scenario
    solicitacao_pagador = fields.CharField(max_length=140, null=True)
    devedor: dict[str, Any] | None = fields.JSONField(null=True)
    info_adicionais: list[dict[str, Any]] | None = fields.JSONField(null=True)
    location = fields.CharField(max_length=77, unique=True)  # without scheme, as in the code
    pix_copia_e_cola = fields.TextField()

    merchant_id: int

    class Meta:
        table = "sandbox_cob"
        unique_together = (("merchant_id", "txid"),)


class SandboxPix(Model):
    """A Pix the sandbox PSP received for a merchant, with or without a txid."""

    id = fields.IntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="sandbox_pix", on_delete=fields.CASCADE
    )
    cob: fields.ForeignKeyNullableRelation[SandboxCob] = fields.ForeignKeyField(
        "models.SandboxCob", related_name="pix", null=True, on_delete=fields.CASCADE
    )
    end_to_end_id = fields.CharField(max_length=32, unique=True)
    txid = fields.CharField(max_length=35, null=True)
    chave = fields.CharField(max_length=77)
    amount_cents = fields.BigIntField()
    horario = fields.DatetimeField()
    payer_name = fields.CharField(max_length=200)
    payer_cpf = fields.CharField(max_length=11)
    info_pagador = fields.CharField(max_length=140, null=True)

    merchant_id: int
    cob_id: int | None

    class Meta:
        table = "sandbox_pix"
        indexes = (("merchant_id", "horario"),)


class SandboxDevolucao(Model):
    """A refund of a sandbox Pix: EM_PROCESSAMENTO until settle_at, then final_status."""

    id = fields.IntField(primary_key=True)
    pix: fields.ForeignKeyRelation[SandboxPix] = fields.ForeignKeyField(
        "models.SandboxPix", related_name="devolucoes", on_delete=fields.CASCADE
    )
    devolucao_id = fields.CharField(max_length=35)  # the id the merchant chose
    rtr_id = fields.CharField(max_length=32, unique=True)
    amount_cents = fields.BigIntField()
    natureza = fields.CharField(max_length=18)
    descricao = fields.CharField(max_length=140, null=True)
    status = fields.CharField(max_length=16)  # DevolucaoStatus
    final_status = fields.CharField(max_length=16)  # what it becomes at settle_at
    motivo = fields.CharField(max_length=140, null=True)
    requested_at = fields.DatetimeField()
    settle_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)

    pix_id: int

    class Meta:
        table = "sandbox_devolucao"
        unique_together = (("pix_id", "devolucao_id"),)


class SandboxWebhook(Model):
    """The URL a merchant registered at the sandbox PSP for the Pix paid to one key."""

    id = fields.IntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="sandbox_webhooks", on_delete=fields.CASCADE
    )
    chave = fields.CharField(max_length=77)
    url = fields.TextField()
    criacao = fields.DatetimeField()

    merchant_id: int

    class Meta:
        table = "sandbox_webhook"
        unique_together = (("merchant_id", "chave"),)


class RefundStatus(StrEnum):
    PROCESSING = "processing"  # asked of the PSP (EM_PROCESSAMENTO): its amount is debited
    REFUNDED = "refunded"  # DEVOLVIDO, or made outside pixweb, or reversed in the ledger
    FAILED = "failed"  # NAO_REALIZADO or refused by the PSP: its amount was credited back


class RefundKind(StrEnum):
    PSP = "psp"  # a devolucao through the merchant's PSP
    EXTERNAL = "external"  # made by the merchant in its bank app, recorded here
    ESTORNO = "estorno"  # a charge paid from a pixweb balance, reversed in the ledger


class Refund(Model):
    """A refund of a received Pix (or of a charge paid from a pixweb balance).

    `devolucao_id` is the id pixweb chose for the PSP, stored before the PSP is called, so
    a retry reuses it (or the PSP's own, for the MED refunds it made by itself). `movement`
    is the debit made when it was requested, `credit_movement` the credit back if it failed.
    """

    id = fields.UUIDField(primary_key=True, default=uuid4)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="refunds", on_delete=fields.RESTRICT
    )
    received_pix: fields.ForeignKeyNullableRelation[ReceivedPix] = fields.ForeignKeyField(
        "models.ReceivedPix", related_name="refunds", null=True, on_delete=fields.RESTRICT
    )
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", related_name="refunds", null=True, on_delete=fields.RESTRICT
    )
    end_to_end_id = fields.CharField(max_length=35, null=True)
    devolucao_id = fields.CharField(max_length=35)
    rtr_id = fields.CharField(max_length=32, null=True)
    kind = fields.CharEnumField(RefundKind, max_length=8)
    natureza = fields.CharField(max_length=18)
    amount_cents = fields.BigIntField()
    description = fields.CharField(max_length=140, null=True)
    status = fields.CharEnumField(RefundStatus, max_length=10)
    reason = fields.CharField(max_length=200, null=True)
    requested_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)
    movement: fields.ForeignKeyNullableRelation[Movement] = fields.ForeignKeyField(
        "models.Movement", related_name="refunds", null=True, on_delete=fields.RESTRICT
    )
    credit_movement: fields.ForeignKeyNullableRelation[Movement] = fields.ForeignKeyField(
        "models.Movement", related_name="refunds_credited", null=True, on_delete=fields.RESTRICT
    )
    idempotency_key = fields.CharField(max_length=255, null=True)
    request_hash = fields.CharField(max_length=64, null=True)

    merchant_id: int
    received_pix_id: UUID | None
    payment_id: UUID | None
    movement_id: int | None
    credit_movement_id: int | None

    class Meta:
        table = "refund"
        unique_together = (("merchant_id", "idempotency_key"), ("received_pix_id", "devolucao_id"))
        indexes = (("status", "kind"), ("received_pix_id",), ("payment_id",))


class ApiKey(Model):
    """A key a merchant's own systems use on the JSON API, limited to its scopes.

    Only the SHA-256 of the key is stored (the key is 32 random bytes: a slow hash adds
    nothing), with its first characters to recognise it in a list."""

    id = fields.IntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="api_keys", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=100)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes: list[str] = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    merchant_id: int

    class Meta:
        table = "api_key"
        indexes = (("merchant_id", "created_at"),)


class WebhookEndpoint(Model):
    """A URL of the merchant's that receives its events, signed with its secret.

    Secrets are encrypted at rest (crypto.py). While a rotation's grace period lasts, the
    previous secret signs too."""

    id = fields.IntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="webhook_endpoints", on_delete=fields.RESTRICT
    )
    url = fields.TextField()
    description = fields.CharField(max_length=200, null=True)
    events: list[str] = fields.JSONField(default=list)
    secret = fields.TextField()  # encrypted whsec_...
    previous_secret = fields.TextField(null=True)  # encrypted, signs until it expires
    previous_secret_expires_at = fields.DatetimeField(null=True)
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=200, null=True)
    failing_since = fields.DatetimeField(null=True)  # first failure of the current streak
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    deleted_at = fields.DatetimeField(null=True)  # deleted endpoints keep their log

    merchant_id: int

    class Meta:
        table = "webhook_endpoint"
        indexes = (("merchant_id", "created_at"),)


class WebhookEvent(Model):
    """One event of a merchant's, written in the transaction of the change it reports.

    `id` (evt_...) is the `webhook-id` of every attempt to deliver it."""

    id = fields.CharField(max_length=40, primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="webhook_events", on_delete=fields.RESTRICT
    )
    type = fields.CharField(max_length=40)
    data: dict[str, Any] = fields.JSONField()
    created_at = fields.DatetimeField()

    merchant_id: int

    class Meta:
        table = "webhook_event"
        indexes = (("merchant_id", "created_at"),)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SUCCEEDED = "succeeded"  # a 2xx answer
    FAILED = "failed"  # the schedule ran out, or the endpoint was disabled or deleted


class WebhookDelivery(Model):
    """One event owed to one endpoint: its state and when it is next due."""

    id = fields.BigIntField(primary_key=True)
    event: fields.ForeignKeyRelation[WebhookEvent] = fields.ForeignKeyField(
        "models.WebhookEvent", related_name="deliveries", on_delete=fields.RESTRICT
    )
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(DeliveryStatus, max_length=9, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    last_attempt_at = fields.DatetimeField(null=True)
    last_status_code = fields.IntField(null=True)
    created_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)
    manual = fields.BooleanField(default=False)  # a "Reenviar" or a test event

    event_id: str
    endpoint_id: int

    class Meta:
        table = "webhook_delivery"
        indexes = (("status", "next_attempt_at"), ("endpoint_id", "created_at"), ("event_id",))


class WebhookAttempt(Model):
    """One POST of a delivery: what was answered, or what went wrong."""

    id = fields.BigIntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log", on_delete=fields.RESTRICT
    )
    number = fields.IntField()
    started_at = fields.DatetimeField()
    duration_ms = fields.IntField()
    status_code = fields.IntField(null=True)
    response_body = fields.TextField(null=True)  # the first 1 KB
    error = fields.CharField(max_length=500, null=True)

    delivery_id: int

    class Meta:
        table = "webhook_attempt"
        indexes = (("delivery_id", "number"),)
