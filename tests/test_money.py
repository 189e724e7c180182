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


@pytest.mark.parametrize(
    ("typed", "cents"),
    [
        ("1.234,56", 123456),  # as Brazilians write it
        ("1234,56", 123456),
        ("10,50", 1050),
        ("10,5", 1050),
        ("10.50", 1050),  # a dot before one or two digits is decimal
        ("10.5", 1050),
        ("1.234", 123400),  # before three digits it groups thousands
        ("1.000.000,00", money.MAX_CENTS),
        ("1,234.56", 123456),  # thousands by comma only when a dot decimal follows
        ("R$ 10", 1000),
        ("r$10,00", 1000),
        ("R$\u00a07,00", 700),  # as the pages print it, pasted back
        ("  0,01 ", 1),
    ],
)
def test_parse_typed_amount_reads_both_separators(typed: str, cents: int) -> None:
    assert money.parse_typed_amount(typed) == cents


@pytest.mark.parametrize(
    "typed",
    [
        "1,234",  # a decimal comma before three digits, or thousands? not guessed
        "1.234,567",
        "12,3456",
        "1.23,45",  # thousands groups have three digits
        "12.34.56",
        "1.234.56",  # one character cannot both group and separate decimals
        "1,234,56",
        "1,5.00",
        "10,",
        ",50",
        "1..0",
        "1 234,56",
        "-1",
        "1e3",
        "١٢",  # digits of other scripts
        "R$",
        "",
        "abc",
        "0,00",
        "1.000.000,01",
    ],
)
def test_parse_typed_amount_refuses(typed: str) -> None:
    with pytest.raises(InvalidAmountError):
        money.parse_typed_amount(typed)


@pytest.mark.parametrize("typed", ["25,90", "1.234,56", "R$ 10", "10,5"])
def test_the_api_parser_stays_strict(typed: str) -> None:
    with pytest.raises(InvalidAmountError):
        money.parse_amount(typed)
