"""What SkyDNS needs of time, as typing protocols.

Everything is handed a clock (the reactor in production, ``task.Clock`` in
tests).  These protocols name the part of `IReactorTime` a module uses, for
mypy, which does not treat zope interfaces as protocols.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.internet.interfaces import IDelayedCall


class Clock(Protocol):
    """Reads the time."""

    def seconds(self) -> float: ...


class Scheduler(Clock, Protocol):
    """Reads the time and schedules calls."""

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> IDelayedCall: ...
