"""What the core's rules read and change: the state of one Raft server.

`RaftCore` (``skydns.raft.core.raft``) holds this state; the rule modules
(``election``, ``replication``, ``reads``, ``membership``) are functions over
it.  They see it through this protocol rather than through `RaftCore`, so
that they do not import the module that imports them.
"""

from __future__ import annotations

import random
from typing import Protocol

from skydns.raft.core.log import RaftLog
from skydns.raft.core.messages import Configuration, Entry, HardState, InstallSnapshot, Message
from skydns.raft.core.progress import Progress, ReadOnly
from skydns.raft.core.ready import ReadState, Role, SoftState


class CoreState(Protocol):
    """One server's Raft state (Figure 2 of the paper, plus etcd's extras)."""

    id: str
    rng: random.Random
    term: int
    vote: str | None
    role: Role
    leader: str | None
    log: RaftLog
    config: Configuration
    initial_config: Configuration
    #: The index of the CONFIG entry in force (thesis §4.1).
    config_index: int
    ticks: int
    election_tick: int
    election_elapsed: int
    randomized_election_timeout: int
    heartbeat_tick: int
    heartbeat_elapsed: int
    pre_vote: bool
    check_quorum: bool
    max_size_per_msg: int
    max_inflight: int
    snapshot_timeout_tick: int
    votes: dict[str, bool]
    progress: dict[str, Progress]
    lead_transferee: str | None
    read_only: ReadOnly
    pending_reads: list[tuple[bytes, str | None]]
    read_states: list[ReadState]
    pending_snapshot: InstallSnapshot | None
    #: True while this server's durable log may have lost entries it had
    #: acknowledged: it neither votes nor counts towards a commit until a
    #: leader has restored its log (SPEC §11).
    recovering: bool
    #: Set when recovery ends, until a Ready has handed that out.
    recovered: bool
    lost: str | None
    #: Outgoing messages, until a Ready hands them out.
    msgs: list[Message]
    #: What the last Ready handed out (a new Ready carries what changed).
    prev_hard_state: HardState
    prev_soft_state: SoftState

    def quorum(self) -> int: ...

    def hard_state(self) -> HardState: ...

    def promotable(self) -> bool: ...

    def send(self, message: Message) -> None: ...

    def peers(self) -> list[str]: ...

    def reset(self, term: int) -> None: ...

    def become_follower(self, term: int, leader: str | None) -> None: ...

    def become_leader(self) -> None: ...

    def append(self, entries: list[Entry]) -> None: ...

    def broadcast_append(self) -> None: ...

    def broadcast_heartbeat(self, context: bytes | None) -> None: ...

    def track_config(self, entries: list[Entry] | tuple[Entry, ...]) -> None: ...

    def set_config(self, config: Configuration) -> None: ...

    def step_down_if_removed(self) -> None: ...

    def config_at(self, index: int) -> Configuration: ...
