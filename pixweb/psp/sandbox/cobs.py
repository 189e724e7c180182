"""Immediate charges (`cob`) at the sandbox PSP: create, read, remove, as the API Pix does.

A charge gets a location (`<host>/sandbox/psp/qr/<token>`, no scheme) and a dynamic BR Code
carrying it in field 26-25, built with `pixweb.pix.brcode` from the merchant's name and city.

`PUT /cob/{txid}` with a txid already in use: the same request again is answered with the
charge as it stands (a client retrying after a lost answer must not fail, and the client
retries PUTs), any other body is refused "txid em uso". The specification lets a PSP revise
an ATIVA charge through PUT, but the PSPs merchants meet refuse a reused txid, and pixweb
never revises: refusing catches a txid reused by mistake.
"""

from __future__ import annotations

import secrets

from tortoise.exceptions import IntegrityError

from pixweb.models import Merchant, SandboxCob
from pixweb.pix import brcode
from pixweb.psp.sandbox import received
from pixweb.psp.sandbox.problems import SandboxError, invalid, not_found
from pixweb.psp.schemas import (
    Calendario,
    CalendarioSolicitado,
    CobCompleta,
    CobGerada,
    CobSolicitada,
    CobStatus,
    CobValor,
    InfoAdicional,
    Loc,
    Pessoa,
    centavos,
    valor_from_centavos,
)
from pixweb.services.clock import utcnow

INVALID = "CobOperacaoInvalida"
INVALID_DETAIL = (
    "A requisição que busca alterar ou criar uma cobrança para pagamento imediato não respeita "
    "o schema ou está semanticamente errada."
)
TOKEN_CHARS = 32


def not_yours(field: str, chave: str, name: str, detail: str) -> SandboxError:
    return invalid(
        name, detail, field, "A chave não pertence a este usuário recebedor.", valor=chave
    )


def _location(base: str) -> str:
    """A fresh location on `base` (host and path, no scheme), within the BR Code's 77."""
    room = min(TOKEN_CHARS, brcode.URL_MAX - len(base) - 1)
    if room < 12:
        raise RuntimeError(f"the sandbox's address {base!r} is too long for a BR Code location")
    return f"{base}/{secrets.token_hex(16)[:room]}"


def solicitada(row: SandboxCob) -> CobSolicitada:
    """What was asked when the charge was created (for the replay of the same PUT)."""
    return CobSolicitada(
        calendario=CalendarioSolicitado(expiracao=row.expiracao),
        devedor=Pessoa.model_validate(row.devedor) if row.devedor else None,
        valor=CobValor(original=valor_from_centavos(row.amount_cents)),
        chave=row.chave,
        solicitacao_pagador=row.solicitacao_pagador,
        info_adicionais=[InfoAdicional.model_validate(i) for i in row.info_adicionais]
        if row.info_adicionais is not None
        else None,
    )


def gerada(row: SandboxCob) -> CobGerada:
    asked = solicitada(row)
    return CobGerada(
        txid=row.txid,
        revisao=row.revisao,
        calendario=Calendario(criacao=row.criacao, expiracao=row.expiracao),
        status=CobStatus(row.status),
        valor=asked.valor,
        chave=row.chave,
        loc=Loc(id=row.id, location=row.location, tipo_cob="cob", criacao=row.criacao),
        location=row.location,
        pix_copia_e_cola=row.pix_copia_e_cola,
        devedor=asked.devedor,
        solicitacao_pagador=row.solicitacao_pagador,
        info_adicionais=asked.info_adicionais,
    )


async def put_cob(
    merchant: Merchant, txid: str, asked: CobSolicitada, *, location_base: str
) -> tuple[CobGerada, bool]:
    """Create the charge (True), or answer the same request again (False)."""
    if asked.chave != merchant.pix_key:
        raise not_yours("cob.chave", asked.chave, INVALID, INVALID_DETAIL)
    cents = centavos(asked.valor.original)
    if cents == 0:
        raise invalid(INVALID, INVALID_DETAIL, "cob.valor.original", "O valor é zero.", "0.00")
    existing = await SandboxCob.get_or_none(merchant_id=merchant.id, txid=txid)
    if existing is None:
        location = _location(location_base)
        code = brcode.build(
            url=location, name=merchant.name, city=merchant.city, amount_cents=cents
        )
        try:
            row = await SandboxCob.create(
                merchant_id=merchant.id,
                txid=txid,
                status=CobStatus.ATIVA,
                amount_cents=cents,
                chave=asked.chave,
                expiracao=asked.calendario.expiracao,
                criacao=utcnow(),
                solicitacao_pagador=asked.solicitacao_pagador,
                devedor=asked.devedor.model_dump(exclude_none=True) if asked.devedor else None,
                info_adicionais=[i.model_dump() for i in asked.info_adicionais]
                if asked.info_adicionais is not None
                else None,
                location=location,
                pix_copia_e_cola=code,
            )
            return gerada(row), True
        except IntegrityError:  # the same txid created meanwhile
            existing = await SandboxCob.get(merchant_id=merchant.id, txid=txid)
    if solicitada(existing) != asked:
        raise invalid(
            INVALID,
            INVALID_DETAIL,
            "txid",
            "O txid já está em uso por outra cobrança deste usuário recebedor (txid em uso).",
            txid,
        )
    return gerada(existing), False


async def _charge(merchant_id: int, txid: str) -> SandboxCob:
    row = await SandboxCob.get_or_none(merchant_id=merchant_id, txid=txid)
    if row is None:
        raise not_found("CobNaoEncontrado", "Cobrança não encontrada para o txid informado.")
    return row


async def get_cob(merchant_id: int, txid: str) -> CobCompleta:
    """The charge and every Pix that paid it."""
    row = await _charge(merchant_id, txid)
    paid = await received.pix_of_charge(row.id)
    return CobCompleta(**dict(gerada(row)), pix=paid)


async def remove_cob(merchant_id: int, txid: str) -> CobGerada:
    """REMOVIDA_PELO_USUARIO_RECEBEDOR, revisao + 1: only from ATIVA."""
    row = await _charge(merchant_id, txid)
    changed = await SandboxCob.filter(id=row.id, status=CobStatus.ATIVA).update(
        status=CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR, revisao=row.revisao + 1
    )
    if not changed:
        raise invalid(
            INVALID,
            "Operação inválida.",
            "cob.status",
            "A cobrança não está ATIVA, e a presente requisição busca alterá-la.",
            (await SandboxCob.get(id=row.id)).status,
        )
    return gerada(await SandboxCob.get(id=row.id))
