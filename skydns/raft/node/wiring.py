"""Build a Raft node from ``twistd skydns`` options (called by ``skydns.tap``).

With ``--peers`` the node is one voter of that cluster; without, it is a
one-voter cluster on the same path (durable log in the data dir, same Ready
loop), so a lone node's registrations survive kill -9 and restart too.
"""

from __future__ import annotations

import functools
import os
import random
import sys
from collections.abc import Sequence
from typing import Any, Callable

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.cluster import ICluster
from skydns.config import HostPort, Peer, parse_hostport
from skydns.gctune import long_lived
from skydns.metrics import Metrics
from skydns.raft.core.messages import Entry, HardState
from skydns.raft.net.auth import wrap_endpoints
from skydns.raft.net.peers import AMPTransport
from skydns.raft.net.tls import RaftTLS, wrap_tls
from skydns.raft.node.driver import RaftNode
from skydns.raft.node.join import JoinService
from skydns.raft.node.sessions import SessionTable
from skydns.raft.node.snapshots import decode_state
from skydns.raft.node.snapshotter import DEFAULT_KEEP_ENTRIES, DEFAULT_SNAPSHOT_ENTRIES
from skydns.raft.storage.disk import DiskStorage
from skydns.registry import Applied, Registry

log = Logger()

#: Exit status of a node that stopped because its storage failed.
EXIT_STORAGE_FAILED = 70


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
    snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES,
    join: HostPort | None = None,
    snapshot_keep: int = DEFAULT_KEEP_ENTRIES,
    raft_tls: RaftTLS | None = None,
) -> tuple[ICluster, IService]:
    """A `RaftNode` over AMP and a `DiskStorage` in ``data_dir``.

    The node is both the cluster and the service to start: it listens on
    ``raft_endpoint`` and connects to the other peers once started.  Loading
    the data dir happens here, so a locked or corrupt data dir stops
    ``twistd`` before anything listens.  With ``cluster_key`` every Raft
    connection, both ways, must prove the key first (``skydns.raft.net.auth``);
    with ``raft_tls`` every one is mutual TLS (``skydns.raft.net.tls``).
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

    def connect(address: str) -> IStreamClientEndpoint:
        """An endpoint for a member added at run time (``HOST:PORT``)."""
        where = parse_hostport(address)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, where.host, where.port)
        endpoint = wrap_tls(raft_tls, server, {"_": endpoint}, {"_": where.host}, reactor)[1]["_"]
        return wrap_endpoints(cluster_key, server, {"_": endpoint}, reactor)[1]["_"]

    server, clients = wrap_endpoints(cluster_key, server, clients, reactor)
    transport = AMPTransport(server, clients, reactor, listen_failed=cannot_listen)
    storage = DiskStorage(data_dir)

    def save_in_thread(hard_state: HardState | None, entries: Sequence[Entry]) -> Deferred[None]:
        # fdatasync releases the GIL: the reactor keeps reading requests,
        # which join the next batch, while a batch is made durable.
        return deferToThreadPool(
            reactor, reactor.getThreadPool(), storage.save, hard_state, entries
        )

    def decode_snapshot(data: bytes) -> tuple[Registry, SessionTable[Applied]]:
        with long_lived():
            return decode_state(data)

    # The registry loaded from the data dir (snapshot and log) is frozen for the GC.
    with long_lived():
        node = RaftNode(
            node_id,
            addresses,
            storage,
            transport,
            registry,
            reactor,
            rng=random.Random(os.urandom(16)),
            metrics=metrics,
            fail_stop=fail_stop,
            save_in_thread=save_in_thread,
            snapshot_entries=snapshot_entries,
            keep_entries=snapshot_keep,
            # Snapshots are encoded between requests and written in a thread.
            in_thread=functools.partial(deferToThreadPool, reactor, reactor.getThreadPool()),
            encode_in_steps=True,
            decode_snapshot=decode_snapshot,
            joining=join is not None,
            connect=connect,
        )
    if join is None:
        return node, node
    # --join: start as no member and ask that member to add us.
    top = MultiService()
    node.setServiceParent(top)
    JoinService(reactor, connect(str(join)), node, addresses[node_id] or "").setServiceParent(top)
    return node, top
