"""Identifiers in the BCB's formats and plausible (fake) payers for the sandbox's Pix."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

# The sandbox PSP's own ISPB (no real institution has it), on the refunds it returns.
SANDBOX_ISPB = "99999999"
# Payers' banks: real ISPBs (Banco do Brasil, Itaú, Bradesco, Caixa, Nubank, Inter).
PAYER_ISPBS = ("00000000", "60701190", "60746948", "00360305", "18236120", "00416968")
_ALPHANUMERIC = string.ascii_letters + string.digits
_FIRST = ("Ana", "João", "Maria", "José", "Francisca", "Carlos", "Juliana", "Paulo", "Luíza")
_LAST = ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Ferreira", "Almeida")


def _suffix(length: int = 11) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def _bcb_id(prefix: str, ispb: str, moment: datetime) -> str:
    return f"{prefix}{ispb}{moment.astimezone(UTC):%Y%m%d%H%M}{_suffix()}"


def end_to_end_id(moment: datetime, ispb: str | None = None) -> str:
    """`E` + the payer's bank ISPB + yyyyMMddHHmm (UTC) + 11 alphanumerics: 32 characters."""
    return _bcb_id("E", ispb or secrets.choice(PAYER_ISPBS), moment)


def return_id(moment: datetime) -> str:
    """A refund's rtrId: `D` + the returning PSP's ISPB + yyyyMMddHHmm + 11 alphanumerics."""
    return _bcb_id("D", SANDBOX_ISPB, moment)


def _cpf_digit(digits: list[int]) -> int:
    total = sum(d * w for d, w in zip(digits, range(len(digits) + 1, 1, -1), strict=True))
    rest = total % 11
    return 0 if rest < 2 else 11 - rest


def cpf() -> str:
    """A random CPF with valid check digits (never all digits equal)."""
    while True:
        digits = [secrets.randbelow(10) for _ in range(9)]
        if len(set(digits)) > 1:
            break
    digits.append(_cpf_digit(digits))
    digits.append(_cpf_digit(digits))
    return "".join(map(str, digits))


@dataclass(frozen=True)
class Payer:
    name: str
    cpf: str


def payer() -> Payer:
    """A made-up person paying: a common Brazilian name and a valid CPF."""
    name = f"{secrets.choice(_FIRST)} {secrets.choice(_LAST)} {secrets.choice(_LAST)}"
    return Payer(name=name, cpf=cpf())
