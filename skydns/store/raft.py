"""The registry on SkyDNS's own Raft: `RaftCluster` (the `ICluster` the API,
the lease keeper and the callbacks use) and `build_cluster`, which builds the
node from ``twistd skydns`` options (called by ``skydns.tap``).

With ``--peers`` the node is one voter of that cluster; without, it is a
one-voter cluster on the same path (durable log in the data dir, same Ready
loop), so a lone node's registrations survive kill -9 and restart too.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

import attrs
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.bodies import ValidationError
from skydns.clock import Scheduler
from skydns.cluster import ApplyListener, ICluster, NotLeader
from skydns.commands import Command, encode
from skydns.config import HostPort, Peer, parse_hostport
from skydns.gctune import long_lived
from skydns.leases.batcher import RenewalBatcher
from skydns.leases.lessor import Lessor, NotLeading
from skydns.leases.renewal import Renewal
from skydns.metrics import Metrics
from skydns.raft.net.auth import wrap_endpoints
from skydns.raft.net.droplog import RateLimitedLog
from skydns.raft.net.interface import BadProposal, NotLeaderHere, ProposalTooLarge
from skydns.raft.net.peers import AMPTransport
from skydns.raft.net.tls import RaftTLS, wrap_tls
from skydns.raft.node.driver import RaftNode
from skydns.raft.node.errors import Unavailable
from skydns.raft.node.join import JoinService, ask_over_amp
from skydns.raft.node.options import DEFAULT_OPTIONS, NodeOptions
from skydns.raft.node.snapshotter import STEP_PAUSE
from skydns.raft.storage.disk import DiskStorage
from skydns.registry import Applied, Registry
from skydns.store.machine import RegistryMachine

log = Logger()

#: Exit status of a node that stopped because its storage failed.
EXIT_STORAGE_FAILED = 70


@implementer(ICluster)
class RaftCluster:
    """`ICluster` over a `RaftNode` replicating a `RegistryMachine`."""

    def __init__(self, node: RaftNode, machine: RegistryMachine, clock: Scheduler,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.node = node
        self.machine = machine
        self.registry = machine.registry
        #: Lease deadlines while this node leads (term by term).
        election = node.options.election_tick * node.options.tick_interval
        self.lessor = Lessor(
            self.registry, clock, lambda: node.core.term if node.is_leader() else None,
            grace=2 * election, margin=6 * election, monotonic=monotonic,
        )  # fmt: skip
        node.leader_requests.serve(self._answer_renewals)
        self._renewals = RenewalBatcher(node.leader_requests.ask, clock)

    def renew(self, renewal: Renewal) -> Deferred[Optional[int]]:
        return self._renewals.renew(renewal)

    def _answer_renewals(self, data: bytes) -> Deferred[bytes]:
        """Renewals passed to this node as leader, in the transport's terms."""
        try:
            return succeed(self.lessor.answer(data))
        except NotLeading:
            return fail(NotLeaderHere(None))
        except ValueError as e:
            return fail(BadProposal(f"renewals: {e}"))

    def propose(self, command: Command) -> Deferred[Applied]:
        d: Deferred[Applied] = self.node.propose(encode(command))
        return d.addErrback(_translate)

    def read_barrier(self) -> Deferred[None]:
        return self.node.read_barrier().addErrback(_translate)

    def is_leader(self) -> bool:
        return self.node.is_leader()

    def is_ready(self) -> bool:
        return self.node.is_ready()

    def status(self) -> dict[str, Any]:
        return self.node.status()

    def add_apply_listener(self, listener: ApplyListener) -> None:
        self.machine.listeners.append(listener)

    def change_member(
        self, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        return self.node.change_member(op, member_id, address)


def _translate(failure: Failure) -> Failure:
    """The node's refusals as the API knows them."""
    if failure.check(Unavailable):
        return Failure(NotLeader(str(failure.value)))
    if failure.check(ProposalTooLarge):
        return Failure(ValidationError("body", str(failure.value)))
    return failure


def exit_now(reason: str) -> None:
    """Fail-stop: leave at once with a failure status.

    Stopping the reactor cleanly would run shutdown code that might still
    answer a client; after a failed fsync nothing may be acknowledged.
    """
    log.critical("stopping the process: {reason}", reason=reason)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STORAGE_FAILED)


