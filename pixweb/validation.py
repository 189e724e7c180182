"""Checks every writer's input passes before it reaches the database, whoever the writer is
(the API, the pages, the sockets, the CLI): the same refusal on SQLite and PostgreSQL."""

from __future__ import annotations

import re

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
