"""BR Code build/decode: published vectors, field rules, and hypothesis properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pixweb.errors import BRCodeError
from pixweb.pix.brcode import (
    DecodedBRCode,
    ascii_text,
    build,
    crc16,
    decode,
    encode_tlv,
    format_amount,
)

HERE = Path(__file__).parent
BCB = json.loads((HERE / "vectors_bcb.json").read_text(encoding="utf-8"))
EXTRA = json.loads((HERE / "vectors_extra.json").read_text(encoding="utf-8"))
EVP = "123e4567-e12b-12d1-a456-426655440000"
STATIC = build(key=EVP, name="Fulano de Tal", city="BRASILIA", amount_cents=19800, txid="A1")
PIX_GUI = ("00", "br.gov.bcb.pix")
BCB0 = BCB[0]["payload"]  # BCB's static example, CRC 1D3D

# How each library's inputs in vectors_bcb.json map onto build(), keyed by the payload's CRC.
BCB_BUILDS: dict[str, dict[str, Any]] = {
    # BCB's own examples (expected_parse): build reproduces them too.
    "1D3D": {"key": EVP, "name": "Fulano de Tal", "city": "BRASILIA", "single_use": None},
    "64E4": {"url": "pix.example.com/8b3da2f39a4140d1a91abd93113bd441", "name": "Fulano de Tal",
             "city": "BRASILIA"},
    # thalesog upper-cases the name and strips accents; amounts are reais (10 -> 1000 cents).
    "0DC6": {"key": "thalesog@me.com", "description": "Pedido 123", "amount_cents": 1000,
             "name": "Thales Ogliari".upper(), "city": "SÃO MIGUÉL DO O", "single_use": None},
    "62CA": {"key": "thalesog@me.com", "description": "Pedido 123", "amount_cents": 0,
             "name": "Thales Ogliari".upper(), "city": "SÃO MIGUÉL DO O", "single_use": None},
    "0433": {"url": "payload.psp.com/3ec9d2f9-5f03-4e0e-820d-63a81e769e87",
             "name": "Bárbara Pelé".upper(), "city": "SÃO MIGUÉL DO O", "single_use": None},
    # joseviniciusnunes upper-cases the name and writes the GUI in upper case (swapped below).
    "102F": {"key": "test@mail.com.br", "name": "FULANO DE TAL", "city": "SAO PAULO",
             "single_use": None},
    "9359": {"key": "test@mail.com.br", "name": "FULANO DE TAL", "city": "SAO PAULO",
             "amount_cents": 10099, "single_use": None},
    "1747": {"key": "test@mail.com.br", "name": "FULANO DE TAL", "city": "SAO PAULO",
             "postal_code": "85000100", "single_use": None},
    "5A4E": {"key": "test@mail.com.br", "name": "FULANO DE TAL", "city": "SAO PAULO",
             "description": "is my message :)", "single_use": None},
    # starkbank truncates the txid; build never does, so it gets the first 25 characters.
    "05B7": {"key": "arya@stark.com", "amount_cents": 12500,
             "name": "Arya Stark with a very long name",
             "city": "Pindamonhangaba do Norte do Sul de Winterfell",
             "txid": "verylongreconciliationidtotestfieldlength"[:25], "single_use": None},
    # Nubank (via piggly's test): upper-case GUI and city, mixed-case name, no field 01.
    "56D6": {"key": "aae2196f-5f93-46e4-89e6-73bf4138427b", "amount_cents": 101,
             "name": "Caique Monteiro Araujo", "city": "São Paulo".upper(),
             "postal_code": "05409000", "single_use": None},
}  # fmt: skip
BCB_WARNINGS = {"8381": ["amount_not_canonical"]}
BCB_ERRORS = {  # the invalid vectors, by their position in the file
    12: ["crc_mismatch"], 13: ["crc_mismatch"], 14: ["crc_missing"], 15: ["name_too_long"],
}  # fmt: skip
PARSE_NAMES = {"poi": "point_of_initiation"}


def codes(issues: tuple[Any, ...]) -> list[str]:
    return sorted(issue.code for issue in issues)


def with_gui(payload: str, gui: str) -> str:
    """Rewrite the Pix GUI of a built payload (build always writes it in lower case)."""
    body = payload[:-4].replace("0014br.gov.bcb.pix", f"0014{gui}", 1)
    return body + crc16(body.encode())


def reencode(decoded: DecodedBRCode) -> str:
    """Encode the decoded TLV tree again, with a fresh CRC."""
    items = [(t, v if isinstance(v, str) else list(v.items())) for t, v in decoded.fields.items()]
    body = encode_tlv([item for item in items if item[0] != "63"]) + "6304"
    return body + crc16(body.encode())


def assert_reencodes(decoded: DecodedBRCode) -> None:
    # Holds for every vector whose TLV is sound: decode keeps every field, in order.
    if {"tlv_malformed", "duplicate_field", "crc_missing"} & set(codes(decoded.errors)):
        return
    assert reencode(decoded)[:-4] == decoded.payload[:-4]
    if "crc_mismatch" not in codes(decoded.errors):
        assert reencode(decoded) == decoded.payload


# --- published vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(BCB)))
def test_bcb_vector(index: int) -> None:
    vector = BCB[index]
    decoded = decode(vector["payload"])
    crc = vector["payload"][-4:]
    if not vector["valid"]:
        assert codes(decoded.errors) == BCB_ERRORS[index]
        return
    assert codes(decoded.errors) == []
    assert codes(decoded.warnings) == BCB_WARNINGS.get(crc, [])
    assert decoded.kind == vector["kind"]
    inputs = vector["inputs"]
    if inputs["kind"] == "expected_parse":
        for name, value in inputs.items():
            if name != "kind":
                assert getattr(decoded, PARSE_NAMES.get(name, name)) == value, name
    assert_reencodes(decoded)
    if crc in BCB_BUILDS:
        built = build(**BCB_BUILDS[crc])
        gui = decoded.fields["26"]["00"]  # type: ignore[index]
        # build cannot write an upper-case GUI: swap it in, then the rest must match exactly.
        assert (built if gui == "br.gov.bcb.pix" else with_gui(built, gui)) == vector["payload"]


def test_every_generator_vector_is_mapped() -> None:
    generated = [
        v["payload"][-4:] for v in BCB if v["inputs"] and v["inputs"]["kind"] == "generator"
    ]
    assert set(generated) <= set(BCB_BUILDS)


@pytest.mark.parametrize(
    "vector", EXTRA, ids=[f"{i}:{v['source'][:30]}" for i, v in enumerate(EXTRA)]
)
def test_extra_vector(vector: dict[str, Any]) -> None:
    decoded = decode(vector["payload"])
    assert codes(decoded.errors) == vector["errors"]
    assert codes(decoded.warnings) == vector["warnings"]
    for name, value in vector["expect"].items():
        if name == "fields":
            for tag, sub in value.items():
                assert decoded.fields[tag] == sub
        else:
            assert getattr(decoded, name) == value, name
    assert_reencodes(decoded)
    if vector["build"] is not None:
        built = build(**vector["build"])
        gui = vector.get("build_gui")
        assert (with_gui(built, gui) if gui else built) == vector["payload"]


# --- primitives -------------------------------------------------------------------------------


def test_crc16_check_value_and_padding() -> None:
    assert crc16(b"123456789") == "29B1"
    assert crc16(b"") == "FFFF"
    assert crc16(BCB[2]["payload"][:-4].encode()) == "0DC6"  # leading zero kept


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("São Paulo", 15, "Sao Paulo"),
        ("  Bárbara Pelé  ", 25, "Barbara Pele"),
        ("Açaí 🍧 Ltda\n", 25, "Acai Ltda"),  # what is dropped leaves no double space
        ("Straße", 10, "Strasse"),
        ("Pindamonhangaba do Norte", 15, "Pindamonhangaba"),
        ("   Pindamonhangaba do Norte", 15, "Pindamonhangaba"),  # trimmed before the cut
        ("😀", 5, ""),
        # Cut, then trimmed again: no trailing space at the limit.
        ("Rio de Janeiro RJ", 15, "Rio de Janeiro"),
        ("Cuiabá das Flores", 11, "Cuiaba das"),
        ("Padaria Pão de Mel da Vila", 15, "Padaria Pao de"),
        # Typography folds to its ASCII form rather than vanishing.
        ("Pedido 42 — açaí", 72, "Pedido 42 - acai"),
        ("Pedido 42 – 2ª via", 72, "Pedido 42 - 2a via"),
        ("“Promoção” d’água", 72, '"Promocao" d\'agua'),
        ("«Ótimo» ‹sim›", 72, "\"Otimo\" 'sim'"),
        ("Aguarde…", 72, "Aguarde..."),
        ("Pedido nº 42, n° 43", 72, "Pedido no 42, no 43"),
        ("½ kg × 2", 72, "1/2 kg x 2"),
        ("ﬁlé ＡＢＣ", 72, "file ABC"),
        ("Æsir Œuvre Øre Łódź", 72, "AEsir OEuvre Ore Lodz"),
        ("R$\u00a010\u2009mil", 72, "R$ 10 mil"),  # no-break and thin spaces are spaces
        ("linha 1\r\n\tlinha 2", 72, "linha 1 linha 2"),
        ("a\u200bb\u00adc", 72, "abc"),  # zero-width space, soft hyphen: invisible
        ("a \x00 b", 72, "a b"),
        # The limit counts the folded text: "…" takes 3 of the 10.
        ("Espere… mais", 10, "Espere..."),
    ],
)
def test_ascii_text(text: str, limit: int, expected: str) -> None:
    assert ascii_text(text, limit) == expected


@pytest.mark.parametrize(
    ("cents", "text"),
    [(19800, "198.00"), (1, "0.01"), (10, "0.10"), (0, "0.00"), (123456, "1234.56")],
)
def test_format_amount(cents: int, text: str) -> None:
    assert format_amount(cents) == text


@pytest.mark.parametrize("cents", [-1, True, 1.5])
def test_format_amount_refuses(cents: Any) -> None:
    with pytest.raises(BRCodeError):
        format_amount(cents)


def test_encode_tlv_nests_templates_and_refuses_bad_lengths() -> None:
    assert encode_tlv([("00", "01"), ("62", [("05", "***")])]) == "00020162070503***"
    for items in ([("00", "")], [("00", "x" * 100)], [("0", "x")]):
        with pytest.raises(BRCodeError):
            encode_tlv(items)


# --- build ------------------------------------------------------------------------------------


def test_build_layout() -> None:
    body = (
        "000201" "010212" "26580014br.gov.bcb.pix0136" + EVP + "52040000" "5303986" "5406198.00"
        "5802BR" "5913Fulano de Tal" "6008BRASILIA" "62060502A1" "6304"
    )  # fmt: skip
    assert body + crc16(body.encode()) == STATIC
    decoded = decode(STATIC)
    assert (decoded.errors, decoded.warnings) == ((), ())
    order = ["00", "01", "26", "52", "53", "54", "58", "59", "60", "62", "63"]
    assert list(decoded.fields) == order


@pytest.mark.parametrize(("single_use", "poi"), [(True, "12"), (False, "11"), (None, None)])
def test_build_point_of_initiation(single_use: bool | None, poi: str | None) -> None:
    code = build(key=EVP, name="N", city="C", single_use=single_use)
    assert decode(code).point_of_initiation == poi


@pytest.mark.parametrize(
    "changes",
    [
        {"key": None},
        {"url": "psp.example/x"},
        {"key": None, "url": "psp.example/x", "description": "no description with a URL"},
        {"amount_cents": -1},
        {"amount_cents": 10**12},  # "10000000000.00" has 14 characters
        {"txid": "abc-123"},
        {"txid": ""},
        {"txid": "x" * 26},  # never truncated silently
        {"name": "🍧"},
        {"city": " \t"},
        {"postal_code": "01310-100"},
        {"key": "k" * 78},
        {"key": "chave@exemplo.com\u00a0"},  # keys and URLs are printable ASCII
        {"key": None, "url": "psp.example/\ud800"},
        {"description": "d" * 60},  # 18 + 40 + 64 > 99 in field 26
    ],
)
def test_build_refuses(changes: dict[str, Any]) -> None:
    with pytest.raises(BRCodeError):
        build(**{"key": EVP, "name": "Fulano", "city": "Recife", **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "k" * 78}, "1 to 77 printable"),
        ({"description": "d" * 60}, "exceed the 99 characters"),
    ],
)
def test_build_names_the_limit(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BRCodeError, match=message):
        build(**{"key": EVP, "name": "Fulano", "city": "Recife", **changes})


def test_build_keeps_case_and_omits_zero_amount() -> None:
    decoded = decode(build(key=EVP, name="Café da Ana", city="Jundiaí", amount_cents=0))
    assert (decoded.name, decoded.city, decoded.amount) == ("Cafe da Ana", "Jundiai", None)


# --- decode: the issue codes ------------------------------------------------------------------


def payload_with(**fields: Any) -> str:
    """A valid static payload with top-level fields replaced (None drops one), CRC recomputed."""
    tree: dict[str, Any] = {
        "00": "01", "01": "12", "26": [("00", "br.gov.bcb.pix"), ("01", EVP)], "52": "0000",
        "53": "986", "54": "10.00", "58": "BR", "59": "Fulano", "60": "Recife",
        "62": [("05", "***")],
    }  # fmt: skip
    tree.update({k.removeprefix("f"): v for k, v in fields.items()})
    body = encode_tlv([(k, v) for k, v in tree.items() if v is not None]) + "6304"
    return body + crc16(body.encode())


@pytest.mark.parametrize(
    ("payload", "error", "path"),
    [
        (STATIC + "0" * 400, "too_long", None),
        (BCB0[:-4] + "1D3E", "crc_mismatch", "63"),
        (STATIC[:-8], "crc_missing", "63"),
        (payload_with(f00="02"), "format_indicator", "00"),
        (payload_with(f00=None), "format_indicator", "00"),
        (payload_with(f01="13"), "poi_invalid", "01"),
        (payload_with(f26=[("00", "br.gov.bcb.pix")]), "no_key_or_url", "26"),
        (payload_with(f26=[("00", "br.gov.bcb.pix"), ("01", EVP), ("25", "a.b/c")]),
         "key_and_url", "26"),
        (payload_with(f26=[("00", "br.gov.bcb.pixx"), ("01", EVP)]), "gui_invalid", "26"),
        (payload_with(f26=None), "missing_field", "26"),
        (payload_with(f26=None, f27=[("00", "br.com.outro"), ("01", "1")]), "gui_invalid", "26"),
        ("", "format_indicator", "00"),
        ("", "crc_missing", "63"),
        (payload_with(f53="840"), "currency_invalid", "53"),
        (payload_with(f58="US"), "country_invalid", "58"),
        (payload_with(f59="N" * 26), "name_too_long", "59"),
        (payload_with(f60="C" * 16), "city_too_long", "60"),
        (payload_with(f62=[("05", "T" * 26)]), "txid_too_long", "62.05"),
        (payload_with(f62=[("01", "x")]), "missing_field", "62.05"),
        (payload_with(f62=None), "missing_field", "62"),
        (payload_with(f52=None), "missing_field", "52"),
        (payload_with(f26=[("00", "br.gov.bcb.pix"), ("01", EVP), ("01", EVP)]),
         "duplicate_field", "26.01"),
        (payload_with(f62="0503***0503***"), "duplicate_field", "62.05"),
        (payload_with(f62="0599***"), "tlv_malformed", "62"),
        (STATIC[:-8].replace("5802BR", "58XXBR") + "6304" + "0000", "tlv_malformed", None),
    ],
)  # fmt: skip
def test_decode_reports(payload: str, error: str, path: str | None) -> None:
    decoded = decode(payload)
    assert (error, path) in [(issue.code, issue.field) for issue in decoded.errors]
    assert not decoded.valid


@pytest.mark.parametrize(
    "amount", ["0", "0.00", "-1.00", "1,00", "abc", "1.999", "1e3", "12345678901.00", "."]
)
def test_decode_amount_invalid(amount: str) -> None:
    decoded = decode(payload_with(f54=amount))
    assert codes(decoded.errors) == ["amount_invalid"]
    assert (decoded.amount, decoded.amount_cents) == (amount, None)


def test_decode_empty_field_and_crc_message() -> None:
    # encode_tlv refuses an empty value, so splice one in by hand.
    spliced = STATIC[:-8].replace("6008BRASILIA", "6008BRASILIA6100") + "6304"
    issues = decode(spliced + crc16(spliced.encode())).errors
    assert [(i.code, i.field) for i in issues] == [("field_empty", "61")]
    mismatch = decode(BCB0[:-4] + "1D3E").errors
    assert [(i.code, i.field) for i in mismatch] == [("crc_mismatch", "63")]
    assert "1D3D" in mismatch[0].message and "1D3E" in mismatch[0].message


@pytest.mark.parametrize(
    ("payload", "warning", "path"),
    [
        (payload_with(f54="198"), "amount_not_canonical", "54"),
        (payload_with(f54="010.00"), "amount_not_canonical", "54"),
        (payload_with(f59="São João"), "non_ascii", "59"),
        (payload_with(f62=[("05", "pedido-1")]), "txid_invalid_chars", "62.05"),
        (BCB0[:-4] + "1D3d", "crc_lowercase", "63"),
        # 02 can exceed 72 only without a key (18 + 4 + 73 <= 99): a Pix Automático-only code.
        (payload_with(f26=[PIX_GUI, ("02", "d" * 73)], f80=[PIX_GUI, ("25", "psp.example/r")]),
         "description_too_long", "26.02"),
        (payload_with(f26=[("00", "br.gov.bcb.pix"), ("01", "123.456.789-09")]),
         "key_unrecognized", "26.01"),
        (payload_with(f26=[("00", "br.gov.bcb.pix"), ("01", "11111111111")]),
         "key_unrecognized", "26.01"),
        (payload_with(f26=[("00", "br.gov.bcb.pix"), ("25", "https://psp.example/x")]),
         "url_scheme", "26.25"),
        (payload_with(f61="0540900"), "postal_code_invalid", "61"),
    ],
)  # fmt: skip
def test_decode_warns(payload: str, warning: str, path: str) -> None:
    decoded = decode(payload)
    assert decoded.valid
    assert [(issue.code, issue.field) for issue in decoded.warnings] == [(warning, path)]
    if warning == "amount_not_canonical":
        assert "1.98" in decoded.warnings[0].message


@pytest.mark.parametrize(
    "payload",
    [
        payload_with(f01=None, f26=[("00", "BR.GOV.BCB.PIX"), ("01", EVP)]),
        payload_with(f26=[("01", EVP), ("00", "br.gov.bcb.pix")], f62=[("07", "x"), ("05", "A")]),
        payload_with(f26=[("00", "br.com.outro"), ("01", "1")], f27=[PIX_GUI, ("01", EVP)]),
        payload_with(f61="05409000", f80=[("00", "br.gov.bcb.pix"), ("25", "psp.example/rec/1")]),
        "  \n" + STATIC + "\r\n",
    ],
)  # fmt: skip
def test_decode_accepts(payload: str) -> None:
    decoded = decode(payload)
    assert (decoded.errors, decoded.warnings) == ((), ())
    assert (decoded.kind, decoded.key) == ("static", EVP)


def test_decode_reports_each_issue_once() -> None:
    issues = decode("0000" * 130).errors  # 130 empty fields 00, 520 characters
    assert len(issues) == len({(i.code, i.field) for i in issues}) == 12


def test_to_dict_is_json() -> None:
    data = decode(payload_with(f54="198", f59="N" * 26)).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["valid"] is False
    errors: Any = data["errors"]
    assert errors == [{"code": "name_too_long", "field": "59", "message": errors[0]["message"]}]
    assert {"payload", "fields", "kind", "amount_cents", "crc", "warnings"} <= set(data)


@pytest.mark.parametrize("value", [None, 1, b"000201", ["000201"]])
def test_decode_refuses_non_text(value: Any) -> None:
    with pytest.raises(BRCodeError):
        decode(value)


# --- properties -------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [EVP, "fulano@example.com", "+5511999998888", "12345678909", "12ABC34501DE35"]
)
TXIDS = st.none() | st.from_regex(r"[A-Za-z0-9]{1,25}", fullmatch=True)


@settings(deadline=None)  # timing varies on shared CI machines
@given(
    key=KEYS, name=st.text(), city=st.text(), description=st.none() | st.text(),
    amount=st.none() | st.integers(1, 999_999_999_999), txid=TXIDS,
    single_use=st.sampled_from([True, False, None]),
    postal_code=st.none() | st.from_regex(r"[0-9]{8}", fullmatch=True),
)  # fmt: skip
@example(key=EVP, name="São", city="Zé", description="ação", amount=999_999_999_999, txid=None,
         single_use=True, postal_code=None)  # fmt: skip
def test_build_decode_round_trip(
    key: str, name: str, city: str, description: str | None, amount: int | None,
    txid: str | None, single_use: bool | None, postal_code: str | None,
) -> None:  # fmt: skip
    text = ascii_text(description or "", 72)
    assume(18 + 4 + len(key) + (4 + len(text) if text else 0) <= 99)
    kwargs: dict[str, Any] = {"key": key, "name": name, "city": city, "description": description,
                              "amount_cents": amount, "txid": txid, "single_use": single_use,
                              "postal_code": postal_code}  # fmt: skip
    if not ascii_text(name, 25) or not ascii_text(city, 15):
        with pytest.raises(BRCodeError):
            build(**kwargs)
        return
    decoded = decode(build(**kwargs))
    assert (decoded.errors, decoded.warnings) == ((), ())
    assert (decoded.name, decoded.city) == (ascii_text(name, 25), ascii_text(city, 15))
    for value in (decoded.name, decoded.city, decoded.description or "x"):
        assert value and value == value.strip() and "  " not in value
    assert (decoded.description, decoded.key, decoded.kind) == (text or None, key, "static")
    assert (decoded.amount_cents, decoded.txid) == (amount, txid or "***")
    assert (decoded.postal_code, decoded.point_of_initiation) == (
        postal_code,
        {True: "12", False: "11", None: None}[single_use],
    )


@settings(deadline=None)  # timing varies on shared CI machines
@given(text=st.text(st.characters(exclude_categories=())), limit=st.integers(1, 99))
@example(text="Rio de Janeiro RJ", limit=15)
@example(text="Pedido 42 \u2014 a\u00e7a\u00ed", limit=72)
def test_ascii_text_is_trimmed_single_spaced_printable_ascii(text: str, limit: int) -> None:
    folded = ascii_text(text, limit)
    assert len(folded) <= limit
    assert all(" " <= c <= "~" for c in folded)
    assert folded == folded.strip() and "  " not in folded
    assert ascii_text(folded, limit) == folded  # a fixed point: folding twice changes nothing


TLV_ALPHABET = st.sampled_from(
    list("0123456789*.abBR ") + ["6304", "0014br.gov.bcb.pix", "26", "62"]
)


ANY_TEXT = st.text(st.characters(exclude_categories=()))  # lone surrogates included


@settings(deadline=None)  # timing varies on shared CI machines
@given(
    ANY_TEXT | st.lists(TLV_ALPHABET).map("".join) | st.sampled_from([v["payload"] for v in EXTRA])
)
@example("\ud800" + BCB0)
@example(BCB0[:-4] + "\ud800" * 4)
def test_decode_never_raises_on_text(text: str) -> None:
    decoded = decode(text)
    assert json.loads(json.dumps(decoded.to_dict())) == decoded.to_dict()


@settings(deadline=None)  # timing varies on shared CI machines
@given(
    st.integers() | st.binary() | st.floats() | st.none() | st.lists(st.text()) | st.builds(object)
)
def test_decode_raises_only_brcode_error_on_other_objects(value: object) -> None:
    with pytest.raises(BRCodeError):
        decode(value)  # type: ignore[arg-type]


NAMES = st.from_regex(r"[A-Za-z][ -~]{0,30}", fullmatch=True)


@settings(deadline=None)  # timing varies on shared CI machines
@given(data=st.data(), amount=st.integers(1, 10**8), txid=TXIDS, name=NAMES)
def test_any_single_character_change_is_caught(
    data: st.DataObject, amount: int, txid: str | None, name: str
) -> None:
    payload = build(key=EVP, name=name, city="Recife", amount_cents=amount, txid=txid)
    index = data.draw(st.integers(0, len(payload) - 1))
    char = data.draw(st.characters(min_codepoint=32, max_codepoint=126))
    mutated = payload[:index] + char + payload[index + 1 :]
    assume(mutated != payload)
    decoded = decode(mutated)
    if index >= len(payload) - 4 and char.upper() == payload[index]:
        assert codes(decoded.warnings) == ["crc_lowercase"]  # same CRC, written in lower case
        return
    assert {"crc_mismatch", "crc_missing", "tlv_malformed"} & set(codes(decoded.errors))


# --- the CRC is the last field, of length 04 ---------------------------------------------------


def with_fresh_crc(text: str) -> str:
    """Replace the last 4 characters of text with the CRC of everything before them."""
    return text[:-4] + crc16(text[:-4].encode())


def crc_in_last_description() -> str:
    # No field 63: the payload ends inside field 26, whose description ends in "6304XXXX".
    items: list[Any] = [("00", "01"), ("52", "0000"), ("53", "986"), ("58", "BR"),
                        ("59", "Fulano"), ("60", "Recife"), ("62", [("05", "***")]),
                        ("26", [PIX_GUI, ("01", EVP), ("02", "Pedido 6304XXXX")])]  # fmt: skip
    return with_fresh_crc(encode_tlv(items))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (crc_in_last_description(), "no field 63"),
        # The last field is 63, but of length 08 and holding "6304XXXX".
        (with_fresh_crc(STATIC[:-8] + "6308" + "6304XXXX"), "length 04"),
        # A field 63 in the middle, and the payload ends in a field 99 that mimics a CRC.
        (with_fresh_crc(STATIC[:-8] + "63041234" + "99086304XXXX"), "not the last field"),
        # A field 99 mimics the CRC and there is no field 63 at all.
        (with_fresh_crc(STATIC[:-8] + "99086304XXXX"), "no field 63"),
    ],
)
def test_decode_refuses_a_crc_that_is_not_the_last_field(payload: str, message: str) -> None:
    assert payload[-8:-4] == "6304" and crc16(payload[:-4].encode()) == payload[-4:]
    decoded = decode(payload)
    assert "crc_missing" in codes(decoded.errors)
    assert message in next(i.message for i in decoded.errors if i.code == "crc_missing")
    assert decoded.crc is None
    assert not decoded.valid


def test_decode_reads_the_crc_from_field_63() -> None:
    decoded = decode(STATIC)
    assert decoded.crc == STATIC[-4:] == decoded.fields["63"]


@settings(deadline=None)  # timing varies on shared CI machines
@given(
    tag=st.from_regex(r"[0-9]{2}", fullmatch=True),
    filler=st.from_regex(r"[ -~]{0,60}", fullmatch=True),
)
def test_a_payload_not_closed_by_field_63_is_refused(tag: str, filler: str) -> None:
    # Whatever field closes the payload, a tail "6304XXXX" with a right checksum is not a CRC.
    assume(tag != "63")
    payload = with_fresh_crc(STATIC[:-8] + encode_tlv([(tag, filler + "6304XXXX")]))
    assert "crc_missing" in codes(decode(payload).errors)
