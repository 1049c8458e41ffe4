"""The simulation's time: one deterministic event queue for the whole world.

`SimClock` is an `IReactorTime` whose calls run one at a time, in time order
(ties in the order they were made), so the world can check its invariants
after every event.  Each simulated process sees it through a `HostClock`:
a crash cancels everything that process had scheduled, and a stalled
(CPU-starved) process runs nothing until the stall ends — then, as a real
reactor does, its timers before the I/O that arrived meanwhile.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

#: Added to the sequence number of I/O events, so that when a stalled host
#: wakes its timers run first (as in a reactor: timers, then socket reads).
_IO = 1 << 40


@implementer(IReactorTime)
class SimClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, DelayedCall, HostClock | None]] = []
        self._seq = 0
        self.events = 0

    def seconds(self) -> float:
        return self.now

    def callLater(  # noqa: N802 - IReactorTime's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        return self.schedule(delay, callable, args, kw, None, io=False)

    def schedule(
        self, delay: float, f: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any],
        host: HostClock | None, io: bool,
    ) -> DelayedCall:  # fmt: skip
        # A positive delay too small to move the time (a LoopingCall's
        # float remainder on a host whose clock is offset) is a nanosecond:
        # real time moves on, and the world must too.
        delay = 0.0 if delay <= 0 else max(delay, 1e-9)
        call = DelayedCall(
            self.now + delay, f, args, kw, self._cancelled,
            lambda c: self._push(c, host, io), seconds=self.seconds,
        )  # fmt: skip
        self._push(call, host, io)
        return call

    def _push(self, call: DelayedCall, host: HostClock | None, io: bool) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (call.getTime(), self._seq + (_IO if io else 0), call, host))

    def _cancelled(self, call: DelayedCall) -> None:
        pass  # skipped when popped

    def getDelayedCalls(self) -> list[DelayedCall]:  # noqa: N802
        return [c for _, _, c, _ in self._heap if not (c.cancelled or c.called)]

    def next_time(self) -> float | None:
        while self._heap:
            when, _, call, _ = self._heap[0]
            if call.cancelled or call.called or when != call.getTime():
                heapq.heappop(self._heap)
                continue
            return when
        return None

    def step(self) -> bool:
        """Run the next event; False if there is none."""
        while self._heap:
            when, seq, call, host = heapq.heappop(self._heap)
            if call.cancelled or call.called or when != call.getTime():
                continue
            if host is not None:
                if host.dead:
                    continue
                if host.stalled_until > when:
                    # Put it back at the end of the stall, keeping its order.
                    call.time = host.stalled_until
                    heapq.heappush(self._heap, (call.time, seq, call, host))
                    continue
                host.calls.discard(call)
            self.now = max(self.now, when)
            call.called = 1
            self.events += 1
            call.func(*call.args, **call.kw)
            return True
        return False


@implementer(IReactorTime)
class HostClock:
    """One simulated process's view of the `SimClock`."""

    def __init__(self, clock: SimClock, offset: float = 0.0) -> None:
        self.clock = clock
        #: How far this process's wall clock is off the world's time.
        self.offset = offset
        self.dead = False
        self.stalled_until = 0.0
        self.calls: set[DelayedCall] = set()

    def seconds(self) -> float:
        return self.clock.now + self.offset

    def callLater(  # noqa: N802 - IReactorTime's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        call = self.clock.schedule(delay, callable, args, kw, self, io=False)
        self.calls.add(call)
        return call

    def io(self, delay: float, f: Callable[..., Any], *args: Any) -> None:
        """Something arriving from outside (a message, an answer) after ``delay``."""
        call = self.clock.schedule(delay, f, args, {}, self, io=True)
        self.calls.add(call)

    def getDelayedCalls(self) -> list[DelayedCall]:  # noqa: N802
        return [c for c in self.calls if not (c.cancelled or c.called)]

    def kill(self) -> None:
        """The process is gone: nothing it scheduled will run."""
        self.dead = True
        for call in list(self.calls):
            if not (call.cancelled or call.called):
                call.cancel()
        self.calls.clear()
