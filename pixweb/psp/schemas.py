"""Typed models of the subset of the Banco Central's API Pix (v2.9.0) that pixweb uses.

Field names follow the specification (camelCase on the wire, snake_case in Python through
aliases): `CobSolicitada(solicitacao_pagador=...)` is sent as `solicitacaoPagador`. Dump
request bodies with `to_json(model)`.

Strict where money and identifiers are concerned, tolerant elsewhere (what real PSPs send):
- amounts are `Decimal`, read only from strings matching `\\d{1,10}\\.\\d{2}` (never a JSON
  number, never a float) and written back as such; `centavos()` / `valor_from_centavos()`
  convert to and from pixweb's integer centavos;
- unknown fields are ignored; free text read from the PSP has no length limit (request
  models keep the specification's limits);
- `Pix.devolucoes` is an array or a lone object (the specification's own webhook example);
- an `endToEndId` is 32 alphanumerics in the specification, 32 to 35 here: its examples carry
  34-character ones;
- a `txid` sent as "" means no txid;
- `Pix.pagador` (payer name and document) is not in the specification: several PSPs add it.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

_VALOR = re.compile(r"\d{1,10}\.\d{2}")
_LIMIT = Decimal(10) ** 10
_CENT = Decimal("0.01")


def _parse_valor(value: object) -> Decimal:
    if isinstance(value, str):
        if not _VALOR.fullmatch(value):
            raise ValueError('must be a decimal string such as "100.00" (\\d{1,10}\\.\\d{2})')
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():  # built in Python, not read
        if value != value.quantize(_CENT) or not 0 <= value < _LIMIT:
            raise ValueError("must be between 0.00 and 9999999999.99, two decimals at most")
        return value.quantize(_CENT)
    raise ValueError('must be a decimal string such as "100.00", never a number')


def format_valor(value: Decimal) -> str:
    """A `Decimal` amount as the API Pix writes it: "100.00"."""
    return f"{value.quantize(_CENT):f}"


def valor_from_centavos(cents: int) -> Decimal:
    """Integer centavos as an API Pix amount: 10050 → Decimal("100.50")."""
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
        raise ValueError("centavos must be a non-negative integer")
    return (Decimal(cents) / 100).quantize(_CENT)


def centavos(valor: Decimal) -> int:
    """An API Pix amount as integer centavos: Decimal("100.50") → 10050."""
    return int(_parse_valor(valor) * 100)


Valor = Annotated[
    Decimal,
    BeforeValidator(_parse_valor),
    PlainSerializer(format_valor, return_type=str, when_used="json"),
]
TxId = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{26,35}$")]
EndToEndId = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{32,35}$")]
DevolucaoId = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{1,35}$")]


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


def _as_text(value: object) -> object:
    return value if value is None or isinstance(value, str) else str(value)


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def to_json(model: BaseModel) -> bytes:
    """A request body: the specification's field names, absent fields left out."""
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


class Pessoa(ApiModel):
    """`devedor` of a charge, or the `pagador` some PSPs add to a Pix: CPF or CNPJ, and name."""

    cpf: Annotated[str, StringConstraints(pattern=r"^\d{11}$")] | None = None
    cnpj: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{14}$")] | None = None
    nome: str | None = None

    @model_validator(mode="after")
    def _one_document(self) -> Pessoa:
        if self.cpf and self.cnpj:
            raise ValueError("cpf and cnpj cannot both be given")
        return self


class InfoAdicional(ApiModel):
    nome: Annotated[str, StringConstraints(max_length=50)]
    valor: Annotated[str, StringConstraints(max_length=200)]


class CobValor(ApiModel):
    original: Valor
    modalidade_alteracao: Annotated[int, Field(ge=0, le=1)] | None = None


class CalendarioSolicitado(ApiModel):
    expiracao: Annotated[int, Field(ge=1, le=2**31 - 1)] = 86400


class CobSolicitada(ApiModel):
    """Body of `PUT /cob/{txid}`."""

    calendario: CalendarioSolicitado
    devedor: Pessoa | None = None
    valor: CobValor
    chave: Annotated[str, StringConstraints(min_length=1, max_length=77)]
    solicitacao_pagador: Annotated[str, StringConstraints(max_length=140)] | None = None
    info_adicionais: Annotated[list[InfoAdicional], Field(max_length=50)] | None = None


class CobStatus(StrEnum):
    ATIVA = "ATIVA"
    CONCLUIDA = "CONCLUIDA"
    REMOVIDA_PELO_USUARIO_RECEBEDOR = "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    REMOVIDA_PELO_PSP = "REMOVIDA_PELO_PSP"


class CobPayloadPatch(ApiModel):
    """Body of `PATCH /cob/{txid}`: the only removal a receiver can make."""

    status: Literal[CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR] = (
        CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR
    )


class Calendario(ApiModel):
    criacao: AwareDatetime
    expiracao: int = 86400


class Loc(ApiModel):
    id: int
    location: str | None = None
    tipo_cob: str | None = None
    criacao: AwareDatetime | None = None


