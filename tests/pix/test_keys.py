"""Pix key detection and validation (DICT formats)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixweb.errors import InvalidPixKeyError
from pixweb.pix.keys import KeyType, detect, is_valid_cnpj, is_valid_cpf, normalize


@pytest.mark.parametrize(
    ("key", "kind", "canonical"),
    [
        ("12345678909", KeyType.CPF, "12345678909"),
        ("123.456.789-09", KeyType.CPF, "12345678909"),
        (" 529.982.247-25 ", KeyType.CPF, "52998224725"),
        ("11222333000181", KeyType.CNPJ, "11222333000181"),
        ("12.345.678/0001-95", KeyType.CNPJ, "12345678000195"),
        # Receita Federal's published alphanumeric CNPJ example (its DVs are 3 and 5).
        ("12ABC34501DE35", KeyType.CNPJ, "12ABC34501DE35"),
        ("12.ABC.345/01DE-35", KeyType.CNPJ, "12ABC34501DE35"),
        ("12abc34501de35", KeyType.CNPJ, "12ABC34501DE35"),
        ("Fulano.Tal@Example.COM", KeyType.EMAIL, "fulano.tal@example.com"),
        ("  Fulano@Example.com\t", KeyType.EMAIL, "fulano@example.com"),
        ("a.b+c!#$&'*/=?^_`{|}~-@example.com", KeyType.EMAIL, "a.b+c!#$&'*/=?^_`{|}~-@example.com"),
        ("12.345.678/0001-95 ", KeyType.CNPJ, "12345678000195"),
        ("+5511999998888", KeyType.PHONE, "+5511999998888"),
        ("+55 (11) 99999-8888", KeyType.PHONE, "+5511999998888"),
        # Masks people type for a Brazilian phone: no '+55' means Brazil.
        ("(12) 99876-5432", KeyType.PHONE, "+5512998765432"),
        ("(12) 9 9876-5432", KeyType.PHONE, "+5512998765432"),
        ("12 99876-5432", KeyType.PHONE, "+5512998765432"),
        ("12 99876 5432", KeyType.PHONE, "+5512998765432"),
        ("12.99876.5432", KeyType.PHONE, "+5512998765432"),
        ("1299876-5432", KeyType.PHONE, "+5512998765432"),
        ("(12) 3456-7890", KeyType.PHONE, "+551234567890"),  # a landline
        ("1234567890", KeyType.PHONE, "+551234567890"),  # 10 digits are no CPF
        ("55 (12) 99876-5432", KeyType.PHONE, "+5512998765432"),
        ("5512998765432", KeyType.PHONE, "+5512998765432"),  # '+' lost to URL decoding
        (" 5511999998888", KeyType.PHONE, "+5511999998888"),
        ("+55 12 99876.5432", KeyType.PHONE, "+5512998765432"),
        ("+55\u00a012\u00a099876-5432", KeyType.PHONE, "+5512998765432"),  # pasted NBSPs
        ("(55) 99876-5432", KeyType.PHONE, "+5555998765432"),  # area code 55, no prefix
        (
            "123e4567-e12b-12d1-a456-426655440000",
            KeyType.EVP,
            "123e4567-e12b-12d1-a456-426655440000",
        ),
        (
            "9463A2A0-2B1A-4157-80FE-344CCF0F7E13",
            KeyType.EVP,
            "9463a2a0-2b1a-4157-80fe-344ccf0f7e13",
        ),
        (
            "{9463A2A0-2B1A-4157-80FE-344CCF0F7E13}",  # as Windows tools write a GUID
            KeyType.EVP,
            "9463a2a0-2b1a-4157-80fe-344ccf0f7e13",
        ),
    ],
)
def test_normalize_accepts(key: str, kind: KeyType, canonical: str) -> None:
    assert normalize(key) == (kind, canonical)
    assert detect(key) is kind


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("12345678900", "CPF check digits"),
        ("111.111.111-11", "CPF check digits"),
        ("00000000000", "CPF check digits"),
        ("11222333000182", "CNPJ check digits"),
        ("12ABC34501DE36", "CNPJ check digits"),
        ("00000000000000", "CNPJ check digits"),
        ("fulano@", "e-mail"),
        ("fulano@example", "e-mail"),
        ("a b@example.com", "e-mail"),
        ("x" * 66 + "@example.com", "77"),
        # The DICT e-mail pattern leaves out '%' (and everything outside its list).
        ("fulano%tal@example.com", "e-mail"),
        ("fulano(tal)@example.com", "e-mail"),
        ('"fulano"@example.com', "e-mail"),
        ("fulano@exa_mple.com", "e-mail"),
        ("fulano@-example.com", "e-mail"),
        # Case mapping must not turn a look-alike into ASCII: KELVIN SIGN lowers to 'k',
        # the ligature 'fi' upper-cases to 'FI'.
        ("\u212aey@example.com", "ASCII"),
        ("12\ufb0134501DE388", "ASCII"),  # upper-cases to the valid CNPJ 12FI34501DE388
        ("11.222.333/0001-8\u0661", "ASCII"),
        ("+0511999998888", "phone"),
        ("+55", "phone"),
        ("+55119999988889999", "phone"),
        ("4915112345678", "%2B"),  # a German mobile that lost its '+'
        ("(10) 99876-5432", "area code"),  # no area code starts with or ends in 0
        ("(12) 89876-5432", "9 digits"),  # a mobile's 9 digits start with 9
        ("(12) 99876-54321", "area code"),
        ("55 (12) 99876-543", "area code"),
        ("12 998 765 432 10", "area code"),
        ("{9463a2a0-2b1a-4157-80fe-344ccf0f7e13", "random key"),
        ("123e4567e12b12d1a456426655440000", "random key"),
        ("123e4567-e12b-12d1-a456-42665544000", "random key"),
        ("", "not a CPF"),
        ("hello", "not a CPF"),
    ],
)
def test_normalize_refuses(key: str, detail: str) -> None:
    with pytest.raises(InvalidPixKeyError) as raised:
        normalize(key)
    assert detail in raised.value.detail


def test_normalize_refuses_non_text() -> None:
    with pytest.raises(InvalidPixKeyError):
        normalize(12345678909)  # type: ignore[arg-type]


def test_eleven_digits_are_a_cpf_not_a_phone() -> None:
    assert detect("11999998888") is KeyType.CPF
    assert detect("+11999998888") is KeyType.PHONE
    assert detect("whatever") is None


def test_bare_eleven_digits_follow_the_dict_cpf_format() -> None:
    """11 bare digits are a CPF (the DICT's format); a mobile needs its mask or +55.

    Guessing "phone" when the check digits fail would turn a mistyped CPF into somebody's
    phone key, and "CPF" when they match would turn 1 mobile in 100 into somebody's CPF:
    money would go to a stranger either way. So the digits alone decide nothing: a valid
    CPF is a CPF, anything else is refused with the phone forms that would be accepted.
    """
    assert normalize("12987654391") == (KeyType.CPF, "12987654391")  # a valid CPF
    assert normalize("(12) 98765-4391") == (KeyType.PHONE, "+5512987654391")
    assert normalize("+55 12 98765-4391") == (KeyType.PHONE, "+5512987654391")
    with pytest.raises(InvalidPixKeyError) as raised:
        normalize("12998765432")  # a mobile typed bare: not a valid CPF
    assert "CPF check digits" in raised.value.detail
    assert "(12) 99876-5432" in raised.value.detail and "+55" in raised.value.detail
    with pytest.raises(InvalidPixKeyError) as raised:
        normalize("12345678900")  # not shaped like a mobile: no phone hint
    assert "phone" not in raised.value.detail


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("12345678909", True),
        ("52998224725", True),
        ("11144477735", True),
        ("12345678900", False),
        ("12345678919", False),
        ("99999999999", False),
        ("1234567890", False),
        ("123.456.789-09", False),
        ("１２３４５６７８９０９", False),  # full-width digits are not ASCII digits
    ],
)
def test_is_valid_cpf(digits: str, valid: bool) -> None:
    assert is_valid_cpf(digits) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("11222333000181", True),
        ("12345678000195", True),
        ("12ABC34501DE35", True),
        ("11222333000180", False),
        ("12ABC34501DE53", False),
        ("12abc34501de35", False),  # plain form is upper case
        ("1222333000181", False),
        ("12ABC34501DEAB", False),  # check digits are numeric
        ("AAAAAAAAAAAAAA", False),
    ],
)
def test_is_valid_cnpj(value: str, valid: bool) -> None:
    assert is_valid_cnpj(value) is valid


@settings(deadline=None)  # timing varies on shared CI machines
@given(st.from_regex(r"[0-9A-Z]{12}", fullmatch=True).filter(lambda b: len(set(b)) > 1))
def test_cnpj_has_exactly_one_pair_of_check_digits(base: str) -> None:
    matches = [f"{base}{dv:02d}" for dv in range(100) if is_valid_cnpj(f"{base}{dv:02d}")]
    assert len(matches) == 1
    assert normalize(matches[0]) == (KeyType.CNPJ, matches[0])


@settings(deadline=None)  # timing varies on shared CI machines
@given(st.from_regex(r"[0-9]{9}", fullmatch=True).filter(lambda b: len(set(b)) > 1))
def test_cpf_has_exactly_one_pair_of_check_digits(base: str) -> None:
    matches = [f"{base}{dv:02d}" for dv in range(100) if is_valid_cpf(f"{base}{dv:02d}")]
    assert len(matches) == 1
    assert normalize(matches[0]) == (KeyType.CPF, matches[0])


@settings(deadline=None)  # timing varies on shared CI machines
@given(st.uuids())
def test_any_uuid_version_is_an_evp(value: object) -> None:
    assert normalize(str(value).upper()) == (KeyType.EVP, str(value))


@settings(deadline=None)  # timing varies on shared CI machines
@given(st.text())
def test_normalize_raises_only_invalid_pix_key_error(text: str) -> None:
    try:
        kind, canonical = normalize(text)
    except InvalidPixKeyError:
        return
    assert normalize(canonical) == (kind, canonical)  # canonical forms are fixed points


AREA_CODES = sorted(
    f"{tens}{unit}" for tens in "123456789" for unit in "123456789"
    if f"{tens}{unit}" not in {"20", "23", "25", "26", "29", "36", "39", "50", "52", "56", "57",
                               "58", "59", "70", "72", "76", "78"}
)  # fmt: skip


@settings(deadline=None)  # timing varies on shared CI machines
@given(
    area=st.sampled_from(AREA_CODES),
    number=st.from_regex(r"9[0-9]{8}|[2-5][0-9]{7}", fullmatch=True),
    mask=st.sampled_from(
        ["({a}) {h}-{t}", "{a} {h}-{t}", "+55 ({a}) {h}-{t}", "55{a}{h}{t}", "+55{a}{h}{t}",
         "{a}.{h}.{t}", " ( {a} ) {h} {t} ", "55 {a} {h}{t}"]
    ),
)  # fmt: skip
def test_every_phone_mask_gives_the_e164_form(area: str, number: str, mask: str) -> None:
    key = mask.format(a=area, h=number[:-4], t=number[-4:])
    assert normalize(key) == (KeyType.PHONE, f"+55{area}{number}")
