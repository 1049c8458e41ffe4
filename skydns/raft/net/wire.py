"""The wire format of every Raft RPC: the AMP commands, their arguments and
their declared errors.

Each Raft message type is an AMP command that needs no answer: Raft
messages are one-way (a response is a message of its own), and the core
retries whatever is lost, so a dropped connection simply loses them.
`RemovedCommand` is a member's one-way answer to a Raft message from a node
it saw removed from the cluster, sent back on the connection that message
came in on (the members no longer keep a connection to a removed node).
`ForwardProposal`, `ForwardProposals` and `ChangeMember` are real calls: a
follower asks the leader to append commands (or change the membership) and
learns the outcome, or a declared error.

The arguments are `skydns.raft.net.arguments`.  The protocol that speaks these commands is
``skydns.raft.net.protocol``.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger
from twisted.protocols import amp

from skydns import jsoninput
from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Configuration,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from skydns.raft.net.arguments import (  # noqa: F401 (part of the wire format)
    MAX_BOX_BYTES,
    MAX_CHUNKS,
    MAX_FORWARD_BATCH,
    ChunkedBytes,
    EntriesArgument,
    Natural,
    NodeId,
    ProposalsArgument,
)
from skydns.raft.net.interface import BadProposal, NotLeaderHere, ProposalTooLarge

log = Logger()

# --- commands -----------------------------------------------------------------


def _header() -> list[tuple[bytes, amp.Argument]]:
    return [(b"src", NodeId()), (b"dst", NodeId()), (b"term", Natural())]


class _OneWay(amp.Command):
    requiresAnswer = False
    response = []  # type: ignore[var-annotated]


class RequestVoteCommand(_OneWay):
    commandName = b"RequestVote"
    arguments = _header() + [
        (b"last_log_index", Natural()),
        (b"last_log_term", Natural()),
        (b"prevote", amp.Boolean()),
        (b"transfer", amp.Boolean()),
    ]


class RequestVoteResponseCommand(_OneWay):
    commandName = b"RequestVoteResponse"
    arguments = _header() + [(b"granted", amp.Boolean()), (b"prevote", amp.Boolean())]


class AppendEntriesCommand(_OneWay):
    commandName = b"AppendEntries"
    arguments = _header() + [
        (b"prev_log_index", Natural()),
        (b"prev_log_term", Natural()),
        (b"entries", EntriesArgument()),
        (b"commit", Natural()),
    ]


class AppendEntriesResponseCommand(_OneWay):
    commandName = b"AppendEntriesResponse"
    arguments = _header() + [
        (b"success", amp.Boolean()),
        (b"index", Natural()),
        (b"hint_index", Natural()),
        (b"hint_term", Natural()),
        (b"recovering", amp.Boolean(optional=True)),
    ]


class HeartbeatCommand(_OneWay):
    commandName = b"Heartbeat"
    arguments = _header() + [(b"commit", Natural()), (b"context", amp.String(optional=True))]


class HeartbeatResponseCommand(_OneWay):
    commandName = b"HeartbeatResponse"
    arguments = _header() + [(b"context", amp.String(optional=True))]


class ReadIndexCommand(_OneWay):
    """A follower forwards a linearizable read to its leader (thesis §6.4)."""

    commandName = b"ReadIndex"
    arguments = _header() + [(b"context", amp.String())]


class ReadIndexResponseCommand(_OneWay):
    commandName = b"ReadIndexResponse"
    arguments = _header() + [(b"index", Natural()), (b"context", amp.String())]


class TimeoutNowCommand(_OneWay):
    commandName = b"TimeoutNow"
    arguments = _header()


class InstallSnapshotCommand(_OneWay):
    commandName = b"InstallSnapshot"
    arguments = _header() + [
        (b"index", Natural()),
        (b"snapshot_term", Natural()),
        (b"voters", amp.ListOf(NodeId(), optional=True)),
        (b"learners", amp.ListOf(NodeId(), optional=True)),
        (b"data", ChunkedBytes()),
    ]


class RemovedCommand(_OneWay):
    """``src`` tells ``dst`` that the configuration at ``index`` removed it."""

    commandName = b"Removed"
    arguments = [(b"src", NodeId()), (b"dst", NodeId()), (b"index", Natural())]


class RemoteNotLeader(Exception):
    """Wire form of `NotLeaderHere` (the description is the leader's id)."""


class RemoteTooLarge(Exception):
    """Wire form of `ProposalTooLarge`."""


class RemoteBadProposal(Exception):
    """Wire form of `BadProposal`."""


class ForwardProposal(amp.Command):
    """A follower asks the leader to append ``data`` (an enveloped command);
    the answer is where the leader put it."""

    commandName = b"ForwardProposal"
    arguments = [(b"data", ChunkedBytes())]
    response = [(b"index", Natural()), (b"term", Natural())]
    errors = {
        RemoteNotLeader: b"NOT_LEADER",
        RemoteTooLarge: b"TOO_LARGE",
        RemoteBadProposal: b"BAD_PROPOSAL",
    }


class ForwardProposals(amp.Command):
    """Several proposals forwarded at once (those a follower took in one
    reactor turn).  ``results`` is a JSON list with, for each proposal in
    order, ``["ok", index, term]``, ``["not_leader", leader or null]``, or
    ``["refused", reason]``."""

    commandName = b"ForwardProposals"
    arguments = [(b"proposals", ProposalsArgument())]
    response = [(b"results", ChunkedBytes())]
    errors = {RemoteNotLeader: b"NOT_LEADER"}


ForwardResult = tuple[int, int] | Exception


class AskLeader(amp.Command):
    """A member passes the leader a request of the application on top (lease
    renewals: no log entry each); the answer is the application's bytes."""

    commandName = b"AskLeader"
    arguments = [(b"data", ChunkedBytes())]
    response = [(b"data", ChunkedBytes())]
    errors = {RemoteNotLeader: b"NOT_LEADER", RemoteBadProposal: b"BAD_PROPOSAL"}


class RemoteMemberError(Exception):
    """Wire form of `skydns.raft.transport.MemberChangeError` (``kind: reason``)."""


class ChangeMember(amp.Command):
    """Ask a member to add (``op`` ``add``, as a learner, promoted once caught
    up; ``replica``, as a learner never promoted) or remove (``remove``) a
    member; it forwards to its leader.  Answers
    once the change is committed, with every member's address (JSON), which
    a joining node needs to answer the leader."""

    commandName = b"ChangeMember"
    arguments = [
        (b"op", amp.Unicode()),
        (b"id", NodeId()),
        (b"address", amp.Unicode(optional=True)),
    ]
    response = [(b"members", amp.Unicode())]
    errors = {RemoteNotLeader: b"NOT_LEADER", RemoteMemberError: b"MEMBER_ERROR"}


def encode_result(success: bool, value: Any) -> list[Any]:
    """One proposal's entry in a `ForwardProposals` answer, from its
    ``DeferredList`` result (``success``, ``value``)."""
    if success:
        return ["ok", value[0], value[1]]
    error = value.value
    if isinstance(error, NotLeaderHere):
        return ["not_leader", error.leader]
    if isinstance(error, (ProposalTooLarge, BadProposal)):
        return ["refused", str(error)]
    log.failure("a forwarded proposal failed", value)
    return ["not_leader", None]


def decode_results(raw: bytes, count: int) -> list[ForwardResult]:
    """The ``count`` results of a `ForwardProposals` answer; `ValueError`
    (or another parse error) when ``raw`` is not such an answer."""
    results = jsoninput.loads(raw)
    if not isinstance(results, list) or len(results) != count:
        raise ValueError("the answer does not match the proposals")
    out: list[ForwardResult] = []
    for item in results:
        kind = item[0]
        if kind == "ok":
            index, term = int(item[1]), int(item[2])
            out.append((index, term))
        elif kind == "not_leader":
            out.append(NotLeaderHere(item[1] if isinstance(item[1], str) else None))
        elif kind == "refused":
            out.append(BadProposal(str(item[1])))
        else:
            raise ValueError(f"unknown result {kind!r}")
    return out


# --- messages <-> commands ----------------------------------------------------

_SIMPLE: dict[type, type[amp.Command]] = {
    RequestVote: RequestVoteCommand,
    RequestVoteResponse: RequestVoteResponseCommand,
    AppendEntries: AppendEntriesCommand,
    AppendEntriesResponse: AppendEntriesResponseCommand,
    Heartbeat: HeartbeatCommand,
    HeartbeatResponse: HeartbeatResponseCommand,
    ReadIndexRequest: ReadIndexCommand,
    ReadIndexResponse: ReadIndexResponseCommand,
    TimeoutNow: TimeoutNowCommand,
}


def command_for(message: Message) -> tuple[type[amp.Command], dict[str, Any]]:
    """The AMP command that carries ``message``, and its arguments."""
    if isinstance(message, InstallSnapshot):
        config = message.meta.config
        return InstallSnapshotCommand, {
            "src": message.src,
            "dst": message.dst,
            "term": message.term,
            "index": message.meta.index,
            "snapshot_term": message.meta.term,
            "voters": None if config is None else sorted(config.voters),
            "learners": None if config is None else sorted(config.learners),
            "data": message.data,
        }
    return _SIMPLE[type(message)], attrs.asdict(message, recurse=False)


def snapshot_message(kw: dict[str, Any]) -> InstallSnapshot:
    """The `InstallSnapshot` an `InstallSnapshotCommand`'s arguments carry."""
    voters, learners = kw["voters"], kw["learners"]
    config = None
    if voters is not None:
        config = Configuration(frozenset(voters), frozenset(learners or ()))
    meta = SnapshotMeta(kw["index"], kw["snapshot_term"], config)
    return InstallSnapshot(kw["src"], kw["dst"], kw["term"], meta, kw["data"])
