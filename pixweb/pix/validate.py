"""Reading BR Code TLV text into a field tree and applying the Pix field rules to it.

Every breach becomes an Issue: an error (the code must be refused) or a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from pixweb.errors import InvalidPixKeyError
from pixweb.pix import keys

PIX_GUI = "br.gov.bcb.pix"
NAME_MAX, CITY_MAX, DESCRIPTION_MAX, TXID_MAX, AMOUNT_MAX = 25, 15, 72, 25, 13
MERCHANT_ACCOUNT_IDS = tuple(f"{n:02d}" for n in range(26, 52))
MANDATORY = ("52", "53", "58", "59", "60", "62")

FieldTree = dict[str, str | dict[str, str]]

_PRINTABLE = re.compile(r"[ -~]*")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
_DECIMAL = re.compile(r"(?=\.?[0-9])[0-9]*(?:\.[0-9]*)?")
_CANONICAL_AMOUNT = re.compile(r"(?:0|[1-9][0-9]*)\.[0-9]{2}")
_POSTAL_CODE = re.compile(r"[0-9]{8}")
_HEAD = re.compile(r"[0-9]{4}")
# EMV: 26..51 merchant accounts, 62 additional data, 80..99 unreserved templates (80: Pix
# Automático). Their values are TLV themselves.
_TEMPLATES = frozenset([*MERCHANT_ACCOUNT_IDS, "62", *map(str, range(80, 100))])


@dataclass(frozen=True)
class Issue:
    """One finding about a BR Code: a stable code, the EMV path it concerns and a sentence."""

    code: str
    field: str | None
    message: str


@dataclass
class Findings:
    """The errors and warnings gathered while decoding one payload."""

    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    def error(self, code: str, path: str | None, message: str) -> None:
        """Record an error, once per code and field."""
        _add_once(self.errors, Issue(code, path, message))

    def warn(self, code: str, path: str | None, message: str) -> None:
        """Record a warning, once per code and field."""
        _add_once(self.warnings, Issue(code, path, message))


def _add_once(issues: list[Issue], issue: Issue) -> None:
    # A run of "0000" repeats an empty field 00 over and over: one report per field is enough,
    # and it bounds the report of a hostile payload.
    if all((i.code, i.field) != (issue.code, issue.field) for i in issues):
        issues.append(issue)


def text_field(fields: FieldTree, tag: str) -> str | None:
    """Return a top-level field's text, or None when absent or a template."""
    value = fields.get(tag)
    return value if isinstance(value, str) else None


def template(fields: FieldTree, tag: str) -> dict[str, str] | None:
    """Return a template's sub-fields, or None when absent or not a template."""
    value = fields.get(tag)
    return value if isinstance(value, dict) else None


def _is_pix(sub: dict[str, str] | None) -> bool:
    # Nubank and others emit "BR.GOV.BCB.PIX": the GUI compares case-insensitively.
    gui = sub.get("00", "") if sub else ""
    return gui.isascii() and gui.lower() == PIX_GUI


def pix_account(fields: FieldTree) -> dict[str, str] | None:
    """Return the merchant account template (26..51) that carries the Pix GUI, if any."""
    for tag in MERCHANT_ACCOUNT_IDS:
        sub = template(fields, tag)
        if _is_pix(sub):
            return sub
    return None


def parse_amount(text: str) -> int | None:
    """Return the centavos of a positive decimal text with at most 13 characters, else None."""
    if len(text) > AMOUNT_MAX or not _DECIMAL.fullmatch(text):
        return None
    cents = Decimal(text) * 100
    if cents <= 0 or cents != cents.to_integral_value():
        return None
    return int(cents)


def parse_tlv(text: str) -> tuple[list[tuple[str, str]], int | None]:
    """Split text into (id, value) pairs; also return the offset where it broke, if it did."""
    items: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        head = text[pos : pos + 4]
        end = pos + 4 + int(head[2:]) if _HEAD.fullmatch(head) else len(text) + 1
        if end > len(text):
            return items, pos
        items.append((head[:2], text[pos + 4 : end]))
        pos = end
    return items, None


def _tree(items: list[tuple[str, str]], parent: str | None, found: Findings) -> dict[str, str]:
    """Index parsed pairs by id, reporting empty and repeated fields (the first one is kept)."""
    tree: dict[str, str] = {}
    for tag, value in items:
        path = f"{parent}.{tag}" if parent else tag
        if not value:
            found.error("field_empty", path, f"Field {path} is present but empty.")
        if tag in tree:
            found.error("duplicate_field", path, f"Field {path} appears more than once.")
        else:
            tree[tag] = value
    return tree


def read_tree(items: list[tuple[str, str]], broken_at: int | None, found: Findings) -> FieldTree:
    """Index the top-level fields `parse_tlv` read into a tree, then apply the Pix rules to it."""
    if broken_at is not None:
        found.error("tlv_malformed", None, f"The TLV structure breaks at offset {broken_at}.")
    fields: FieldTree = dict(_tree(items, None, found))
    for tag, value in list(fields.items()):
        if tag in _TEMPLATES and isinstance(value, str):
            sub_items, sub_broken_at = parse_tlv(value)
            if sub_broken_at is not None:
                found.error("tlv_malformed", tag, f"Template {tag} breaks at {sub_broken_at}.")
            fields[tag] = _tree(sub_items, tag, found)
    first_tag = items[0][0] if items else None
    _check(fields, first_tag, broken_at is None, found)
    return fields


