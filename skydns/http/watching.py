"""The HTTP side of watching (SPEC.md §6): ``?index=N&wait=D`` on the list
route (a long poll), and ``GET /skydns/watch?query=P``, a Server-Sent Events
stream.  The hub and the streams are `skydns.watch`.

``wait`` is a number of seconds or a duration (``500ms``, ``30s``, ``10m``),
30 s by default and at most 10 minutes, lengthened by up to 1/16 at random
so that many clients that started together do not all come back together.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from skydns.http.responses import APIError
from skydns.patterns import Pattern
from skydns.watch.hub import WatchHub
from skydns.watch.streams import EventStream, wait_for_change

DEFAULT_WAIT = 30.0
MAX_WAIT = 600.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m)?\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_wait(text: Optional[str]) -> float:
    """``?wait=``: seconds, at most `MAX_WAIT`; 400 for anything else."""
    if text is None:
        return DEFAULT_WAIT
    match = _DURATION.match(text.strip())
    if match is None:
        raise APIError(400, "wait: must be a duration such as 30s, 500ms or 5m", field="wait")
    return min(float(match.group(1)) * _UNITS[match.group(2)], MAX_WAIT)


def parse_index(text: str) -> int:
    """``?index=`` (or ``Last-Event-ID``): a whole number; 400 otherwise."""
    if not text.strip().isdigit():
        raise APIError(400, "index: must be a whole number (an X-SkyDNS-Index)", field="index")
    return int(text)


async def long_poll(hub: WatchHub, pattern: Pattern, index: str, wait: Optional[str],
                    clock: IReactorTime, rng: random.Random = random.Random()) -> None:  # noqa: B008
    """Hold the request until ``pattern``'s answer set differs from the
    one at ``index``, or for ``wait`` (jittered)."""
    at = parse_index(index)
    seconds = parse_wait(wait)
    await wait_for_change(hub, pattern, at, seconds + rng.uniform(0, seconds / 16), clock)


def serve_watch(request: Request, hub: WatchHub, pattern: Pattern, clock: IReactorTime,
                counted: Optional[Callable[[str], None]] = None) -> Deferred[bytes]:  # fmt: skip
    """Stream ``pattern``'s changes to ``request`` until its client goes
    away (or is cut off for not reading): the Deferred fires then (and
    cancelling it ends the stream).  A plain function, not a coroutine: the
    connection may be lost while the first events are written."""
    last = request.getHeader(b"Last-Event-ID")
    resume = None
    if last is not None:
        try:
            resume = parse_index(last.decode("ascii", "replace"))
        except APIError:
            resume = None  # not one of ours: start over with the whole set
    request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-cache")
    request.setHeader(b"X-Accel-Buffering", b"no")  # nginx: do not hold events back
    request.setHeader(b"X-SkyDNS-Index", str(hub.index).encode("ascii"))
    transport: Any = request.transport
    stream = EventStream(pattern, hub.registry, clock, request.write,
                         lambda: _abort(transport), counted)  # fmt: skip
    request.registerProducer(stream, True)
    hub.add(stream)

    def ended(result: object) -> bytes:
        hub.remove(stream)
        stream.stop()
        if request.producer is not None:
            if request.channel is not None:
                request.unregisterProducer()
            else:
                request.producer = None
        return b""

    done: Deferred[bytes] = stream.finished.addBoth(ended)
    request.write(b": watching\n\n")  # the headers go out at once
    stream.start(None if resume is None else hub.since(pattern, resume), hub.index)
    return done


def _abort(transport: Any) -> None:
    if transport is not None:
        getattr(transport, "abortConnection", transport.loseConnection)()
