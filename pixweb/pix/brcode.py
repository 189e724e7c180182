"""BR Code ("Pix Copia e Cola") text: CRC16, EMV TLV encoding, building and decoding.

Pure and stdlib only. The field rules applied when decoding live in `validate`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TypeAlias

from pixweb.errors import BRCodeError
from pixweb.pix.validate import (
    CITY_MAX,
    DESCRIPTION_MAX,
    NAME_MAX,
    PIX_GUI,
    FieldTree,
    Findings,
    parse_amount,
    parse_tlv,
    pix_account,
    read_tree,
    template,
    text_field,
)
from pixweb.pix.validate import Issue as Issue  # re-exported: part of this module's API

PAYLOAD_MAX = 512
KEY_MAX = URL_MAX = 77
TEMPLATE_MAX = 99
CRC_PREFIX = "6304"

TLVValue: TypeAlias = str | Sequence[tuple[str, str]]
TLVItem: TypeAlias = tuple[str, TLVValue]

_ID = re.compile(r"[0-9]{2}")
_TXID = re.compile(r"[A-Za-z0-9]{1,25}")
_POSTAL_CODE = re.compile(r"[0-9]{8}")
_PRINTABLE = re.compile(r"[ -~]+")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> str:
    """Return the CRC-16/CCITT-FALSE of data as 4 upper-case hex digits."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return f"{crc:04X}"


# What NFKD leaves outside ASCII but has an obvious ASCII form: typography a description is
# pasted with (an em dash must not vanish into a double space) and letters that are not an
# accented base letter.
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2022", "-"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u2039\u203a", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        "\u00b0": "o",  # "n°", the degree sign typed for "nº"
        "\u2044": "/",  # the fraction slash NFKD leaves in "½" -> "1⁄2"
        "\u00d7": "x",
        "\u00df": "ss", "\u1e9e": "SS", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe",
        "\u0152": "OE", "\u00f8": "o", "\u00d8": "O", "\u0142": "l", "\u0141": "L",
        "\u0111": "d", "\u0110": "D", "\u00f0": "d", "\u00d0": "D", "\u00fe": "th",
        "\u00de": "TH", "\u0131": "i",
    }
)  # fmt: skip
_SPACES = re.compile(r" {2,}")


def ascii_text(text: str, limit: int) -> str:
    """Fold text to printable ASCII, single-spaced and trimmed, cut to at most limit characters.

    Folding comes first, so the limit counts the characters the code will hold.
    """
    # NFKD splits an accented letter into its base and combining marks (dropped below with
    # everything else outside ASCII) and maps compatibility forms: "ﬁ" -> "fi", "Ａ" -> "A",
    # "º" -> "o", "…" -> "...", a no-break space -> " ".
    # The table goes first ("´" would become a space and a mark) and again after ("½" -> "1⁄2").
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD)).translate(_FOLD)
    kept = "".join(" " if c.isspace() else c for c in folded if c.isspace() or " " <= c <= "~")
    # Trimmed before the cut so that leading spaces take no room, and after it so that the
    # cut leaves no trailing space ("Rio de Janeiro RJ" -> "Rio de Janeiro", not "... ").
    return _SPACES.sub(" ", kept).strip()[:limit].rstrip()


def format_amount(cents: int) -> str:
    """Format centavos as the BR Code amount text: 19800 -> "198.00"."""
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
        raise BRCodeError(f"An amount must be a non-negative integer of centavos, not {cents!r}.")
    return f"{cents // 100}.{cents % 100:02d}"


def encode_tlv(items: Sequence[TLVItem]) -> str:
    """Encode (id, value) pairs as EMV TLV text; a sequence of pairs becomes a template."""
    parts = []
    for tag, value in items:
        text = value if isinstance(value, str) else encode_tlv(value)
        if not _ID.fullmatch(tag):
            raise BRCodeError(f"An EMV field id is two digits, not {tag!r}.")
        if not 1 <= len(text) <= TEMPLATE_MAX:
            raise BRCodeError(f"Field {tag} must hold 1 to 99 characters, not {len(text)}.")
        parts.append(f"{tag}{len(text):02d}{text}")
    return "".join(parts)


def _utf8(text: str) -> bytes:
    # "surrogatepass" so that a text with a lone surrogate gets a (wrong) CRC, not an exception.
    return text.encode("utf-8", "surrogatepass")


def _with_crc(body: str) -> str:
    head = body + CRC_PREFIX
    return head + crc16(_utf8(head))


def build(
    *,
    key: str | None = None,
    url: str | None = None,
    name: str,
    city: str,
    amount_cents: int | None = None,
    txid: str | None = None,
    description: str | None = None,
    postal_code: str | None = None,
    single_use: bool | None = True,
) -> str:
    """Build a BR Code: static with a Pix key, or dynamic with a PSP URL (no scheme)."""
    account = _account(key, url, description)
    items: list[TLVItem] = [("00", "01")]
    if single_use is not None:
        items.append(("01", "12" if single_use else "11"))
    items += [("26", account), ("52", "0000"), ("53", "986")]
    if amount_cents:
        amount = format_amount(amount_cents)
        if len(amount) > 13:
            raise BRCodeError(f"The amount {amount} exceeds 13 characters.")
        items.append(("54", amount))
    items += [("58", "BR"), ("59", _required(name, NAME_MAX, "name"))]
    items.append(("60", _required(city, CITY_MAX, "city")))
    if postal_code is not None:
        if not _POSTAL_CODE.fullmatch(postal_code):
            raise BRCodeError("A postal code (CEP) is 8 digits.")
        items.append(("61", postal_code))
    if txid is not None and not _TXID.fullmatch(txid):
        raise BRCodeError("A txid is 1 to 25 letters (A-Z, a-z) and digits.")
    items.append(("62", [("05", "***" if txid is None else txid)]))
    payload = _with_crc(encode_tlv(items))
    if len(payload) > PAYLOAD_MAX:
        raise BRCodeError(f"The BR Code would have {len(payload)} characters; at most 512.")
    return payload


