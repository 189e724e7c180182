"""Reading untrusted JSON (request bodies, socket messages) with its nesting bounded.

Python's parser recurses once per level: a 64 KiB body of `[[[[...` overflows the stack
(RecursionError, a 500), and a merely deep value makes every later walker of it (pydantic,
logging, re-encoding) recurse as deep. No pixweb message nests more than a few levels, so
anything deeper than MAX_DEPTH is refused before the parser sees it.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32

# A JSON string, escapes included, to the end of the text if unterminated: removed whole, so
# brackets inside strings never count. Every match runs to its end (no backtracking) and
# matches never overlap, so the scan is linear whatever the input.
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_DECODER = json.JSONDecoder()


class TooDeepError(ValueError):
    """A JSON document nests arrays and objects deeper than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raise TooDeepError if `text` opens more than `limit` arrays/objects at once."""
    if text.count("[") + text.count("{") <= limit:  # the common case: two C-speed passes
        return
    # Invalid JSON may count wrong here; the parser refuses it anyway, where it goes wrong.
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit:
        raise TooDeepError(limit)


def loads(
    text: str | bytes, *, max_depth: int = MAX_DEPTH, decoder: json.JSONDecoder = _DECODER
) -> Any:
    """`json.loads` for untrusted input: TooDeepError (a ValueError) past `max_depth`.

    Pass a `decoder` made once (`json.JSONDecoder(parse_float=...)`): `json.loads` with
    options builds a new one on every call.
    """
    if not isinstance(text, str):  # decoded here as json.loads would, so it is done once
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    check_depth(text, max_depth)
    try:
        return decoder.decode(text)
    except RecursionError as exc:  # not reachable within the limit; kept as the last guard
        raise TooDeepError(max_depth) from exc
