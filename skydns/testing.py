"""In-memory stand-ins for testing code that talks to SkyDNS (docs/client.md):
serve the real HTTP API over `LocalCluster` with treq's ``StubTreq``, no
process, no network, no disk."""

from __future__ import annotations

from typing import Any, Optional, cast

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from skydns.clock import Clock
from skydns.cluster import ApplyListener, ICluster
from skydns.commands import Checkpoint, Command, decode, encode
from skydns.leases.lessor import Lessor
from skydns.leases.renewal import Renewal
from skydns.registry import Applied, Registry


@implementer(ICluster)
class LocalCluster:
    """A one-node "cluster" that applies each command at once, in memory.

    Each command still goes through `encode`/`decode`, so what the registry
    sees is exactly what a replicated log would give it.
    """

    def __init__(self, registry: Registry, node_id: str = "local",
                 clock: Optional[Clock] = None, record_renewals: bool = True) -> None:  # fmt: skip
        """``clock`` times lease renewals (the reactor by default).  With
        ``record_renewals`` false, renewals stay in the lessor's memory, as
        on a Raft leader, until a `skydns.leases.expiry.LeaseKeeper` given
        ``lessor`` checkpoints them."""
        self.record_renewals = record_renewals
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.registry = registry
        self.node_id = node_id
        self.lessor = Lessor(registry, cast(Clock, clock), lambda: 1, grace=0.0)
        self._listeners: list[ApplyListener] = []
        self._index = 0

    def propose(self, command: Command) -> "Deferred[Applied]":
        replayed = decode(encode(command))
        result = self.registry.apply(replayed)
        self._index += 1
        for listener in list(self._listeners):
            listener(replayed, result, True)
        return succeed(result)

    def renew(self, renewal: Renewal) -> "Deferred[Optional[int]]":
        """Renewed at once: with no log to spare, the new end is recorded
        by a `Checkpoint` straight away (no lease loop needed)."""
        answer = self.lessor.renew([renewal])[0]
        if self.record_renewals and answer is not None and answer > 0:
            leases, instances = self.lessor.due(self.lessor.clock.seconds(), 2, everything=True)
            self.propose(Checkpoint(tuple(leases), tuple(instances),
                                    self.lessor.clock.seconds()))  # fmt: skip
        return succeed(answer)

    def read_barrier(self) -> "Deferred[None]":
        return succeed(None)

    def is_leader(self) -> bool:
        return True

    def is_ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "leader": self.node_id,
            "term": 1,
            "commit_index": self._index,
            "applied_index": self._index,
            "members": [{"id": self.node_id, "address": None, "role": "leader"}],
        }

    def add_apply_listener(self, listener: ApplyListener) -> None:
        self._listeners.append(listener)