class CobGerada(ApiModel):
    """Answer of `PUT /cob/{txid}` and `PATCH /cob/{txid}`."""

    txid: TxId
    revisao: int
    calendario: Calendario
    status: CobStatus
    valor: CobValor
    chave: str
    loc: Loc | None = None
    location: str | None = None
    pix_copia_e_cola: str | None = None
    devedor: Pessoa | None = None
    solicitacao_pagador: str | None = None
    info_adicionais: list[InfoAdicional] | None = None


class ValorComponente(ApiModel):
    valor: Valor


class ValorRetirada(ValorComponente):
    modalidade_agente: str | None = None
    prestador_de_servico_de_saque: str | None = None


class ComponentesValor(ApiModel):
    original: ValorComponente | None = None
    saque: ValorRetirada | None = None
    troco: ValorRetirada | None = None
    juros: ValorComponente | None = None
    multa: ValorComponente | None = None
    abatimento: ValorComponente | None = None
    desconto: ValorComponente | None = None


class DevolucaoStatus(StrEnum):
    EM_PROCESSAMENTO = "EM_PROCESSAMENTO"
    DEVOLVIDO = "DEVOLVIDO"
    NAO_REALIZADO = "NAO_REALIZADO"


class DevolucaoNatureza(StrEnum):
    ORIGINAL = "ORIGINAL"
    RETIRADA = "RETIRADA"
    MED_OPERACIONAL = "MED_OPERACIONAL"
    MED_FRAUDE = "MED_FRAUDE"
    MED_PIX_AUTOMATICO = "MED_PIX_AUTOMATICO"


class DevolucaoSolicitada(ApiModel):
    """Body of `PUT /pix/{e2eid}/devolucao/{id}`."""

    valor: Valor
    natureza: Literal[DevolucaoNatureza.ORIGINAL, DevolucaoNatureza.RETIRADA] = (
        DevolucaoNatureza.ORIGINAL
    )
    descricao: Annotated[str, StringConstraints(max_length=140)] | None = None

    @field_validator("valor")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be greater than 0.00")
        return value


class DevolucaoHorario(ApiModel):
    solicitacao: AwareDatetime | None = None
    liquidacao: AwareDatetime | None = None


class Devolucao(ApiModel):
    """A refund of a received Pix, as the PSP reports it."""

    id: DevolucaoId
    rtr_id: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{32}$")]
    valor: Valor
    horario: DevolucaoHorario = Field(default_factory=DevolucaoHorario)
    status: DevolucaoStatus
    natureza: DevolucaoNatureza | None = None
    descricao: str | None = None
    motivo: str | None = None


class Pix(ApiModel):
    """A received Pix (`GET /pix/{e2eid}`, `GET /pix`, webhooks)."""

    end_to_end_id: EndToEndId
    txid: Annotated[
        Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{1,35}$")] | None,
        BeforeValidator(_empty_is_none),
    ] = None
    valor: Valor
    horario: AwareDatetime
    componentes_valor: ComponentesValor | None = None
    chave: str | None = None
    info_pagador: str | None = None
    pagador: Pessoa | None = None
    devolucoes: list[Devolucao] = []

    @field_validator("devolucoes", mode="before")
    @classmethod
    def _object_or_array(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, dict) else value


class CobCompleta(CobGerada):
    """Answer of `GET /cob/{txid}`: the charge and the Pix that paid it."""

    pix: list[Pix] = []


class Paginacao(ApiModel):
    pagina_atual: Annotated[int, Field(ge=0)]
    itens_por_pagina: Annotated[int, Field(ge=1)]
    quantidade_de_paginas: Annotated[int, Field(ge=0)]
    quantidade_total_de_itens: Annotated[int, Field(ge=0)]


class ParametrosConsultaPix(ApiModel):
    inicio: AwareDatetime
    fim: AwareDatetime
    paginacao: Paginacao


class PixConsultados(ApiModel):
    """Answer of `GET /pix`: one page of received Pix."""

    parametros: ParametrosConsultaPix
    pix: list[Pix] = []


class WebhookPayload(ApiModel):
    """What a PSP POSTs to `{webhookUrl}/pix`: one or more Pix."""

    pix: list[Pix]


class WebhookSolicitado(ApiModel):
    """Body of `PUT /webhook/{chave}`."""

    webhook_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class WebhookCompleto(ApiModel):
    """Answer of `GET /webhook/{chave}`."""

    webhook_url: str
    chave: str | None = None
    criacao: AwareDatetime | None = None


class TokenResponse(BaseModel):
    """The OAuth2 token endpoint's answer (RFC 6749 §5.1, snake_case there)."""

    model_config = ConfigDict(extra="ignore")

    access_token: Annotated[str, StringConstraints(min_length=1)]
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None


class Violacao(ApiModel):
    razao: str | None = None
    propriedade: str | None = None
    valor: Annotated[str | None, BeforeValidator(_as_text)] = None


class Problema(ApiModel):
    """An RFC 7807 problem (`application/problem+json`), as the API Pix defines it."""

    type: str = "about:blank"
    title: str = ""
    status: int | None = None
    detail: str | None = None
    correlation_id: str | None = None
    violacoes: list[Violacao] = []
