"""Raft over AMP: `RaftProtocol`, one connection between two nodes that
carries Raft messages both ways, forwarded proposals and membership changes.

The commands it speaks, one per Raft message plus the forwarding calls, and
their arguments are the wire format in ``skydns.raft.net.wire``; this
module turns received commands into calls on the node (an `IRaftHandler`)
and translates refusals to and from the commands' declared errors.

The wire is untrusted: a box that does not parse, names no known command in
a one-way message, or carries values out of range makes the protocol drop
that connection (and log why); the node keeps serving everyone else.
Connections to peers are kept by ``skydns.raft.net.peers``.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import ConnectionClosed, ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from skydns import jsoninput
from skydns.raft.core.messages import (
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
from skydns.raft.net.interface import (
    BadProposal,
    IRaftHandler,
    MemberChangeError,
    NotLeaderHere,
    PeerUnavailable,
    ProposalTooLarge,
)
from skydns.raft.net.wire import (
    MAX_BOX_BYTES,
    AppendEntriesCommand,
    AppendEntriesResponseCommand,
    AskLeader,
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
from skydns.throttle import LogThrottle, address_text

log = Logger()


# --- the protocol -------------------------------------------------------------


class RaftProtocol(amp.AMP):
    """One AMP connection between two nodes (either direction).

    What it drops or refuses from the other end is logged with the peer's
    address and the reason, at most once per reason every 10 s when
    ``drops`` is given (the transport's: a stranger reconnecting with junk
    must not fill the log).
    """

    def __init__(self, handler: IRaftHandler | None, drops: LogThrottle | None = None) -> None:
        super().__init__()
        self.handler = handler
        self.drops = drops
        self.on_lost: Callable[[RaftProtocol], None] | None = None
        #: Told the sender of every message this connection delivers.
        self.on_message_from: Callable[[str, RaftProtocol], None] | None = None
        #: Why the connection ended, once it has.
        self.lost_reason: Failure | None = None
        self._box_bytes = 0

    def _refused(self, what: str, reason: str, kind: str) -> None:
        """Log ``what`` was done to this connection and why; ``kind`` names
        the reason for the throttle (one line per kind every 10 s)."""
        held = 0 if self.drops is None else self.drops.allow(kind)
        if held is None:
            return
        peer = address_text(self.transport.getPeer()) if self.transport is not None else "?"
        log.warn(
            "{what} from {peer}: {reason} ({held} more like it not logged)",
            what=what, peer=peer, reason=reason, held=held, kind=kind,
        )  # fmt: skip

    # AMP caps each key and value but not how many a box has: an unfinished
    # box with endless distinct keys would hold memory until the connection
    # closes.  Count what the box being read holds and drop a peer past it.
    def proto_init(self, string: bytes) -> str:
        self._box_bytes = 0
        return super().proto_init(string)  # type: ignore[no-any-return]

    def proto_value(self, string: bytes) -> str:
        self._box_bytes += len(string) + len(self._currentKey or b"")
        if self._box_bytes > MAX_BOX_BYTES:
            self._refused(
                "dropped a Raft connection", f"a box over {MAX_BOX_BYTES} bytes", "oversized"
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
        except Exception as e:
            self._refused("dropped a Raft connection", f"a malformed box: {e!r}"[:300], "box")
            if self.transport is not None:
                self.transport.loseConnection()

    def dispatchCommand(self, box: amp.AmpBox) -> Deferred[amp.AmpBox]:  # noqa: N802
        return super().dispatchCommand(box).addErrback(self._bad_command, amp.ASK in box)

    def _bad_command(self, failure: Failure, asked: bool) -> Failure | None:
        """A command whose arguments did not parse, or that failed for a
        reason it does not declare: log why and drop the connection (AMP
        would log a traceback, then drop it)."""
        if failure.check(amp.RemoteAmpError):  # a declared error: the asker gets it
            return failure
        kind = failure.type.__name__ if failure.type is not None else "error"
        self._refused(
            "dropped a Raft connection", f"{kind}: {failure.getErrorMessage()}"[:300], "arguments"
        )
        log.debug("the failure behind that drop: {traceback}", traceback=failure.getTraceback())
        if asked:  # answered with a QuitBox, which closes the connection
            return Failure(amp.RemoteAmpError(amp.UNKNOWN_ERROR_CODE, "Unknown Error", fatal=True))
        if self.transport is not None:
            self.transport.loseConnection()
        return None

    def locateResponder(self, name: bytes) -> Any:  # noqa: N802 - Twisted's name
        responder = super().locateResponder(name)
        if responder is None:  # answered with an UNHANDLED error box, if asked
            command = name.decode("ascii", "replace")[:64]
            self._refused("ignored a Raft command", f"unknown command {command!r}", "unknown")
        return responder

    def watch_lost(self, callback: Callable[[RaftProtocol], None]) -> None:
        """Call ``callback(self)`` when the connection is lost."""
        self.on_lost = callback

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self._keyLengthLimitExceeded:  # AMP closes the connection on such a key
            self._refused("dropped a Raft connection", "not AMP (a key over 255 bytes)", "not AMP")
        super().connectionLost(reason)
        self.lost_reason = reason
        if self.on_lost is not None:
            self.on_lost(self)

    def send_message(self, message: Message) -> None:
        command, kwargs = command_for(message)
        self.callRemote(command, **kwargs)

    def _deliver(self, message: Message) -> dict[str, Any]:
        if self.handler is None:
            raise amp.UnhandledCommand("this connection takes no Raft messages")
        if self.on_message_from is not None:
            self.on_message_from(message.src, self)
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
        kw["recovering"] = bool(kw.get("recovering"))  # absent from older peers
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

    @AskLeader.responder
    def _ask_leader(self, data: bytes) -> Deferred[dict[str, Any]]:
        if self.handler is None:
            raise RemoteNotLeader("")
        d: Deferred[bytes] = maybeDeferred(self.handler.answer_leader_request, data)
        return d.addCallbacks(lambda answer: {"data": answer}, _remote_error)

    def ask(self, data: bytes) -> Deferred[bytes]:
        """Call `AskLeader`; errbacks as `IRaftTransport.ask` says."""
        result: Deferred[bytes] = Deferred()

        def failed(failure: Failure) -> None:
            # Handled here: AMP drops the connection on a failure left unhandled.
            result.errback(local_error(failure))

        d: Deferred[dict[str, Any]] = self.callRemote(AskLeader, data=data)
        d.addCallbacks(lambda answer: result.callback(answer["data"]), failed)
        return result

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
        return d.addCallbacks(lambda answer: dict(jsoninput.loads(answer["members"])), local_error)

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
