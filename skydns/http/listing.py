"""``GET /skydns/services/``: the list of instances, a page at a time when the
client asks (``?limit=N&after=UUID``), and produced a slice at a time with a
reactor turn between slices, so listing 100,000 instances never holds up the
DNS answers and requests the node serves meanwhile (issue 17)."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.web.server import Request

from skydns.http.responses import JSON_TYPE, APIError
from skydns.presentation import service_json
from skydns.registry import Instance

#: Instances turned into JSON in one reactor turn (about a millisecond).
SLICE = 250
#: The most a page may hold.
MAX_LIMIT = 100_000

_ENCODER = json.JSONEncoder(sort_keys=True)


def page_arguments(limit: str | None, after: str | None) -> tuple[int | None, str]:
    """``?limit`` (1 to `MAX_LIMIT`, None for all) and ``?after`` (a UUID,
    "" for the start); a 400 `APIError` naming a bad one."""
    count = None
    if limit is not None:
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise APIError(400, f"limit: must be an integer from 1 to {MAX_LIMIT}", field="limit")
        count = int(limit)
    return count, (after or "").lower()


def page(
    instances: Sequence[Instance], limit: int | None, after: str
) -> tuple[Sequence[Instance], str | None]:
    """The instances (in UUID order) after ``after``, at most ``limit``, and
    the UUID to ask ``after`` for the next page (None when this is the last)."""
    if after:
        keys = [i.service.uuid.lower() for i in instances]
        instances = instances[bisect.bisect_right(keys, after) :]
    if limit is None or len(instances) <= limit:
        return instances, None
    chosen = instances[:limit]
    return chosen, chosen[-1].service.uuid


async def render_list(
    request: Request, instances: Sequence[Instance], now: float, clock: IReactorTime
) -> bytes:
    """The body ``render_json(request, 200, [service_json(i, now) ...])``
    gives, byte for byte.  A list of up to `SLICE` instances is returned
    whole; a longer one is written to ``request`` a slice per reactor turn
    (chunked transfer encoding) and the rest returned, so no turn holds the
    reactor for more than about a millisecond, nor joins megabytes."""
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", JSON_TYPE)
    if len(instances) <= SLICE:
        data = _slice(instances, now, "[") + b"]\n"
        request.setHeader(b"Content-Length", b"%d" % len(data))
        return data
    for start in range(0, len(instances), SLICE):
        if start:
            await deferLater(clock, 0, lambda: None)
            if request.finished or getattr(request, "_disconnected", False):
                return b""  # the client went away
        request.write(_slice(instances[start : start + SLICE], now, ", " if start else "["))
    return b"]\n"


def _slice(instances: Sequence[Instance], now: float, before: str) -> bytes:
    """``before`` and the JSON of these instances as items of the list
    (the encoder's own separators, so the whole is one encoding's text)."""
    text = _ENCODER.encode([service_json(i, now) for i in instances])
    return (before + text[1:-1]).encode("utf-8")


__all__ = ["MAX_LIMIT", "SLICE", "page", "page_arguments", "render_list"]
