"""The seam between a Raft node and its network.

A `RaftNode` (``skydns.raft.node.driver``) talks to its peers only through an
`IRaftTransport`: it sends Raft messages best-effort (the core retries what
is lost) and forwards client proposals to the leader.  What arrives from the
network is handed to an `IRaftHandler` (the node).  ``skydns.raft.net.protocol``
implements the transport over AMP; the tests use an in-memory one.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Interface

from skydns.raft.core.messages import Message

#: The largest command a node accepts for replication (bytes of its log
#: entry data).  Every such entry fits in one AMP value by itself.
MAX_PROPOSAL_BYTES = 60_000


class PeerUnavailable(Exception):
    """There is no connection to that peer now, or it was lost mid-call.

    The call may or may not have reached the peer: retry it if it is
    idempotent (forwarded proposals are, thanks to the session table).
    """


class NotLeaderHere(Exception):
    """The node asked to take a proposal is not the leader.

    ``leader`` is who it believes leads, if anyone.
    """

    def __init__(self, leader: str | None = None) -> None:
        super().__init__(leader or "")
        self.leader = leader or None


class ProposalTooLarge(ValueError):
    """A command is too big to replicate (more than `MAX_PROPOSAL_BYTES`)."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the command is {size} bytes, more than the {MAX_PROPOSAL_BYTES} allowed"
        )
        self.size = size


class MemberChangeError(Exception):
    """A membership change refused: ``kind`` is ``exists`` (the id is a
    member already), ``not_found`` (no such member), ``invalid`` (bad id or
    address) or ``refused`` (not now: another change is in flight...)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class BadProposal(ValueError):
    """A forwarded proposal that does not decode as an enveloped command."""


class IRaftHandler(Interface):
    """What the transport delivers incoming traffic to (the node)."""

    def receive(message: Message) -> "int | None":
        """A Raft message from a peer (already decoded, not yet trusted).

        Returns the index of the configuration that removed the sender from
        the cluster, if it was removed: the transport then sends it a
        "removed" notice back on the connection the message came in on."""

    def removed_notice(src: str, dst: str, index: int) -> None:
        """Member ``src`` says this node (``dst``) was removed from the
        cluster by the configuration at ``index``."""

    def peer_unreachable(peer_id: str) -> None:
        """The connection to ``peer_id`` broke (its process may have died)."""

    def accept_proposal(data: bytes) -> "Deferred[tuple[int, int]]":
        """A proposal forwarded by a follower: append it; fire with its
        ``(index, term)``.  Errbacks `NotLeaderHere`, `ProposalTooLarge` or
        `BadProposal`."""

    def change_member(
        op: str, member_id: str, address: str | None
    ) -> "Deferred[dict[str, str | None]]":
        """Add (``op == "add"``) or remove a member; fires once committed with
        every member's address.  Errbacks `NotLeaderHere`,
        `MemberChangeError` or `PeerUnavailable`."""

    def answer_leader_request(data: bytes) -> "Deferred[bytes]":
        """A request another member passed to this node as its leader, for
        the application on top (`RaftNode.ask_leader`); fires with its
        answer.  Errbacks `NotLeaderHere` if this node does not lead."""


class IRaftTransport(Interface):
    """How a node reaches its peers."""

    def start(handler: IRaftHandler) -> None:
        """Listen and connect; deliver what arrives to ``handler``."""

    def stop() -> "Deferred[None]":
        """Close every connection and stop listening."""

    def send(message: Message) -> None:
        """Send ``message`` to ``message.dst`` if connected; drop it otherwise."""

    def forward(to: str, data: bytes) -> "Deferred[tuple[int, int]]":
        """Ask ``to`` to append ``data`` as a proposal; fire with ``(index,
        term)``.  Errbacks `NotLeaderHere`, `PeerUnavailable`,
        `ProposalTooLarge` or `BadProposal`."""

    def change_member(
        to: str, op: str, member_id: str, address: str | None
    ) -> "Deferred[dict[str, str | None]]":
        """Ask ``to`` to add or remove a member (`IRaftHandler.change_member`)."""

    def ask(to: str, data: bytes) -> "Deferred[bytes]":
        """Pass an application request to ``to``, the leader
        (`IRaftHandler.answer_leader_request`); fire with its answer.
        Errbacks `NotLeaderHere` or `PeerUnavailable`."""

    def add_peer(peer_id: str, address: str) -> None:
        """Keep a connection to a member added at ``address`` (``HOST:PORT``);
        raise ValueError if the address cannot be used."""

    def remove_peer(peer_id: str) -> None:
        """Drop the connection to a member removed from the cluster."""