def _check(fields: FieldTree, first_tag: str | None, complete: bool, found: Findings) -> None:
    """Apply the Pix field rules; `complete` tells that the TLV parsed to its end."""
    _check_header(fields, first_tag, complete, found)
    _check_account(fields, complete, found)
    _check_mandatory(fields, complete, found)
    _check_amount(fields, found)
    _check_merchant(fields, found)
    _check_txid(fields, found)


def _check_header(
    fields: FieldTree, first_tag: str | None, complete: bool, found: Findings
) -> None:
    if first_tag != "00" and (first_tag is not None or complete):
        found.error("format_indicator", "00", "The payload must start with field 00 (value 01).")
    elif first_tag == "00" and fields.get("00") != "01":
        found.error("format_indicator", "00", "Field 00 (payload format indicator) must be 01.")
    poi = fields.get("01")
    if poi is not None and poi not in ("11", "12"):
        found.error("poi_invalid", "01", f"Field 01 must be 11 or 12, not {poi!r}.")


def _check_account(fields: FieldTree, complete: bool, found: Findings) -> None:
    account = pix_account(fields)
    if account is None:
        if any(tag in fields for tag in MERCHANT_ACCOUNT_IDS):
            found.error("gui_invalid", "26", f"No merchant account template has GUI {PIX_GUI}.")
        elif complete:
            found.error("missing_field", "26", "The merchant account template (26) is missing.")
        return
    key, url = account.get("01"), account.get("25")
    if key is not None and url is not None:
        found.error("key_and_url", "26", "The Pix template holds both a key (01) and a URL (25).")
    elif key is None and url is None and not _is_pix(template(fields, "80")):
        # Pix Automático "journey 2" codes carry their URL in template 80 only.
        found.error(
            "no_key_or_url", "26", "The Pix template holds neither a key (01) nor a URL (25)."
        )
    if key is not None:
        _check_key(key, found)
    if url is not None and "://" in url:
        found.warn("url_scheme", "26.25", "The URL must be given without a scheme (https://).")
    description = account.get("02")
    if description is not None:
        if len(description) > DESCRIPTION_MAX:
            found.warn("description_too_long", "26.02", "The description exceeds 72 characters.")
        _check_ascii(description, "26.02", found)


def _check_key(key: str, found: Findings) -> None:
    try:
        _, canonical = keys.normalize(key)
    except InvalidPixKeyError as exc:
        found.warn("key_unrecognized", "26.01", f"The Pix key matches no DICT format: {exc.detail}")
        return
    if canonical != key:
        found.warn("key_unrecognized", "26.01", f"The Pix key's DICT form is {canonical!r}.")


def _check_mandatory(fields: FieldTree, complete: bool, found: Findings) -> None:
    for tag in MANDATORY:
        if complete and tag not in fields:
            found.error("missing_field", tag, f"The mandatory field {tag} is missing.")
    additional = template(fields, "62")
    if additional is not None and "05" not in additional:
        found.error("missing_field", "62.05", "The txid (62.05) is missing; use *** for none.")
    if fields.get("53", "986") != "986":
        found.error("currency_invalid", "53", "The currency (53) must be 986 (BRL).")
    if fields.get("58", "BR") != "BR":
        found.error("country_invalid", "58", "The country code (58) must be BR.")
    postal_code = text_field(fields, "61")
    if postal_code is not None and not _POSTAL_CODE.fullmatch(postal_code):
        found.warn("postal_code_invalid", "61", "The postal code (61) must be 8 digits.")


def _check_amount(fields: FieldTree, found: Findings) -> None:
    amount = text_field(fields, "54")
    if not amount:  # absent, or empty (reported as field_empty)
        return
    if parse_amount(amount) is None:
        found.error(
            "amount_invalid",
            "54",
            f"The amount {amount!r} is not a positive number with at most 2 decimals and 13 "
            "characters.",
        )
    elif not _CANONICAL_AMOUNT.fullmatch(amount):
        found.warn(
            "amount_not_canonical",
            "54",
            f"The amount {amount!r} lacks the form 123.45: a bank debited R$1.98 for '198'.",
        )


def _check_merchant(fields: FieldTree, found: Findings) -> None:
    for tag, limit, code in (("59", NAME_MAX, "name_too_long"), ("60", CITY_MAX, "city_too_long")):
        value = text_field(fields, tag)
        if value is None:
            continue
        if len(value) > limit:
            found.error(
                code, tag, f"Field {tag} has {len(value)} characters; the limit is {limit}."
            )
        _check_ascii(value, tag, found)


def _check_txid(fields: FieldTree, found: Findings) -> None:
    txid = (template(fields, "62") or {}).get("05")
    if txid is None:
        return
    if len(txid) > TXID_MAX:
        found.error("txid_too_long", "62.05", f"The txid has {len(txid)} characters; at most 25.")
    if txid != "***" and not _ALPHANUMERIC.fullmatch(txid):
        found.warn("txid_invalid_chars", "62.05", "The txid should be *** or letters and digits.")
    _check_ascii(txid, "62.05", found)


def _check_ascii(value: str, path: str, found: Findings) -> None:
    if not _PRINTABLE.fullmatch(value):
        found.warn("non_ascii", path, f"Field {path} has characters outside printable ASCII.")
