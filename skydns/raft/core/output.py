"""What the core hands its adapter: the Ready (see ``skydns.raft.core.raft``),
and its status for operators.  Functions over the core's state."""

from __future__ import annotations

from typing import Any

from skydns.raft.core.ready import Ready, SoftState
from skydns.raft.core.state import CoreState


def has_ready(core: CoreState) -> bool:
    return bool(
        core.pending_snapshot is not None
        or core.msgs
        or core.read_states
        or core.hard_state() != core.prev_hard_state
        or SoftState(core.leader, core.role) != core.prev_soft_state
        or core.log.unstable <= core.log.last_index()
        or core.log.committed > core.log.applied
        or core.recovered
        or core.lost is not None
    )


def ready(core: CoreState) -> Ready:
    hs = core.hard_state()
    soft = SoftState(core.leader, core.role)
    return Ready(
        hard_state=hs if hs != core.prev_hard_state else None,
        entries=tuple(core.log.unstable_entries()),
        committed_entries=tuple(core.log.next_committed()),
        messages=tuple(core.msgs),
        read_states=tuple(core.read_states),
        soft_state=soft if soft != core.prev_soft_state else None,
        snapshot=None if core.pending_snapshot is None else core.pending_snapshot.meta,
        snapshot_data=b"" if core.pending_snapshot is None else core.pending_snapshot.data,
        recovered=core.recovered,
        lost=core.lost,
    )


def advance(core: CoreState, rd: Ready) -> None:
    """The adapter has persisted, sent and applied what ``rd`` held."""
    if rd.hard_state is not None:
        core.prev_hard_state = rd.hard_state
    if rd.soft_state is not None:
        core.prev_soft_state = rd.soft_state
    if rd.snapshot is not None:
        core.pending_snapshot = None
        core.log.unstable = max(core.log.unstable, rd.snapshot.index + 1)
    if rd.entries:
        core.log.unstable = rd.entries[-1].index + 1
    if rd.committed_entries:
        core.log.applied = rd.committed_entries[-1].index
    if rd.recovered:
        core.recovered = False
    if rd.lost is not None:
        core.lost = None
    del core.msgs[: len(rd.messages)]
    del core.read_states[: len(rd.read_states)]


def status(core: CoreState) -> dict[str, Any]:
    return {
        "id": core.id,
        "term": core.term,
        "vote": core.vote,
        "role": core.role.value,
        "leader": core.leader,
        "commit": core.log.committed,
        "applied": core.log.applied,
        "last_index": core.log.last_index(),
        "snapshot_index": core.log.snapshot.index,
        "recovering": core.recovering,
        "voters": sorted(core.config.voters),
        "learners": sorted(core.config.learners),
        "lead_transferee": core.lead_transferee,
        "progress": {
            peer: {"match": pr.match, "next": pr.next, "state": pr.state.value}
            for peer, pr in sorted(core.progress.items())
        },
    }
