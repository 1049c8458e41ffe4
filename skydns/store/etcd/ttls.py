"""How long each etcd lease has left, as the local copy believes.

A renewal is an etcd keep-alive: it changes no key, so a watch does not see
it.  Each node therefore asks etcd (LeaseTimeToLive, a read) for the leases
whose end it recorded is near, and records the later end as a local
`Checkpoint`: DNS TTLs and reads count down to an end etcd vouched for,
never past it, and an instance renewed through any node stays in answers.
The rate is bounded; a SkyDNS lease shared by many instances costs one
question for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from skydns.commands import Checkpoint
from skydns.registry import Registry
from skydns.store.etcd.client import EtcdClient

log = Logger()

#: Seconds between looks for ends coming near.
INTERVAL = 1.0
#: How near an end must come before etcd is asked about it (seconds).
WINDOW = 5.0


class TTLTracker:
    """The etcd leases of ``registry``'s leases and own-TTL instances."""

    def __init__(self, client: EtcdClient, registry: Registry, clock: IReactorTime,
                 per_second: int = 2000, concurrency: int = 16) -> None:  # fmt: skip
        self.client = client
        self.registry = registry
        self.clock = clock
        self.per_second = per_second
        #: name (lease ID or lower-case UUID) -> (etcd lease, kind, TTL)
        self._tracked: dict[str, tuple[int, str, int]] = {}
        self._limit = DeferredSemaphore(concurrency)
        self._loop: Optional[LoopingCall] = None
        self._busy = False
        #: TimeToLive questions asked (for tests and metrics).
        self.asked = 0

    def __len__(self) -> int:
        return len(self._tracked)

    def track(self, number: int, kind: str, name: str, ttl: int) -> None:
        self._tracked[name.lower() if kind == "instance" else name] = (number, kind, ttl)

    def untrack(self, name: str) -> None:
        self._tracked.pop(name, None)
        self._tracked.pop(name.lower(), None)

    def forget(self) -> None:
        self._tracked.clear()

    def number(self, name: str) -> int:
        """The etcd lease of an own-TTL instance (lower-case UUID); 0 if none."""
        tracked = self._tracked.get(name)
        return tracked[0] if tracked is not None else 0

    def start(self) -> None:
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(INTERVAL, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    async def poll(self, numbers: Iterable[int]) -> dict[int, Optional[float]]:
        """Each etcd lease's end (None: gone), by the time it was asked."""

        async def one(number: int) -> tuple[int, Optional[float]]:
            asked = self.clock.seconds()
            self.asked += 1
            left = await self.client.time_to_live(number)
            return number, (asked + left if left >= 0 else None)

        pending = [self._limit.run(one, number) for number in numbers]
        results = await defer.gatherResults(pending, consumeErrors=True)
        return dict(results)

    def record(self, kind: str, name: str, end: float) -> None:
        """Record ``end`` for a lease or instance (after a renewal or a poll)."""
        now = self.clock.seconds()
        if kind == "lease":
            self.registry.apply(Checkpoint(((name, end),), (), now))
        else:
            self.registry.apply(Checkpoint((), ((name, end),), now))

    def due(self, now: float) -> list[str]:
        """The names whose recorded end is within `WINDOW` seconds (a third
        of their TTL plus a second, if less), soonest first, at most
        `per_second` of them: each is asked about about once per TTL less
        the window, with several ticks to get its answer in."""
        ends = []
        for name, (_, kind, ttl) in self._tracked.items():
            if kind == "lease":
                lease = self.registry.lease_held(name)
                end = lease.expires if lease is not None else None
            else:
                instance = self.registry.held(name)
                end = instance.expires if instance is not None else None
            if end is not None and end - now < min(ttl / 3 + 1, WINDOW):
                ends.append((end, name))
        ends.sort()
        return [name for _, name in ends[: self.per_second]]

    def tick(self) -> Optional[Deferred[None]]:
        if self._busy:
            return None
        names = self.due(self.clock.seconds())
        if not names:
            return None
        self._busy = True
        return Deferred.fromCoroutine(self._refresh(names))

    async def _refresh(self, names: list[str]) -> None:
        try:
            wanted = {name: self._tracked[name] for name in names if name in self._tracked}
            ends = await self.poll({number for number, _, _ in wanted.values()})
            for name, (number, kind, _) in wanted.items():
                end = ends.get(number)
                if end is not None and self._tracked.get(name, (0,))[0] == number:
                    self.record(kind, name, end)
        except Exception as e:
            log.debug("lease times not refreshed: {e}", e=e)
        finally:
            self._busy = False
