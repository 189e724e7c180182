"""Checks every writer's input passes before it reaches the database, whoever the writer is
(the API, the pages, the sockets, the CLI): the same refusal on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from pixweb.errors import ControlCharacterError

# Ids are INT (merchants, accounts) or BIGINT (movements, notifications): a larger number
# overflows the query (a 500 on PostgreSQL) instead of simply matching nothing, so it is
# refused before any query is built.
INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
_ID = re.compile(r"[1-9][0-9]{0,18}")  # ASCII digits: int() also reads " 7", "1_0", "٣"


def checked_id(value: object, maximum: int) -> int | None:
    """`value` if it is an int (not a bool) from 1 to `maximum`, else None."""
    if type(value) is int and 1 <= value <= maximum:
        return value
    return None


def parse_id(text: object, maximum: int) -> int | None:
    """The id written as `text` (plain ASCII decimal, as a token's subject carries it) if
    it is from 1 to `maximum`, else None: non-strings, signs, blanks, leading zeros..."""
    if isinstance(text, str) and _ID.fullmatch(text):
        return checked_id(int(text), maximum)
    return None


# Unicode's control characters (C0, DEL, C1: NUL makes PostgreSQL fail the statement while
# SQLite stores it) and unpaired surrogates (no UTF-8 database or socket can carry them).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_MESSAGE = "must not contain control characters"


def has_forbidden(text: str) -> bool:
    """Whether `text` holds a control character or an unpaired surrogate."""
    return _FORBIDDEN.search(text) is not None


def shown(text: str) -> str:
    """`text` fit to echo back (in a message, a log): each forbidden character becomes U+FFFD."""
    return _FORBIDDEN.sub("\ufffd", text)


def check_text(field: str, value: str) -> str:
    """`value`, or ControlCharacterError naming `field` when it holds a control character
    or an unpaired surrogate: the check every text a service stores or looks up passes."""
    if _FORBIDDEN.search(value):
        raise ControlCharacterError(f"{field} {CONTROL_MESSAGE}", fields={field: CONTROL_MESSAGE})
    return value
