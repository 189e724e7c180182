from decimal import Decimal

import pytest

from pixweb import money
from pixweb.errors import InvalidAmountError


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        (1, 100),
        (Decimal("0.01"), 1),
        ("100.00", 10000),
        ("100", 10000),
        ("0.5", 50),
        (Decimal("1000000.00"), money.MAX_CENTS),
        (Decimal("1E+2"), 10000),
    ],
)
def test_parse_amount_accepts(value: object, cents: int) -> None:
    assert money.parse_amount(value) == cents


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        True,
        False,
        None,
        1.5,
        "1e3",
        "NaN",
        "Infinity",
        "100,00",
        " 100",
        "1.001",
        "",
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("0.001"),
        Decimal("1000000.01"),
        Decimal("1E+309"),
        Decimal("1E+999999999"),
        [],
        {},
    ],
)
def test_parse_amount_refuses(value: object) -> None:
    with pytest.raises(InvalidAmountError):
        money.parse_amount(value)


@pytest.mark.parametrize(
    ("cents", "api", "people"),
    [
        (0, "0.00", "R$ 0,00"),
        (1, "0.01", "R$ 0,01"),
        (123456, "1234.56", "R$ 1.234,56"),
        (100000000, "1000000.00", "R$ 1.000.000,00"),
        (-3000, "-30.00", "-R$ 30,00"),
    ],
)
def test_formats(cents: int, api: str, people: str) -> None:
    assert money.format_amount(cents) == api
    assert money.format_brl(cents) == people
