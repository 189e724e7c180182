"""The pages' Jinja filters: money as people read it, held together on one line."""

from __future__ import annotations

import pytest

from pixweb.web import filters

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("cents", "shown"),
    [(0, "R$ 0,00"), (123456, "R$ 1.234,56"), (100000000, "R$ 1.000.000,00"), (-3000, "-R$ 30,00")],
)
def test_brl_keeps_the_currency_with_its_number(cents: int, shown: str) -> None:
    assert filters.brl(cents) == shown.replace(" ", NBSP)
    assert " " not in filters.brl(cents)  # no break anywhere inside an amount


def test_money_text_binds_each_amount_in_a_sentence() -> None:
    text = "Você recebeu R$ 25,00 de Loja R$ Barato; saldo R$ -1,00"
    assert filters.money_text(text) == (
        f"Você recebeu R${NBSP}25,00 de Loja R$ Barato; saldo R${NBSP}-1,00"
    )


@pytest.mark.parametrize(
    ("reference", "charge"),
    [
        ("payment:0b6f1c9e-6a57-4a49-9d2a-1f0e5b7c3d21", "0b6f1c9e-6a57-4a49-9d2a-1f0e5b7c3d21"),
        (None, None),
        ("transfer:12", None),
        ("payment:../../admin", None),
    ],
)
def test_charge_id_reads_only_charge_references(reference: str | None, charge: str | None) -> None:
    assert filters.charge_id(reference) == charge
