"""Charges at the merchant's PSP: `PUT /cob/{txid}` on creation, `PATCH` on cancel.

The txid is fixed before the call, so a retry never makes a second cob: derived from the
merchant and its Idempotency-Key (a retried request reaches the same txid), random without
one. The client retries a PUT whose answer was lost; a PSP that then answers "txid em uso"
(most refuse a reused txid) is asked `GET /cob/{txid}`, and the charge is taken if it is the
one asked for. pixweb's static charges keep 25-character txids, a cob's are 35: the length
says where a charge lives.
"""

from __future__ import annotations

import hashlib
import logging

from pixweb.errors import ConflictError, PspError, PspNotFoundError, PspRejectedError
from pixweb.psp.client import PspClient
from pixweb.psp.schemas import (
    CalendarioSolicitado,
    CobGerada,
    CobSolicitada,
    CobStatus,
    CobValor,
    valor_from_centavos,
)

log = logging.getLogger(__name__)

COB_TXID_LENGTH = 35
STATIC_TXID_LENGTH = 25
_REUSE = "Idempotency-Key already used with a different request"


def cob_txid(merchant_id: int, idempotency_key: str) -> str:
    """The txid of a keyed charge made at the PSP: the same for every retry of the key."""
    seed = f"pixweb-cob\0{merchant_id}\0{idempotency_key}"
    return hashlib.sha256(seed.encode()).hexdigest()[:COB_TXID_LENGTH]


def is_cob(txid: str) -> bool:
    """Whether a charge was created at a PSP (its txid is longer than a static one's)."""
    return len(txid) > STATIC_TXID_LENGTH


def cob_request(
    *, chave: str, amount_cents: int, description: str | None, expires_in: int
) -> CobSolicitada:
    return CobSolicitada(
        calendario=CalendarioSolicitado(expiracao=expires_in),
        valor=CobValor(original=valor_from_centavos(amount_cents)),
        chave=chave,
        solicitacao_pagador=description,
    )


def _same(cob: CobGerada, asked: CobSolicitada) -> bool:
    return (
        cob.status in (CobStatus.ATIVA, CobStatus.CONCLUIDA)
        and cob.valor.original == asked.valor.original
        and cob.chave == asked.chave
        and cob.calendario.expiracao == asked.calendario.expiracao
        and (cob.solicitacao_pagador or None) == asked.solicitacao_pagador
    )


async def create_cob(
    client: PspClient, txid: str, asked: CobSolicitada, *, keyed: bool
) -> CobGerada:
    """Create the charge at the PSP, or take the one a lost answer already created."""
    try:
        cob = await client.put_cob(txid, asked)
    except PspRejectedError as refused:
        if isinstance(refused, PspNotFoundError):
            raise
        try:
            cob = await client.get_cob(txid)
        except PspNotFoundError:
            raise refused from None
        if not _same(cob, asked):
            if keyed:  # the key's txid holds another charge: the key was reused
                raise ConflictError(_REUSE) from None
            raise
        log.info("cob %s already created at the PSP: taken", txid)
    if not cob.pix_copia_e_cola:
        raise PspError(f"the PSP created cob {txid} without a pixCopiaECola", step="cob")
    return cob


async def remove_cob(client: PspClient, txid: str) -> None:
    """`PATCH /cob/{txid}` REMOVIDA_PELO_USUARIO_RECEBEDOR (already removed: done)."""
    try:
        await client.patch_cob(txid)
    except PspRejectedError as refused:
        if isinstance(refused, PspNotFoundError):
            raise
        cob = await client.get_cob(txid)
        if cob.status != CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR:
            raise refused from None
