"""Refunds (`devolucao`) at the sandbox PSP, under the BCB's rules.

The refunds of one Pix never add up to more than it (those NAO_REALIZADO aside), none after
90 days, and an id is one refund: the same request again answers it as it stands, another
body under that id is refused. A refund is EM_PROCESSAMENTO until its `settle_at`, then
DEVOLVIDO, or NAO_REALIZADO when its `descricao` asks for it (contains "NAO_REALIZADO").
Whoever moves it first, the worker's timer or a read, moves it once (`settle`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pixweb.models import SandboxDevolucao, SandboxPix
from pixweb.psp.sandbox import ids, received
from pixweb.psp.sandbox.problems import SandboxError, invalid, not_found
from pixweb.psp.schemas import (
    Devolucao,
    DevolucaoSolicitada,
    DevolucaoStatus,
    centavos,
    format_valor,
)
from pixweb.services.clock import utcnow

INVALID = "PixDevolucaoInvalida"
INVALID_DETAIL = (
    "A presente requisição de devolução não respeita o schema ou não faz sentido semanticamente."
)
WINDOW = timedelta(days=90)
REFUSE_MARK = "NAO_REALIZADO"
REFUSED_BECAUSE = "Devolução recusada pelo sandbox, como pedido na descrição."


def _same(row: SandboxDevolucao, asked: DevolucaoSolicitada) -> bool:
    return (
        row.amount_cents == centavos(asked.valor)
        and row.natureza == asked.natureza
        and row.descricao == asked.descricao
    )


def _reused(devolucao_id: str) -> SandboxError:
    return invalid(
        INVALID,
        INVALID_DETAIL,
        "id",
        "A presente requisição de devolução apresenta um id já utilizado por outra requisição "
        "de devolução para o e2eid em questão.",
        devolucao_id,
    )


async def put_devolucao(
    merchant_id: int,
    e2eid: str,
    devolucao_id: str,
    asked: DevolucaoSolicitada,
    *,
    delay_seconds: float,
) -> tuple[SandboxDevolucao, bool]:
    """Ask for a refund (True), or answer the same request again (False)."""
    pix = await received.find_pix(merchant_id, e2eid)
    try:
        async with in_transaction():
            # One refund of a Pix at a time, so the sum rule holds (a no-op on SQLite,
            # whose writes are serialised anyway).
            await SandboxPix.select_for_update().get(id=pix.id)
            existing = await SandboxDevolucao.get_or_none(pix_id=pix.id, devolucao_id=devolucao_id)
            if existing is not None:
                if not _same(existing, asked):
                    raise _reused(devolucao_id)
                return existing, False
            return await _create(pix, devolucao_id, asked, delay_seconds), True
    except IntegrityError:  # the same id asked concurrently: the first one stands
        existing = await SandboxDevolucao.get(pix_id=pix.id, devolucao_id=devolucao_id)
        if not _same(existing, asked):
            raise _reused(devolucao_id) from None
        return existing, False


async def _create(
    pix: SandboxPix, devolucao_id: str, asked: DevolucaoSolicitada, delay_seconds: float
) -> SandboxDevolucao:
    now = utcnow()
    if now - pix.horario > WINDOW:
        raise invalid(
            INVALID,
            INVALID_DETAIL,
            "pix.horario",
            "A devolução viola a janela de 90 dias desde a liquidação do pix.",
            pix.horario.isoformat(),
        )
    cents = centavos(asked.valor)
    refunds = SandboxDevolucao.filter(pix_id=pix.id).exclude(status=DevolucaoStatus.NAO_REALIZADO)
    taken = sum(row.amount_cents for row in await refunds)
    if taken + cents > pix.amount_cents:
        raise invalid(
            INVALID,
            INVALID_DETAIL,
            "devolucao.valor",
            "A presente requisição de devolução, em conjunto com as demais prévias devoluções, "
            "excederia o valor do pix originário.",
            format_valor(asked.valor),
        )
    refused = REFUSE_MARK in (asked.descricao or "").upper()
    return await SandboxDevolucao.create(
        pix_id=pix.id,
        devolucao_id=devolucao_id,
        rtr_id=ids.return_id(now),
        amount_cents=cents,
        natureza=asked.natureza,
        descricao=asked.descricao,
        status=DevolucaoStatus.EM_PROCESSAMENTO,
        final_status=DevolucaoStatus.NAO_REALIZADO if refused else DevolucaoStatus.DEVOLVIDO,
        motivo=REFUSED_BECAUSE if refused else None,
        requested_at=now,
        settle_at=now + timedelta(seconds=delay_seconds),
    )


async def find(merchant_id: int, e2eid: str, devolucao_id: str) -> SandboxDevolucao:
    pix = await received.find_pix(merchant_id, e2eid)
    row = await SandboxDevolucao.get_or_none(pix_id=pix.id, devolucao_id=devolucao_id)
    if row is None:
        raise not_found(
            "PixDevolucaoNaoEncontrada",
            "Devolução não encontrada para o id e o e2eid informados.",
        )
    return row


async def settle(row_id: int, now: datetime | None = None) -> bool:
    """Move a refund whose time has come to its final state; True for the one call that
    did (it notifies the merchant)."""
    now = now or utcnow()
    row = await SandboxDevolucao.get_or_none(id=row_id)
    if row is None or row.status != DevolucaoStatus.EM_PROCESSAMENTO or now < row.settle_at:
        return False
    moved = await SandboxDevolucao.filter(
        id=row_id, status=DevolucaoStatus.EM_PROCESSAMENTO
    ).update(status=row.final_status, settled_at=now)
    return moved == 1


def model(row: SandboxDevolucao) -> Devolucao:
    return received.devolucao_model(row)
