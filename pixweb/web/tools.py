"""BR Code inspector: paste a Pix copy-paste code, see every field and problem in Portuguese."""

from __future__ import annotations

from quart import Blueprint, render_template, request
from quart_schema import hide

from pixweb.pix import brcode

blueprint = Blueprint("web_tools", __name__)

MAX_CODE = 2048  # four times the standard's limit: longer input is not worth decoding

FIELD_NAMES = {
    "00": "Indicador de formato",
    "01": "Ponto de iniciação (11 reutilizável, 12 uso único)",
    "26": "Conta do recebedor (Pix)",
    "26.00": "Identificador do arranjo (GUI)",
    "26.01": "Chave Pix",
    "26.02": "Descrição",
    "26.25": "URL do payload (código dinâmico)",
    "52": "Categoria do comerciante (MCC)",
    "53": "Moeda",
    "54": "Valor",
    "58": "País",
    "59": "Nome do recebedor",
    "60": "Cidade",
    "61": "CEP",
    "62": "Dados adicionais",
    "62.05": "Identificador da transação (txid)",
    "63": "CRC16",
    "80": "Pix Automático",
}

MESSAGES = {
    "too_long": "O código tem mais de 512 caracteres, o máximo do padrão.",
    "tlv_malformed": "A estrutura do código está quebrada (ID, tamanho e valor não batem).",
    "crc_missing": "Falta o CRC no final do código (6304 seguido de 4 dígitos).",
    "crc_mismatch": "O CRC não confere: o código foi alterado ou copiado pela metade.",
    "crc_lowercase": "O CRC está em letras minúsculas; alguns bancos só aceitam maiúsculas.",
    "format_indicator": "O código não começa com o indicador de formato 000201.",
    "missing_field": "Falta um campo obrigatório.",
    "gui_invalid": "Não há conta Pix (br.gov.bcb.pix) no código.",
    "key_and_url": "O código traz chave e URL ao mesmo tempo; deve ter só uma delas.",
    "no_key_or_url": "O código não traz chave Pix nem URL.",
    "currency_invalid": "A moeda não é o real (986).",
    "country_invalid": "O país não é BR.",
    "amount_invalid": "O valor não é um número positivo válido.",
    "amount_not_canonical": (
        "O valor não tem duas casas decimais (ex.: 198 em vez de 198.00): "
        "já houve banco que debitou R$ 1,98 por um código assim."
    ),
    "name_too_long": "O nome do recebedor passa de 25 caracteres.",
    "city_too_long": "A cidade passa de 15 caracteres.",
    "description_too_long": "A descrição passa de 72 caracteres.",
    "poi_invalid": "O ponto de iniciação deve ser 11 ou 12.",
    "txid_too_long": "O txid passa de 25 caracteres.",
    "txid_invalid_chars": "O txid tem caracteres fora de A-Z, a-z e 0-9.",
    "duplicate_field": "Um campo aparece mais de uma vez.",
    "field_empty": "Um campo está vazio.",
    "non_ascii": "Há acentos ou caracteres especiais; muitos bancos recusam o código.",
    "key_unrecognized": (
        "A chave Pix não tem formato de CPF, CNPJ, e-mail, telefone ou chave aleatória."
    ),
    "postal_code_invalid": "O CEP deve ter 8 dígitos.",
    "url_scheme": "A URL não deve começar com https://.",
}


def _explain(issue: brcode.Issue) -> dict[str, str]:
    return {
        "code": issue.code,
        "field": issue.field or "",
        "field_name": FIELD_NAMES.get(issue.field or "", issue.field or ""),
        "message": MESSAGES.get(issue.code, issue.message),
    }


@blueprint.get("/tools/brcode")
@hide
async def inspector_page() -> str:
    """The inspector page; with ?code= it shows that code's report at once."""
    return await render_template("pages/inspector.html", **_report(request.args.get("code", "")))


@blueprint.get("/tools/brcode/report")
@hide
async def inspector_report() -> str:
    """The report partial that HTMX swaps in as the code is typed or pasted."""
    return await render_template(
        "partials/brcode_report.html", **_report(request.args.get("code", ""))
    )


def _report(code: str) -> dict[str, object]:
    code = code.strip()
    if not code:
        return {"code": "", "decoded": None}
    if len(code) > MAX_CODE:
        return {"code": code[:MAX_CODE], "decoded": None, "too_long": True}
    decoded = brcode.decode(code)
    rows = [(path, FIELD_NAMES.get(path, path), value) for path, value in _flatten(decoded.fields)]
    return {
        "code": code,
        "decoded": decoded,
        "rows": rows,
        "errors": [_explain(i) for i in decoded.errors],
        "warnings": [_explain(i) for i in decoded.warnings],
    }


def _flatten(fields: dict[str, str | dict[str, str]]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for tag, value in fields.items():
        if isinstance(value, dict):
            rows.extend((f"{tag}.{sub}", text) for sub, text in value.items())
        else:
            rows.append((tag, value))
    return rows
