"""Pix the sandbox PSP received: reading one, paging them (`GET /pix`), as `schemas.Pix`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError
from tortoise.expressions import Subquery

from pixweb import validation
from pixweb.models import SandboxDevolucao, SandboxPix
from pixweb.psp.sandbox.problems import SandboxError, invalid, not_found
from pixweb.psp.schemas import (
    ComponentesValor,
    Devolucao,
    DevolucaoHorario,
    DevolucaoNatureza,
    DevolucaoStatus,
    Paginacao,
    ParametrosConsultaPix,
    Pessoa,
    Pix,
    PixConsultados,
    ValorComponente,
    valor_from_centavos,
)

QUERY_INVALID = "PixConsultaInvalida"
QUERY_DETAIL = (
    "Os parâmetros de consulta à lista de pix recebidos não respeitam o schema ou não fazem "
    "sentido semanticamente."
)
_MOMENT = TypeAdapter(AwareDatetime)
_BOOLEANS = {"true": True, "false": False}
_PATTERNS = {
    "txid": re.compile(r"[a-zA-Z0-9]{1,35}"),
    "cpf": re.compile(r"\d{11}"),
    "cnpj": re.compile(r"[0-9A-Z]{14}"),
}


def devolucao_model(row: SandboxDevolucao) -> Devolucao:
    final = row.status != DevolucaoStatus.EM_PROCESSAMENTO
    return Devolucao(
        id=row.devolucao_id,
        rtr_id=row.rtr_id,
        valor=valor_from_centavos(row.amount_cents),
        natureza=DevolucaoNatureza(row.natureza),
        descricao=row.descricao,
        horario=DevolucaoHorario(
            solicitacao=row.requested_at, liquidacao=row.settled_at if final else None
        ),
        status=DevolucaoStatus(row.status),
        motivo=row.motivo if row.status == DevolucaoStatus.NAO_REALIZADO else None,
    )


def pix_model(row: SandboxPix, devolucoes: list[SandboxDevolucao]) -> Pix:
    valor = valor_from_centavos(row.amount_cents)
    return Pix(
        end_to_end_id=row.end_to_end_id,
        txid=row.txid,
        valor=valor,
        horario=row.horario,
        componentes_valor=ComponentesValor(original=ValorComponente(valor=valor)),
        chave=row.chave,
        info_pagador=row.info_pagador,
        pagador=Pessoa(cpf=row.payer_cpf, nome=row.payer_name),
        devolucoes=[devolucao_model(d) for d in sorted(devolucoes, key=lambda d: d.id)],
    )


async def _models(rows: list[SandboxPix]) -> list[Pix]:
    refunds: dict[int, list[SandboxDevolucao]] = {row.id: [] for row in rows}
    if rows:
        for refund in await SandboxDevolucao.filter(pix_id__in=list(refunds)):
            refunds[refund.pix_id].append(refund)
    return [pix_model(row, refunds[row.id]) for row in rows]


async def pix_of_charge(cob_id: int) -> list[Pix]:
    return await _models(await SandboxPix.filter(cob_id=cob_id).order_by("horario", "id"))


async def models_of(pix_ids: list[int]) -> list[Pix]:
    return await _models(await SandboxPix.filter(id__in=pix_ids).order_by("horario", "id"))


async def find_pix(merchant_id: int, e2eid: str) -> SandboxPix:
    row = await SandboxPix.get_or_none(merchant_id=merchant_id, end_to_end_id=e2eid)
    if row is None:
        raise not_found("PixNaoEncontrado", "Pix não encontrado para o e2eid informado.")
    return row


async def get_pix(merchant_id: int, e2eid: str) -> Pix:
    (pix,) = await _models([await find_pix(merchant_id, e2eid)])
    return pix


@dataclass(frozen=True)
class PixQuery:
    """`GET /pix`'s parameters, checked."""

    inicio: datetime
    fim: datetime
    txid: str | None = None
    tx_id_presente: bool | None = None
    devolucao_presente: bool | None = None
    cpf: str | None = None
    cnpj: str | None = None
    pagina: int = 0
    itens: int = 100


