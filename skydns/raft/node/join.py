"""``--join HOST:PORT``: a fresh node asks a running cluster to add it.

The node starts as no member at all (it never campaigns), then calls AMP
``ChangeMember`` (op ``add``) on the given member's Raft port until one
answers; that member forwards the request to its leader, which adds the
node as a learner.  The leader then sends it a snapshot and the log, and
promotes it to voter once it has caught up.  A node that is already a
member (a restart with the same ``--join``) does not ask again.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger

from skydns.raft.net.interface import MemberChangeError
from skydns.raft.net.protocol import RaftProtocol
from skydns.raft.node.driver import RaftNode

log = Logger()


def is_member(node: RaftNode) -> bool:
    config = node.core.config
    return node.id in config.voters or node.id in config.learners


async def join(
    reactor: Any, endpoint: IStreamClientEndpoint, node: RaftNode, address: str,
    retry: float = 1.0,
) -> None:  # fmt: skip
    """Ask until the cluster has added ``node`` (at ``address``)."""
    while node.running and not is_member(node):
        try:
            protocol = await connectProtocol(endpoint, RaftProtocol(None))
            try:
                members = await protocol.change_member("add", node.id, address)
            finally:
                if protocol.transport is not None:
                    protocol.transport.loseConnection()
            node.members.learn(members)
            log.info("joined the cluster as {id} at {address}", id=node.id, address=address)
            return
        except MemberChangeError as e:
            if e.kind == "exists":
                return
            log.warn("joining the cluster: {error}", error=str(e))
        except Exception as e:
            log.warn("joining the cluster failed, retrying: {error}", error=str(e))
        await deferLater(reactor, retry, lambda: None)


class JoinService(Service):
    """Runs `join` once the node has started."""

    def __init__(
        self, reactor: Any, endpoint: IStreamClientEndpoint, node: RaftNode, address: str
    ) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.node = node
        self.address = address
        self.joining: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self.joining = Deferred.fromCoroutine(
            join(self.reactor, self.endpoint, self.node, self.address)
        )
        self.joining.addErrback(lambda f: log.failure("joining the cluster", f))

    def stopService(self) -> None:
        super().stopService()
        if self.joining is not None and not self.joining.called:
            self.joining.cancel()
