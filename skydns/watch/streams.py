"""The two ways a watcher hears of changes: a long poll that returns at the
first change after an index, and a Server-Sent Events stream of every
change (SPEC.md §6).

A stream never lets a slow reader grow the server's memory: it is a push
producer of its HTTP connection, and while the connection's buffer is full
its events wait in a queue of at most `MAX_QUEUED` events; one more, and the
stream is cut off (the client reconnects with ``Last-Event-ID`` and gets what
it missed, or the whole set).  Comments every `HEARTBEAT` seconds keep
proxies from closing an idle stream.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from skydns.names import Service
from skydns.patterns import Pattern
from skydns.presentation import service_json
from skydns.registry import Instance, Registry
from skydns.watch.changes import Delta
from skydns.watch.hub import WatchHub

#: Seconds between two comments on an idle stream.
HEARTBEAT = 15.0
#: Events a stream whose client does not read may hold before it is cut off.
MAX_QUEUED = 1000

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


class _Poll:
    """A long poll's watcher: fires ``done`` at the first change."""

    def __init__(self, pattern: Pattern) -> None:
        self.pattern = pattern
        self.done: Deferred[None] = Deferred()

    def changed(self, delta: Delta) -> None:
        if not self.done.called:
            self.done.callback(None)

    def reset(self, index: int) -> None:
        if not self.done.called:
            self.done.callback(None)


async def wait_for_change(hub: WatchHub, pattern: Pattern, index: int, wait: float,
                          clock: IReactorTime) -> None:  # fmt: skip
    """Return once ``pattern``'s answer set differs from the one at
    ``index`` (at once if it already does, or if ``index`` cannot be
    compared: too old, from the future, before a snapshot), or after ``wait``."""
    missed = hub.since(pattern, index)
    if missed is None or missed or wait <= 0:
        return  # (``wait=0``: the answer as it is now, not after a timer)
    poll = _Poll(pattern)
    hub.add(poll)
    try:
        poll.done.addTimeout(wait, clock)
        try:
            await poll.done
        except (TimeoutError, defer.TimeoutError):
            pass  # no change within the wait: the answer as it is
    finally:
        hub.remove(poll)


def _event(kind: str, index: int, data: dict[str, Any]) -> bytes:
    return f"id: {index}\nevent: {kind}\ndata: {_ENCODER.encode(data)}\n\n".encode()


@implementer(IPushProducer)
class EventStream:
    """One client's Server-Sent Events stream of ``pattern``'s changes.

    ``write`` sends bytes to the client and ``cut`` closes its connection;
    ``finished`` fires when the stream ends (cut, or the client went away).
    """

    def __init__(self, pattern: Pattern, registry: Registry, clock: IReactorTime,
                 write: Callable[[bytes], None], cut: Callable[[], None],
                 counted: Optional[Callable[[str], None]] = None) -> None:  # fmt: skip
        self.pattern = pattern
        self.registry = registry
        self.clock = clock
        self._write = write
        self._cut = cut
        self._counted = counted or (lambda what: None)
        self._queue: list[bytes] = []
        self._paused = False
        self._heartbeat: Optional[IDelayedCall] = None
        self.finished: Deferred[None] = Deferred()

    # What the hub calls.

    def changed(self, delta: Delta) -> None:
        now = self.clock.seconds()
        self._send(_event("change", delta.index, {
            "index": delta.index,
            "added": [self._json(s, now) for s in delta.added],
            "changed": [self._json(s, now) for s in delta.changed],
            "removed": [self._json(s, now, gone=True) for s in delta.removed],
        }))  # fmt: skip

    def reset(self, index: int) -> None:
        """Send the whole answer set as it is now."""
        now = self.clock.seconds()
        found = self.registry.query(self.pattern.without_region(), now)
        self._send(_event("reset", index, {
            "index": index, "services": [service_json(i, now) for i in found],
        }))  # fmt: skip

    def start(self, deltas: Optional[list[Delta]], index: int) -> None:
        """The first events: what was missed since the client's last event,
        or (``deltas`` None) the whole set."""
        if deltas is None:
            self.reset(index)
        else:
            for delta in deltas:
                self.changed(delta)
        self._arm()

    # IPushProducer: the connection's buffer is full, or has room again.

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's name
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted's name
        self._paused = False
        while self._queue and not self._paused:  # a write may fill the buffer again
            self._write(self._queue.pop(0))

    def stopProducing(self) -> None:  # noqa: N802 - Twisted's name
        self.stop()

    def stop(self) -> None:
        """End the stream (the client went away, or was cut off)."""
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._heartbeat = None
        self._queue = []
        if not self.finished.called:
            self.finished.callback(None)

    def _send(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._counted("event")
        if not self._paused:
            self._write(data)
            return
        if len(self._queue) >= MAX_QUEUED:
            self._counted("dropped")
            self.stop()
            self._cut()
            return
        self._queue.append(data)

    def _json(self, service: Service, now: float, gone: bool = False) -> dict[str, Any]:
        """A service as the API shows it; a removed one with no lease left
        (TTL 0, Expires null), the same on every node."""
        if gone:
            return {**service_json(Instance(service, now), now), "TTL": 0, "Expires": None}
        held = self.registry.held(service.uuid)
        instance = held if held is not None and held.service == service else None
        return service_json(instance or Instance(service, now), now)

    def _arm(self) -> None:
        self._heartbeat = self.clock.callLater(HEARTBEAT, self._beat)

    def _beat(self) -> None:
        if self.finished.called:
            return
        if not self._paused:
            self._write(b": keepalive\n\n")
        self._arm()
