"""What payers (and PSPs) do to a merchant, played at the sandbox PSP.

`pay_cob(..., scenario)` pays a charge: exactly; twice (two Pix, two e2eids, one txid);
another amount; after it expired (the charge's clock is moved back first); without the
webhook (only `GET /pix` will tell); or with the webhook delivered twice. `pay_key` pays the
merchant's key with no txid (never notified by webhook, as the specification says).

Each Pix is recorded with a BCB-format e2eid and a made-up payer; its webhook is handed to
the worker after the transaction commits, so the caller's answer never waits for it. The
app's own simulate route calls these with its merchant and the charge's txid.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from tortoise.transactions import in_transaction

from pixweb.models import Merchant, SandboxCob, SandboxPix
from pixweb.psp.sandbox import ids, received
from pixweb.psp.sandbox.cobs import not_yours
from pixweb.psp.sandbox.problems import invalid, not_found
from pixweb.psp.sandbox.worker import SandboxWorker
from pixweb.psp.schemas import CobStatus, Pix
from pixweb.services.clock import utcnow

INVALID = "SandboxOperacaoInvalida"
INVALID_DETAIL = "A simulação pedida não faz sentido para esta cobrança."
LATE_BY = timedelta(minutes=1)  # how far past its expiry a late payment arrives


class Scenario(StrEnum):
    EXACT = "exact"
    TWICE = "twice"
    OTHER_AMOUNT = "other_amount"
    LATE = "late"
    NO_WEBHOOK = "no_webhook"
    WEBHOOK_TWICE = "webhook_twice"


def _amounts(scenario: Scenario, charged: int, value_cents: int | None) -> list[int]:
    if value_cents is not None and value_cents <= 0:
        raise invalid(INVALID, INVALID_DETAIL, "valor", "O valor deve ser positivo.", value_cents)
    if scenario is Scenario.OTHER_AMOUNT:
        other = value_cents if value_cents is not None else charged + 1000
        if other == charged:
            raise invalid(
                INVALID, INVALID_DETAIL, "valor", "O valor deve diferir do da cobrança.", other
            )
        return [other]
    paid = value_cents if value_cents is not None else charged
    return [paid, paid] if scenario is Scenario.TWICE else [paid]


async def _record(merchant_id: int, chave: str, cents: int, cob: SandboxCob | None) -> SandboxPix:
    now, payer = utcnow(), ids.payer()
    return await SandboxPix.create(
        merchant_id=merchant_id,
        cob_id=None if cob is None else cob.id,
        end_to_end_id=ids.end_to_end_id(now),
        txid=None if cob is None else cob.txid,
        chave=chave,
        amount_cents=cents,
        horario=now,
        payer_name=payer.name,
        payer_cpf=payer.cpf,
        info_pagador=None if cob is None else cob.solicitacao_pagador,
    )


async def pay_cob(
    merchant_id: int,
    txid: str,
    scenario: Scenario = Scenario.EXACT,
    *,
    value_cents: int | None = None,
    worker: SandboxWorker,
) -> list[Pix]:
    """Pay the merchant's charge `txid` as `scenario` says; the Pix made, oldest first.
    `value_cents` overrides the amount paid (for other_amount: a default R$ 10,00 more)."""
    cob = await SandboxCob.get_or_none(merchant_id=merchant_id, txid=txid)
    if cob is None:
        raise not_found("CobNaoEncontrado", "Cobrança não encontrada para o txid informado.")
    amounts = _amounts(scenario, cob.amount_cents, value_cents)
    async with in_transaction():
        if scenario is Scenario.LATE:
            criacao = utcnow() - timedelta(seconds=cob.expiracao) - LATE_BY
            await SandboxCob.filter(id=cob.id).update(criacao=criacao)
        made = [await _record(merchant_id, cob.chave, cents, cob) for cents in amounts]
        await SandboxCob.filter(id=cob.id, status=CobStatus.ATIVA).update(
            status=CobStatus.CONCLUIDA
        )
    if scenario is not Scenario.NO_WEBHOOK:
        times = 2 if scenario is Scenario.WEBHOOK_TWICE else 1
        for pix in made:  # separate payments, separate notifications
            worker.notify(merchant_id, cob.chave, [pix.id], times=times)
    return await received.models_of([pix.id for pix in made])


async def pay_key(merchant_id: int, chave: str, value_cents: int) -> Pix:
    """A Pix to the merchant's key without txid: recorded, never notified."""
    merchant = await Merchant.get_or_none(id=merchant_id)
    if merchant is None or chave != merchant.pix_key:
        raise not_yours("chave", chave, INVALID, INVALID_DETAIL)
    if value_cents <= 0:
        raise invalid(INVALID, INVALID_DETAIL, "valor", "O valor deve ser positivo.", value_cents)
    pix = await _record(merchant_id, chave, value_cents, None)
    (model,) = await received.models_of([pix.id])
    return model
