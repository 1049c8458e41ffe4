"""The seam between the API and whatever makes writes durable and agreed.

The HTTP API and the lease keeper only ever call `ICluster.propose`; the
Raft store (`skydns.store.raft`) implements it by replicating the command
first, the etcd store (`skydns.store.etcd`) by writing it to etcd, and
`skydns.testing.LocalCluster` by applying it at once in memory.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from skydns.commands import Command
from skydns.leases.renewal import Renewal
from skydns.registry import Applied, Registry

#: Called after every applied command: (command, result, live).  ``live`` is
#: true when this node is the leader and the entry is applied for the first
#: time in this process (not replayed from disk): side effects such as HTTP
#: callbacks happen only then.
ApplyListener = Callable[[Command, Applied, bool], None]


class NotLeader(Exception):
    """This node cannot take the request now (no leader known, or lost it)."""


class StoreUnavailable(NotLeader):
    """The store (etcd, with ``--store etcd``) cannot take the request now;
    the message says why."""


class ICluster(Interface):
    """Agreement on the registry's commands."""

    registry: Registry = Attribute("The local replica of the registry (read only).")

    def propose(command: Command) -> "Deferred[Applied]":
        """Replicate ``command``; fire with its result once applied locally.

        Errbacks with `NotLeader` (or a timeout) if it cannot be committed.
        """

    def renew(renewal: Renewal) -> "Deferred[Optional[int]]":
        """Renew a lease, or an instance living by its own TTL, without a log
        entry (SPEC.md §7): fire with the TTL renewed for, None if it is
        gone, or `skydns.leases.renewal.NEEDS_LOG` if it takes a proposal
        (a new TTL).  Errbacks `NotLeader` if no leader takes it now."""

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
