"""The values the core exchanges with its adapter: its outputs and errors.

See ``skydns.raft.core.raft`` for the Ready contract.
"""

from __future__ import annotations

import enum

from attrs import frozen

from skydns.raft.core.messages import Entry, HardState, Message, SnapshotMeta


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class NotLeader(Exception):
    """Only the leader takes proposals (``leader`` is who to ask, if known)."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(leader)
        self.leader = leader


class ConfigChangeRefused(Exception):
    """A membership change the leader cannot start now (the reason says why)."""


class ProposalDropped(Exception):
    """The leader is handing over leadership and takes no new proposals."""


@frozen
class ReadState:
    """A read may be served once the state machine has applied ``index``."""

    index: int
    context: bytes


@frozen
class SoftState:
    """Volatile state the adapter may want to observe (never persisted)."""

    leader: str | None
    role: Role


@frozen
class RestoredState:
    """What the adapter read back from disk at start-up."""

    hard_state: HardState = HardState()
    entries: tuple[Entry, ...] = ()
    snapshot: SnapshotMeta = SnapshotMeta()
    #: The state machine's applied index, if it is durable (else the snapshot's).
    applied: int = 0
    #: The durable log may have lost entries this server acknowledged
    #: (SPEC §11): it neither votes nor counts towards commits until a
    #: leader has restored it.
    recovering: bool = False


@frozen
class Ready:
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]
    soft_state: SoftState | None
    #: A snapshot from the leader (InstallSnapshot) that replaces the log:
    #: persist it with ``snapshot_data`` and restore the state machine from
    #: it before anything else in this Ready (it comes before ``entries``).
    snapshot: SnapshotMeta | None = None
    snapshot_data: bytes = b""
    #: The log is whole again after a recovery (SPEC §11): once this Ready
    #: is persisted, the adapter may forget that it was recovering.
    recovered: bool = False
    #: The log was found to have lost entries this server acknowledged (the
    #: reason): before anything else, the adapter records that it is
    #: recovering, so that it does not vote after a restart either.
    lost: str | None = None

    @property
    def must_sync(self) -> bool:
        return self.hard_state is not None or bool(self.entries) or self.snapshot is not None