def listen_address(description: str) -> str:
    """``HOST:PORT`` for a ``tcp:PORT:interface=HOST`` description (else itself)."""
    parts = description.split(":")
    if parts[0] in ("tcp", "tcp6") and len(parts) > 1:
        port = next((p.split("=", 1)[1] for p in parts[1:] if p.startswith("port=")), parts[1])
        host = next((p.split("=", 1)[1] for p in parts[1:] if p.startswith("interface=")),
                    "0.0.0.0")  # fmt: skip
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return description


def build_cluster(
    node_id: str,
    peers: Sequence[Peer] | None,
    raft_endpoint: str,
    data_dir: str,
    registry: Registry,
    reactor: Any,
    metrics: Metrics | None = None,
    fail_stop: Callable[[str], None] = exit_now,
    cluster_key: bytes | None = None,
    join: HostPort | None = None,
    raft_tls: RaftTLS | None = None,
    non_voter: bool = False,
    options: NodeOptions = DEFAULT_OPTIONS,
) -> tuple[RaftCluster, IService]:
    """A `RaftNode` over AMP and a `DiskStorage` in ``data_dir``, as a cluster
    and the service to start.

    Loading the data dir happens here, so a locked or corrupt data dir stops
    ``twistd`` before anything listens.  With ``cluster_key`` every Raft
    connection, both ways, must prove the key first (``skydns.raft.net.auth``);
    with ``raft_tls`` every one is mutual TLS (``skydns.raft.net.tls``).
    With ``join`` (and ``non_voter``) the node asks that member to add it
    (as a read replica).
    """
    if peers is None:
        addresses: dict[str, str | None] = {node_id: listen_address(raft_endpoint)}
        clients: dict[str, IStreamClientEndpoint] = {}
    else:
        addresses = {peer.node_id: str(peer.address) for peer in peers}
        clients = {
            peer.node_id: HostnameEndpoint(reactor, peer.address.host, peer.address.port)
            for peer in peers
            if peer.node_id != node_id
        }

    def cannot_listen(failure: Failure) -> None:
        fail_stop(f"cannot listen for Raft peers on {raft_endpoint}: {failure.value}")

    server = serverFromString(reactor, raft_endpoint)
    hosts = {peer.node_id: peer.address.host for peer in peers or ()}
    server, clients = wrap_tls(raft_tls, server, clients, hosts, reactor)

    drop_log = RateLimitedLog(reactor)

    def connect(address: str, peer_id: str = "") -> IStreamClientEndpoint:
        """An endpoint for a member added at run time (``HOST:PORT``), or,
        with no ``peer_id``, for the member a joining node asks to add it."""
        where = parse_hostport(address)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, where.host, where.port)
        endpoint = wrap_tls(raft_tls, server, {"_": endpoint}, {"_": where.host}, reactor)[1]["_"]
        return wrap_endpoints(cluster_key, server, {peer_id: endpoint}, reactor,
                              node_id=node_id, drop_log=drop_log)[1][peer_id]  # fmt: skip

    server, clients = wrap_endpoints(cluster_key, server, clients, reactor, node_id=node_id,
                                     drop_log=drop_log)  # fmt: skip
    transport = AMPTransport(server, clients, reactor, connect=connect,
                             listen_failed=cannot_listen)  # fmt: skip
    storage = DiskStorage(data_dir)
    threads = functools.partial(deferToThreadPool, reactor, reactor.getThreadPool())

    def decode_snapshot(data: bytes) -> Registry:
        with long_lived():
            return Registry.restore(data)

    machine = RegistryMachine(registry, decode_snapshot)
    # The registry loaded from the data dir (snapshot and log) is frozen for the GC.
    with long_lived():
        node = RaftNode(
            node_id,
            addresses,
            storage,
            transport,
            machine,
            reactor,
            options=options if join is None else _joining(options),
            rng=random.Random(os.urandom(16)),
            metrics=metrics,
            fail_stop=fail_stop,
            # fdatasync releases the GIL: the reactor keeps reading requests,
            # which join the next batch, while a batch is made durable.
            in_thread=threads,
            # Snapshots are encoded between requests and written in a thread.
            step_later=functools.partial(reactor.callLater, STEP_PAUSE),
        )
    cluster = RaftCluster(node, machine, reactor)
    if join is None:
        return cluster, node
    # --join: start as no member and ask that member to add us.
    top = MultiService()
    node.setServiceParent(top)
    ask = ask_over_amp(connect(str(join)), "replica" if non_voter else "add")
    JoinService(reactor, ask, node.members, node.condition,
                addresses[node_id] or "").setServiceParent(top)  # fmt: skip
    return cluster, top


def _joining(options: NodeOptions) -> NodeOptions:
    return attrs.evolve(options, joining=True)
