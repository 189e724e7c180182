"""What a dynamic BR Code's location answers: the charge's payload as a compact JWS.

A real PSP signs it with its certificate (PS256/RS256, its key published at `jku`) and the
payer's bank checks the signature. The sandbox signs with HS256 under a key derived from the
app's secret: enough for a developer to read it and for a tampered copy to fail, verifiable
by no bank, which is right for a sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from pixweb.models import SandboxCob
from pixweb.psp.schemas import format_valor, valor_from_centavos

_KEY_CONTEXT = b"pixweb.sandbox-psp.location-jws"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(row: SandboxCob, now: datetime) -> dict[str, Any]:
    """The charge as the payer's bank reads it at `now` (the API Pix's `PixPayload`)."""
    body: dict[str, Any] = {
        "revisao": row.revisao,
        "calendario": {
            "criacao": _moment(row.criacao),
            "apresentacao": _moment(now),
            "expiracao": row.expiracao,
        },
        "txid": row.txid,
        "valor": {"original": format_valor(valor_from_centavos(row.amount_cents))},
        "chave": row.chave,
        "status": row.status,
    }
    if row.solicitacao_pagador:
        body["solicitacaoPagador"] = row.solicitacao_pagador
    return body


def jws(row: SandboxCob, secret_key: str, now: datetime) -> str:
    """The payload at `now` signed as a compact JWS (HS256)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JOSE"}).encode())
    claims = _b64(json.dumps(payload(row, now), ensure_ascii=False, separators=(",", ":")).encode())
    key = hmac.new(secret_key.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"
