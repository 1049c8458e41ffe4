"""Raft over AMP: `RaftProtocol`, one connection between two nodes that
carries Raft messages both ways, forwarded proposals and membership changes.

The commands it speaks, one per Raft message plus the forwarding calls, and
their arguments are the wire format in ``skydns.raft.amp_commands``; this
module turns received commands into calls on the node (an `IRaftHandler`)
and translates refusals to and from the commands' declared errors.

The wire is untrusted: a box that does not parse, names no known command in
a one-way message, or carries values out of range makes the protocol drop
that connection (and log why); the node keeps serving everyone else.
Connections to peers are kept by ``skydns.raft.peers``.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import ConnectionClosed, ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from skydns.raft.amp_commands import (
    MAX_BOX_BYTES,
    AppendEntriesCommand,
    AppendEntriesResponseCommand,
    ChangeMember,
    ForwardProposal,
    ForwardProposals,
    ForwardResult,
    HeartbeatCommand,
    HeartbeatResponseCommand,
    InstallSnapshotCommand,
    ReadIndexCommand,
    ReadIndexResponseCommand,
    RemoteBadProposal,
    RemoteMemberError,
    RemoteNotLeader,
    RemoteTooLarge,
    RemovedCommand,
    RequestVoteCommand,
    RequestVoteResponseCommand,
    TimeoutNowCommand,
    command_for,
    decode_results,
    encode_result,
    snapshot_message,
)
from skydns.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from skydns.raft.transport import (
    BadProposal,
    IRaftHandler,
    MemberChangeError,
    NotLeaderHere,
    PeerUnavailable,
    ProposalTooLarge,
)

log = Logger()


# --- the protocol -------------------------------------------------------------


class RaftProtocol(amp.AMP):
    """One AMP connection between two nodes (either direction)."""

    def __init__(self, handler: IRaftHandler | None) -> None:
        super().__init__()
        self.handler = handler
        self.on_lost: Callable[[RaftProtocol], None] | None = None
        self._box_bytes = 0

    # AMP caps each key and value but not how many a box has: an unfinished
    # box with endless distinct keys would hold memory until the connection
    # closes.  Count what the box being read holds and drop a peer past it.
    def proto_init(self, string: bytes) -> str:
        self._box_bytes = 0
        return super().proto_init(string)  # type: ignore[no-any-return]

    def proto_value(self, string: bytes) -> str:
        self._box_bytes += len(string) + len(self._currentKey or b"")
        if self._box_bytes > MAX_BOX_BYTES:
            log.warn(
                "dropping a Raft connection: a box over {limit} bytes", limit=MAX_BOX_BYTES
            )
            if self.transport is not None:
                abort = getattr(self.transport, "abortConnection", self.transport.loseConnection)
                abort()
            return "init"
        return super().proto_value(string)  # type: ignore[no-any-return]

    def connectionMade(self) -> None:
        super().connectionMade()
        # Raft traffic is many small request/response messages: Nagle's
        # algorithm would hold each one back for the previous one's ACK.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        try:
            super().ampBoxReceived(box)
        except Exception:
            log.failure("dropping a Raft connection that sent a malformed box")
            if self.transport is not None:
                self.transport.loseConnection()

    def watch_lost(self, callback: Callable[[RaftProtocol], None]) -> None:
        """Call ``callback(self)`` when the connection is lost."""
        self.on_lost = callback

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)
        if self.on_lost is not None:
            self.on_lost(self)

    def send_message(self, message: Message) -> None:
        command, kwargs = command_for(message)
        self.callRemote(command, **kwargs)

    def _deliver(self, message: Message) -> dict[str, Any]:
        if self.handler is None:
            raise amp.UnhandledCommand("this connection takes no Raft messages")
        removed = self.handler.receive(message)
        if isinstance(removed, int) and not isinstance(removed, bool):
            self.callRemote(RemovedCommand, src=message.dst, dst=message.src, index=removed)
        return {}

    @RemovedCommand.responder
    def _removed(self, src: str, dst: str, index: int) -> dict[str, Any]:
        notice = getattr(self.handler, "removed_notice", None)
        if notice is None:
            raise amp.UnhandledCommand("this connection takes no Raft messages")
        notice(src, dst, index)
        return {}

    @RequestVoteCommand.responder
    def _request_vote(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(RequestVote(**kw))

    @RequestVoteResponseCommand.responder
    def _request_vote_response(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(RequestVoteResponse(**kw))

    @AppendEntriesCommand.responder
    def _append_entries(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(AppendEntries(**kw))

    @AppendEntriesResponseCommand.responder
    def _append_entries_response(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(AppendEntriesResponse(**kw))

    @HeartbeatCommand.responder
    def _heartbeat(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(Heartbeat(**kw))

    @HeartbeatResponseCommand.responder
    def _heartbeat_response(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(HeartbeatResponse(**kw))

    @ReadIndexCommand.responder
    def _read_index(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(ReadIndexRequest(**kw))

    @ReadIndexResponseCommand.responder
    def _read_index_response(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(ReadIndexResponse(**kw))

    @TimeoutNowCommand.responder
    def _timeout_now(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(TimeoutNow(**kw))

    @InstallSnapshotCommand.responder
    def _install_snapshot(self, **kw: Any) -> dict[str, Any]:
        return self._deliver(snapshot_message(kw))

    @ForwardProposal.responder
    def _forward_proposal(self, data: bytes) -> Deferred[dict[str, Any]]:
        if self.handler is None:
            raise RemoteNotLeader("")
        d: Deferred[tuple[int, int]] = maybeDeferred(self.handler.accept_proposal, data)
        return d.addCallbacks(lambda answer: {"index": answer[0], "term": answer[1]},
                              _remote_error)  # fmt: skip

    @ForwardProposals.responder
    def _forward_proposals(self, proposals: list[bytes]) -> Deferred[dict[str, Any]]:
        if self.handler is None:
            raise RemoteNotLeader("")
        handler = self.handler
        calls = [maybeDeferred(handler.accept_proposal, data) for data in proposals]
        done: Deferred[list[tuple[bool, Any]]] = DeferredList(calls, consumeErrors=True)
        return done.addCallback(lambda results: {"results": json.dumps(
            [encode_result(success, value) for success, value in results]).encode()})

    @ChangeMember.responder
    def _change_member(self, op: str, id: str, address: str | None) -> Deferred[dict[str, Any]]:
        if self.handler is None:
            raise RemoteNotLeader("")
        d: Deferred[dict[str, str | None]] = maybeDeferred(
            self.handler.change_member, op, id, address
        )
        return d.addCallbacks(lambda members: {"members": json.dumps(members)}, _remote_error)

    def change_member(
        self, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        """Call `ChangeMember`: fires with the members' addresses; errbacks
        `NotLeaderHere`, `MemberChangeError` or `PeerUnavailable`."""
        d: Deferred[dict[str, Any]] = self.callRemote(
            ChangeMember, op=op, id=member_id, address=address
        )
        return d.addCallbacks(lambda answer: dict(json.loads(answer["members"])), local_error)

    def forward_many(self, proposals: list[bytes]) -> Deferred[list[ForwardResult]]:
        """Call `ForwardProposals`: one result (an answer or an exception)
        per proposal; the whole call errbacks as `forward` does."""
        result: Deferred[list[ForwardResult]] = Deferred()

        def answered(answer: dict[str, Any]) -> None:
            try:
                results = decode_results(answer["results"], len(proposals))
            except (ValueError, TypeError, IndexError, KeyError) as e:
                result.errback(PeerUnavailable(f"malformed answer to ForwardProposals: {e}"))
                return
            result.callback(results)

        def failed(failure: Failure) -> None:
            result.errback(local_error(failure))

        d: Deferred[dict[str, Any]] = self.callRemote(ForwardProposals, proposals=proposals)
        d.addCallbacks(answered, failed)
        return result

    def forward(self, data: bytes) -> Deferred[tuple[int, int]]:
        """Call `ForwardProposal`; errbacks as `IRaftTransport.forward` says."""
        result: Deferred[tuple[int, int]] = Deferred()

        def answered(answer: dict[str, Any]) -> None:
            result.callback((answer["index"], answer["term"]))

        def failed(failure: Failure) -> None:
            # Handled here: AMP drops the connection on a failure left unhandled.
            result.errback(local_error(failure))

        d: Deferred[dict[str, Any]] = self.callRemote(ForwardProposal, data=data)
        d.addCallbacks(answered, failed)
        return result


def _remote_error(failure: Failure) -> Failure:
    """Translate a refused proposal into the declared AMP error."""
    error = failure.value
    if isinstance(error, NotLeaderHere):
        return Failure(RemoteNotLeader(error.leader or ""))
    if isinstance(error, ProposalTooLarge):
        return Failure(RemoteTooLarge(str(error)))
    if isinstance(error, BadProposal):
        return Failure(RemoteBadProposal(str(error)))
    if isinstance(error, MemberChangeError):
        return Failure(RemoteMemberError(f"{error.kind}: {error.reason}"))
    return failure


def local_error(failure: Failure) -> Failure:
    """Translate a failed `ForwardProposal` call into the transport's errors."""
    error = failure.value
    if isinstance(
        error, (NotLeaderHere, PeerUnavailable, BadProposal, ProposalTooLarge, MemberChangeError)
    ):
        return failure
    if isinstance(error, RemoteMemberError):
        kind, _, reason = str(error).partition(": ")
        return Failure(MemberChangeError(kind, reason))
    if isinstance(error, RemoteNotLeader):
        return Failure(NotLeaderHere(str(error) or None))
    if isinstance(error, RemoteTooLarge):
        return Failure(BadProposal(str(error)))
    if isinstance(error, RemoteBadProposal):
        return Failure(BadProposal(str(error)))
    if isinstance(error, (ConnectionLost, ConnectionDone, ConnectionClosed, TimeoutError)):
        return Failure(PeerUnavailable(f"connection lost during the call: {error}"))
    return Failure(PeerUnavailable(f"the call failed: {error!r}"))


__all__ = ["RaftProtocol", "local_error"]