def _account(key: str | None, url: str | None, description: str | None) -> str:
    if (key is None) == (url is None):
        raise BRCodeError("Give exactly one of a Pix key (static) or a URL (dynamic).")
    items: list[tuple[str, str]] = [("00", PIX_GUI)]
    if key is not None:
        if not 1 <= len(key) <= KEY_MAX or not _PRINTABLE.fullmatch(key):
            raise BRCodeError("A Pix key has 1 to 77 printable ASCII characters.")
        items.append(("01", key))
    elif url is not None:
        if not 1 <= len(url) <= URL_MAX or not _PRINTABLE.fullmatch(url) or description:
            raise BRCodeError("A URL has 1 to 77 printable ASCII characters and no description.")
        items.append(("25", url))
    text = ascii_text(description or "", DESCRIPTION_MAX)
    if text:
        items.append(("02", text))
    account = encode_tlv(items)
    if len(account) > TEMPLATE_MAX:
        raise BRCodeError("Key and description exceed the 99 characters of field 26.")
    return account


def _required(text: str, limit: int, what: str) -> str:
    value = ascii_text(text, limit)
    if not value:
        raise BRCodeError(f"The {what} has no printable ASCII character left.")
    return value


@dataclass(frozen=True)
class DecodedBRCode:
    """What a BR Code says, with the errors and warnings found in it."""

    payload: str
    fields: FieldTree
    kind: str | None
    key: str | None
    url: str | None
    description: str | None
    name: str | None
    city: str | None
    postal_code: str | None
    amount: str | None
    amount_cents: int | None
    txid: str | None
    point_of_initiation: str | None
    crc: str | None
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]

    @property
    def valid(self) -> bool:
        """Tell whether no error was found (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able dict of every attribute plus "valid"."""
        data = asdict(self)
        data["errors"] = [asdict(issue) for issue in self.errors]
        data["warnings"] = [asdict(issue) for issue in self.warnings]
        data["valid"] = self.valid
        return data


def _check_crc(
    text: str, items: list[tuple[str, str]], broken_at: int | None, found: Findings
) -> str | None:
    """Check that the last field is 63 of length 04 and holds the CRC of all before it."""
    if broken_at is None:
        if items and items[-1][0] == "63" and len(items[-1][1]) == 4:
            return _compare_crc(text, found)
        # Reading the fields in order is what tells a CRC from "6304XXXX" inside another field.
        tags = [tag for tag, _ in items]
        if tags and tags[-1] == "63":
            where = f"has length {len(items[-1][1]):02d}, not length 04 (6304 and 4 hex digits)"
        elif "63" in tags:
            where = "is not the last field"
        else:
            where = "is missing: the payload has no field 63"
        found.error("crc_missing", "63", f"The CRC field (63) {where}.")
        return None
    # The TLV breaks (read_tree reports where); a tail shaped like a CRC is still checked, so
    # that a code damaged in transit says so.
    if len(text) < 8 or text[-8:-4] != CRC_PREFIX:
        found.error("crc_missing", "63", "The payload does not end with the CRC field 6304XXXX.")
        return None
    return _compare_crc(text, found)


def _compare_crc(text: str, found: Findings) -> str:
    given, expected = text[-4:], crc16(_utf8(text[:-4]))
    if given == expected:
        return given
    # The manual asks for upper case, but a lower-case CRC carries the same checksum and
    # parsers that compare numbers accept it: worth a warning, not a refusal.
    if given.upper() == expected:
        found.warn("crc_lowercase", "63", f"The CRC {given} should be upper case: {expected}.")
    else:
        found.error("crc_mismatch", "63", f"The CRC should be {expected}, but it is {given}.")
    return given


def _kind(key: str | None, url: str | None) -> str | None:
    if (key is None) == (url is None):
        return None
    return "static" if key is not None else "dynamic"


def decode(payload: str) -> DecodedBRCode:
    """Read a BR Code, reporting every problem as an Issue; raise only for a non-str input."""
    if not isinstance(payload, str):
        raise BRCodeError(f"A BR Code is a text, not {type(payload).__name__}.")
    text = payload.strip()
    found = Findings()
    if len(text) > PAYLOAD_MAX:
        found.error("too_long", None, f"The payload has {len(text)} characters; at most 512.")
    items, broken_at = parse_tlv(text)
    crc = _check_crc(text, items, broken_at, found)
    fields = read_tree(items, broken_at, found)
    account = pix_account(fields) or {}
    key, url = account.get("01"), account.get("25")
    amount = text_field(fields, "54")
    return DecodedBRCode(
        payload=text,
        fields=fields,
        kind=_kind(key, url),
        key=key,
        url=url,
        description=account.get("02"),
        name=text_field(fields, "59"),
        city=text_field(fields, "60"),
        postal_code=text_field(fields, "61"),
        amount=amount,
        amount_cents=parse_amount(amount) if amount else None,
        txid=(template(fields, "62") or {}).get("05"),
        point_of_initiation=text_field(fields, "01"),
        crc=crc,
        errors=tuple(found.errors),
        warnings=tuple(found.warnings),
    )
