"""Reading JSON that arrives from outside the process: HTTP bodies, log
entries, AMP answers and configuration entries.

Two rules beyond RFC 8259's grammar: ``NaN``, ``Infinity`` and
``-Infinity``, which Python's decoder accepts, are refused (no peer of ours
writes them, and a non-finite number poisons arithmetic downstream); and
nesting is bounded by `MAX_DEPTH` before anything is decoded.  Python's own
bound on nesting is its recursion limit, which depends on how deep the
stack already is, so the same log entry could decode on one node and fail
on another; an explicit bound decides identically everywhere, and turns
what would be a ``RecursionError`` into a clear ``ValueError``.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The deepest nesting of arrays and objects accepted (SkyDNS's own JSON is
#: at most three levels deep).
MAX_DEPTH = 32

_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: One decoder for every call (``json.loads`` with an option builds one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def nesting(text: str) -> int:
    """How deeply the arrays and objects of ``text`` nest (brackets inside
    strings do not count; an unbalanced text counts what it opens)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif token in "]}":
            depth -= 1
    return deepest


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``data`` (UTF-8 when bytes) decoded; `ValueError` when it is not
    JSON, holds a non-finite constant, or nests deeper than ``max_depth``."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    # Cheap when it cannot be deep: fewer brackets than the bound.
    if text.count("[") + text.count("{") > max_depth and nesting(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return _DECODER.decode(text)
