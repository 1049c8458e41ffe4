"""The seam between the API and whatever makes writes durable and agreed.

The HTTP API and the lease keeper only ever call `ICluster.propose`.  A
`LocalCluster` applies commands straight to the registry (tests, and a node
with no log); the Raft node (``skydns.raft.node.driver``) implements the same
interface by replicating the command first.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from zope.interface import Attribute, Interface, implementer

from skydns.commands import Command, decode, encode
from skydns.registry import Applied, Registry

#: Called after every applied command: (command, result, live).  ``live`` is
#: true when this node is the leader and the entry is applied for the first
#: time in this process (not replayed from disk): side effects such as HTTP
#: callbacks happen only then.
ApplyListener = Callable[[Command, Applied, bool], None]


class NotLeader(Exception):
    """This node cannot take the request now (no leader known, or lost it)."""


class ICluster(Interface):
    """Agreement on the registry's commands."""

    registry: Registry = Attribute("The local replica of the registry (read only).")

    def propose(command: Command) -> "Deferred[Applied]":
        """Replicate ``command``; fire with its result once applied locally.

        Errbacks with `NotLeader` (or a timeout) if it cannot be committed.
        """

    def read_barrier() -> "Deferred[None]":
        """Fire once the local replica reflects every write committed before
        the call (ReadIndex): reads after it are linearizable."""

    def is_leader() -> bool:
        """Whether this node currently leads (and so expires leases)."""

    def is_ready() -> bool:
        """Whether this node knows a leader and has applied up to its commit."""

    def status() -> dict[str, Any]:
        """The JSON object served at ``GET /skydns/cluster``."""

    def add_apply_listener(listener: ApplyListener) -> None:
        """Call ``listener`` after each command is applied."""


@implementer(ICluster)
class LocalCluster:
    """A one-node "cluster" that applies each command at once, in memory.

    Each command still goes through `encode`/`decode`, so what the registry
    sees is exactly what a replicated log would give it.
    """

    def __init__(self, registry: Registry, node_id: str = "local") -> None:
        self.registry = registry
        self.node_id = node_id
        self._listeners: list[ApplyListener] = []
        self._index = 0

    def propose(self, command: Command) -> "Deferred[Applied]":
        replayed = decode(encode(command))
        result = self.registry.apply(replayed)
        self._index += 1
        for listener in list(self._listeners):
            listener(replayed, result, True)
        return succeed(result)

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
