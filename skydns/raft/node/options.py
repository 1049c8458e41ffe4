"""How a Raft node keeps time and sizes its work (`NodeOptions`)."""

from __future__ import annotations

from attrs import frozen

from skydns.raft.node.snapshotter import DEFAULT_KEEP_ENTRIES, DEFAULT_SNAPSHOT_ENTRIES


@frozen
class NodeOptions:
    """How a node keeps time and sizes its work."""

    #: Seconds per core tick.
    tick_interval: float = 0.01
    #: Ticks without a leader before an election (randomized up to twice that).
    election_tick: int = 50
    #: Ticks between a leader's heartbeats.
    heartbeat_tick: int = 5
    #: Seconds a proposal or read may wait before it fails (the API's own
    #: timeout is longer, so the client sees this clearer error).
    proposal_timeout: float = 8.0
    #: A proposal not applied this long after it was submitted is submitted
    #: again (as is a read that got no read index).
    retry_interval: float = 2.0
    #: Pause before resubmitting after a failed forward.
    retry_delay: float = 0.05
    max_size_per_msg: int = 60_000
    #: AppendEntries a leader keeps unacknowledged per follower.
    max_inflight: int = 64
    #: PreVote (thesis §9.6) and CheckQuorum (thesis §6.2).
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES
    keep_entries: int = DEFAULT_KEEP_ENTRIES
    #: A node started with ``--join``: no member until the leader adds it.
    joining: bool = False


DEFAULT_OPTIONS = NodeOptions()
