"""The leader's lease loop: checkpoint renewed leases, then turn lapsed
ones into replicated `Expire` and `RevokeLease` commands.

Every node hides an instance from reads as soon as its lease ends (the
registry compares with ``now``); removing it, and so firing its callbacks, is
the leader's decision, replicated through the log so that every node removes
the same instance at the same log position (DESIGN.md, "Decisions").  What
the `Lessor` holds renewed is checkpointed first and never expired.
"""

from __future__ import annotations

from typing import Optional, Protocol, cast

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from skydns.clock import Scheduler as Clock
from skydns.cluster import NotLeader
from skydns.commands import Checkpoint, Command, Expire, RevokeLease
from skydns.leases.lessor import Lessor
from skydns.leases.renewal import INSTANCE, LEASE
from skydns.registry import Applied, Registry

#: Most UUIDs in one Expire command: 500 UUIDs of at most 63 characters keep
#: the encoded command well under AMP's 65,535-byte value limit.
MAX_BATCH = 500


class Cluster(Protocol):
    """The part of `skydns.cluster.ICluster` used here."""

    registry: Registry

    def propose(self, command: Command) -> Deferred[Applied]: ...

    def is_leader(self) -> bool: ...


class LeaseKeeper(Service):
    """Every ``interval`` seconds, on the leader, propose `Expire` for the
    leases that ran out.

    One sweep runs at a time: the next tick waits until every batch of the
    previous one is applied or has failed.  Failures are logged and the
    loop carries on.
    """

    log = Logger()

    def __init__(
        self,
        cluster: Cluster,
        clock: Clock,
        interval: float = 0.5,
        batch: int = MAX_BATCH,
        timeout: float = 10.0,
        lessor: Optional[Lessor] = None,
        checkpoints: int = 4,
    ) -> None:
        """At most ``checkpoints`` Checkpoint commands of ``batch`` ends go
        in one sweep: the log's share of renewals is bounded whatever their rate."""
        self.cluster = cluster
        self.lessor = lessor
        self.checkpoints = checkpoints
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.timeout = timeout
        self._loop: Optional[LoopingCall] = None
        self._done: Optional[Deferred[LoopingCall]] = None
        self._sweeping: Optional[Deferred[None]] = None
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        loop = self._loop = LoopingCall(self.sweep)
        loop.clock = cast(IReactorTime, self.clock)
        done = self._done = loop.start(self.interval, now=False)
        done.addErrback(lambda f: self.log.failure("lease loop stopped", f))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        done = self._done
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = self._done = None
        if self._sweeping is not None:
            self._sweeping.cancel()
        result: Deferred[None] = Deferred()
        if done is None:
            result.callback(None)
        else:
            done.addBoth(lambda _: result.callback(None))
        return result

    def sweep(self) -> Deferred[None]:
        """Checkpoint the renewed ends that are due, then expire what ran
        out, in batches (one tick's work).

        Never fails: errors are logged.  Exposed for tests and for a caller
        that wants an immediate sweep.
        """
        if self._sweeping is not None:
            # A sweep is under way; its caller waits on that one.
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        sweeping = self._sweeping = Deferred.fromCoroutine(self._sweep())

        def finished(result: object) -> None:
            self._sweeping = None

        sweeping.addBoth(finished)
        return sweeping

    async def _sweep(self) -> None:
        try:
            if not self.cluster.is_leader():
                return
            now = self.clock.seconds()
            lessor = self.lessor
            if lessor is not None:
                await self._checkpoint(lessor, now)
                if not lessor.may_expire(now):
                    return  # a new leader waits for the renewals the old one took
            registry = self.cluster.registry
            uuids = registry.expired(now)
            leases = registry.lapsed_leases(now)
            if lessor is not None:
                uuids = [u for u in uuids if not lessor.holds(INSTANCE, u)]
                leases = [e for e in leases if not lessor.holds(LEASE, e)]
            for start in range(0, len(uuids), self.batch):
                await self._apply(Expire(tuple(uuids[start : start + self.batch]), now))
            for start in range(0, len(leases), self.batch):
                chunk = tuple(leases[start : start + self.batch])
                await self._apply(RevokeLease(chunk, now, lapsed=True))
        except NotLeader:
            self.log.info("lost leadership while expiring leases")
        except (TimeoutError, defer.TimeoutError):
            self.log.warn("the cluster did not commit a lease checkpoint or expiry in time; "
                          "trying again at the next sweep")  # fmt: skip
        except _Deposed:
            pass
        except CancelledError:
            if not self._stopping:
                self.log.failure("expiring leases was cancelled")
        except Exception:
            self.log.failure("expiring leases failed")

    async def _checkpoint(self, lessor: Lessor, now: float) -> None:
        """Record the renewed ends that are due, earliest first."""
        leases, instances = lessor.due(now, self.checkpoints * self.batch)
        while leases or instances:
            some_leases, leases = leases[: self.batch], leases[self.batch :]
            room = self.batch - len(some_leases)
            some_instances, instances = instances[:room], instances[room:]
            await self._apply(Checkpoint(tuple(some_leases), tuple(some_instances), now))

    async def _apply(self, command: Command) -> Applied:
        """Propose ``command`` and wait for it; `_Deposed` if this node no
        longer leads."""
        if not self.cluster.is_leader():
            raise _Deposed()
        proposal = self.cluster.propose(command)
        proposal.addTimeout(self.timeout, cast(IReactorTime, self.clock))
        applied = await proposal
        self.log.debug("applied {kind}: {removed} removed", kind=type(command).__name__,
                       removed=len(applied.removals))  # fmt: skip
        return applied


class _Deposed(Exception):
    """This node stopped leading in the middle of a sweep."""