def _bad(name: str, razao: str, valor: Any = None) -> SandboxError:
    return invalid(QUERY_INVALID, QUERY_DETAIL, name, razao, valor)


def _moment(args: Mapping[str, str], name: str) -> datetime:
    if name not in args:
        raise _bad(name, f"O parâmetro {name} é obrigatório.")
    try:
        return _MOMENT.validate_python(args[name]).astimezone(UTC)
    except ValidationError:
        raise _bad(name, f"O parâmetro {name} não é um timestamp RFC 3339.", args[name]) from None


def _integer(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise _bad(name, f"O parâmetro {name} deve ser um inteiro de {low} a {high}.", raw)
    return int(raw)


def _flag(args: Mapping[str, str], name: str) -> bool | None:
    raw = args.get(name)
    if raw is None:
        return None
    if raw.lower() not in _BOOLEANS:
        raise _bad(name, f"O parâmetro {name} deve ser true ou false.", raw)
    return _BOOLEANS[raw.lower()]


def parse_query(args: Mapping[str, str]) -> PixQuery:
    """`GET /pix`'s query string; PixConsultaInvalida naming the parameter at fault."""
    inicio, fim = _moment(args, "inicio"), _moment(args, "fim")
    if fim < inicio:
        raise _bad("fim", "O timestamp fim é anterior ao timestamp inicio.", args["fim"])
    if args.get("cpf") and args.get("cnpj"):
        raise _bad("cpf", "Os parâmetros cpf e cnpj não podem ser usados juntos.")
    for name, pattern in _PATTERNS.items():
        if args.get(name) and not pattern.fullmatch(args[name]):
            shown = validation.shown(args[name][:100])
            raise _bad(name, f"O parâmetro {name} deve casar com {pattern.pattern}.", shown)
    return PixQuery(
        inicio=inicio,
        fim=fim,
        txid=args.get("txid") or None,
        tx_id_presente=_flag(args, "txIdPresente"),
        devolucao_presente=_flag(args, "devolucaoPresente"),
        cpf=args.get("cpf") or None,
        cnpj=args.get("cnpj") or None,
        pagina=_integer(args, "paginacao.paginaAtual", 0, 0, 10**9),
        itens=_integer(args, "paginacao.itensPorPagina", 100, 1, 1000),
    )


async def list_pix(merchant_id: int, query: PixQuery) -> PixConsultados:
    """One page of the merchant's Pix between inicio and fim, oldest first."""
    rows = SandboxPix.filter(
        merchant_id=merchant_id, horario__gte=query.inicio, horario__lte=query.fim
    )
    if query.txid is not None:
        rows = rows.filter(txid=query.txid)
    if query.tx_id_presente is not None:
        rows = rows.filter(txid__isnull=not query.tx_id_presente)
    if query.devolucao_presente is not None:
        refunded = Subquery(SandboxDevolucao.filter(pix__merchant_id=merchant_id).values("pix_id"))
        rows = (
            rows.filter(id__in=refunded)
            if query.devolucao_presente
            else rows.exclude(id__in=refunded)
        )
    if query.cnpj is not None:  # the sandbox's payers are people: no CNPJ ever pays
        rows = rows.filter(id=-1)
    elif query.cpf is not None:
        rows = rows.filter(payer_cpf=query.cpf)
    total = await rows.count()
    page = (
        await rows.order_by("horario", "id").offset(query.pagina * query.itens).limit(query.itens)
    )
    return PixConsultados(
        parametros=ParametrosConsultaPix(
            inicio=query.inicio,
            fim=query.fim,
            paginacao=Paginacao(
                pagina_atual=query.pagina,
                itens_por_pagina=query.itens,
                quantidade_de_paginas=math.ceil(total / query.itens),
                quantidade_total_de_itens=total,
            ),
        ),
        pix=await _models(page),
    )
