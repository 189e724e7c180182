"""The sandbox's errors as the API Pix writes them: RFC 7807 problems (`Problema`) with the
specification's type names, titles and `violacoes`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from pixweb.psp.schemas import Problema, Violacao

TYPE_BASE = "https://pix.bcb.gov.br/api/v2/error/"
TITLES = {
    "NaoAutorizado": "Não Autorizado",
    "AcessoNegado": "Acesso Negado",
    "NaoEncontrado": "Não Encontrado",
    "CobNaoEncontrado": "Cobrança não encontrada.",
    "CobOperacaoInvalida": "Cobrança inválida.",
    "CobConsultaInvalida": "Consulta inválida.",
    "PixNaoEncontrado": "Pix não encontrado.",
    "PixConsultaInvalida": "Consulta inválida.",
    "PixDevolucaoNaoEncontrada": "Devolução não encontrada.",
    "PixDevolucaoInvalida": "Devolução inválida.",
    "WebhookOperacaoInvalida": "Webhook inválido.",
    "WebhookNaoEncontrado": "Webhook não encontrado.",
    "SandboxOperacaoInvalida": "Simulação inválida.",
}
_NOT_FOUND = "Entidade não encontrada."


class SandboxError(Exception):
    """An answer the sandbox refuses with: `status`, the API Pix's type `name`, a detail."""

    def __init__(
        self,
        status: int,
        name: str,
        detail: str,
        violacoes: list[Violacao] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.name, self.detail = status, name, detail
        self.violacoes = violacoes or []

    def problem(self) -> Problema:
        return Problema(
            type=TYPE_BASE + self.name,
            title=TITLES.get(self.name, self.name),
            status=self.status,
            detail=self.detail,
            violacoes=self.violacoes,
        )

    def body(self) -> bytes:
        """The problem as `application/problem+json` (violacoes always present, maybe [])."""
        return self.problem().model_dump_json(by_alias=True, exclude_none=True).encode()


def not_found(name: str, detail: str = _NOT_FOUND) -> SandboxError:
    return SandboxError(404, name, detail)


def invalid(
    name: str, detail: str, propriedade: str, razao: str, valor: Any = None
) -> SandboxError:
    """A 400 naming one property at fault."""
    shown = None if valor is None else str(valor)
    violacao = Violacao(razao=razao, propriedade=propriedade, valor=shown)
    return SandboxError(400, name, detail, [violacao])


def _scalar(value: Any) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)[:200]
    return None


def from_validation(error: ValidationError, prefix: str) -> list[Violacao]:
    """Each pydantic error as a violation: `cob.valor.original` not respecting the schema."""
    found = []
    for item in error.errors(include_url=False):
        path = ".".join(to_camel(p) if isinstance(p, str) else str(p) for p in item["loc"])
        where = f"{prefix}.{path}" if path else prefix
        razao = f"O campo {where} não respeita o schema: {item['msg']}."
        if item["type"] == "missing":
            razao = f"O campo {where} é obrigatório."
        elif item["type"].startswith("json"):
            razao = f"O corpo não é um objeto JSON válido: {item['msg']}."
        found.append(Violacao(razao=razao, propriedade=where, valor=_scalar(item.get("input"))))
    return found


def schema_problem(name: str, detail: str, error: ValidationError, prefix: str) -> SandboxError:
    return SandboxError(400, name, detail, from_validation(error, prefix))
