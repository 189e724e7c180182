"""Form input as people type it in Brazil, and domain errors told in Portuguese."""

from __future__ import annotations

from pixweb import money
from pixweb.errors import (
    ConflictError,
    ControlCharacterError,
    InvalidAmountError,
    InvalidInputError,
    NotFoundError,
    PixwebError,
    UnprocessableError,
)

FIELD_MESSAGES = {
    "name": "Informe um nome com letras ou números (até 100 caracteres).",
    "city": "Informe a cidade (até 60 caracteres).",
    "email": "Informe um e-mail válido.",
    "password": "A senha deve ter de 8 a 256 caracteres.",
    "pix_key": "Chave Pix inválida: use CPF, CNPJ, e-mail, telefone com +55 ou chave aleatória.",
    "value": "Informe um valor maior que zero, como 10,50 ou 1.234,56 (até R$ 1.000.000,00).",
    "to_email": "Não há conta com este e-mail.",  # a malformed one is not an account either
    "brcode": "Código Pix inválido.",
    "expires_in": "Escolha uma validade entre 1 minuto e 7 dias.",
}

CONTROL_CHARACTERS = "Remova os caracteres invisíveis ou de controle deste campo."

CODE_MESSAGES = {
    "insufficient_funds": "Saldo insuficiente.",
    "conflict": "Operação não permitida no estado atual.",
}
CHARGE_STATES = {  # a charge that can no longer be paid, by the status a ConflictError names
    "paid": "Esta cobrança já foi paga.",
    "expired": "Esta cobrança expirou.",
    "cancelled": "Esta cobrança foi cancelada.",
    "partially_refunded": "Esta cobrança já foi paga.",
    "refunded": "Esta cobrança já foi paga.",
}


def parse_brl(text: str) -> int:
    """Read "1.234,56", "1234,5", "10.50" or "R$ 10" as centavos (money.parse_typed_amount)."""
    try:
        return money.parse_typed_amount(text)
    except InvalidAmountError as exc:
        raise InvalidAmountError(exc.detail, fields={"value": exc.detail}) from exc


def messages_for(error: PixwebError, *, available_cents: int | None = None) -> dict[str, str]:
    """Portuguese messages for a domain error: per field, and "" for the form as a whole.

    A refused debit is one message for the form, with the balance `available_cents` when
    given: the amount typed was well formed, so its field has nothing to say.
    """
    if error.code == "insufficient_funds":
        if available_cents is None:
            return {"": CODE_MESSAGES[error.code]}
        return {"": f"Saldo insuficiente: disponível {money.format_brl(available_cents)}."}
    fields = error.fields or {}
    if isinstance(error, ControlCharacterError):
        return dict.fromkeys(fields, CONTROL_CHARACTERS)
    messages = {name: FIELD_MESSAGES.get(name, "Valor inválido.") for name in fields}
    if isinstance(error, ConflictError) and "e-mail" in error.detail:
        messages["email"] = "Já existe uma conta com este e-mail."
    elif isinstance(error, NotFoundError) and "to_email" in fields:
        messages["to_email"] = FIELD_MESSAGES["to_email"]
    elif isinstance(error, UnprocessableError) and "to_email" in fields:
        messages["to_email"] = "Não é possível transferir para a sua própria conta."
    elif isinstance(error, ConflictError) and _charge_state(error.detail) in CHARGE_STATES:
        messages[""] = CHARGE_STATES[_charge_state(error.detail)]
    elif error.code in CODE_MESSAGES:
        messages[""] = CODE_MESSAGES[error.code]
    elif isinstance(error, UnprocessableError) and "brcode" in fields:
        messages["brcode"] = _brcode_message(error.detail)
    elif isinstance(error, UnprocessableError | ConflictError) and not messages:
        messages[""] = CODE_MESSAGES["conflict"]
    if not messages and isinstance(error, InvalidInputError):
        messages[""] = "Confira os dados do formulário."
    return messages


def field_messages(error: PixwebError, texts: dict[str, str], failed: str) -> dict[str, str]:
    """A settings form's fields at fault, in Portuguese: each field's text in `texts` (else
    "Valor inválido."), or the control-character message when that is the fault; `failed`
    followed by the error's detail when it names no field."""
    fields = error.fields or {}
    if isinstance(error, ControlCharacterError):
        messages = dict.fromkeys(fields, CONTROL_CHARACTERS)
    else:
        messages = {name: texts.get(name, "Valor inválido.") for name in fields}
    return messages or {"": failed + error.detail}


def _charge_state(detail: str) -> str:
    """The status named by settlement's "payment is <status> and cannot be ..." conflicts."""
    words = detail.split()
    return words[2].rstrip(",") if words[:2] == ["payment", "is"] and len(words) > 2 else ""


def _brcode_message(detail: str) -> str:
    if detail.startswith("external"):
        return "Só é possível pagar cobranças do pixweb por aqui."
    if "own" in detail:
        return "Esta cobrança é sua."
    return "Código Pix inválido (CRC ou estrutura). Confira no inspetor de códigos."
