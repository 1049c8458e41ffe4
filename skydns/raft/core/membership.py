"""Membership changes one server at a time (Raft thesis ch. 4).

Functions over the core's state (`CoreState`), kept apart (as ``election`` is) so that
``core`` stays readable.  A configuration is in force as soon as its CONFIG
entry is appended (thesis §4.1), committed or not; if a new leader's log
replaces that entry, the previous configuration is back (`track_config`).
Learners receive the log but never vote, count towards no quorum and never
campaign.  A leader that removes itself keeps leading, without counting
itself, until the removal commits; then it hands over (TimeoutNow to the
most caught-up voter) and steps down (`step_down_if_removed`).
"""

from __future__ import annotations

from skydns.raft.core import replication
from skydns.raft.core.messages import (
    Configuration,
    Entry,
    EntryKind,
    TimeoutNow,
    decode_config,
    encode_config,
)
from skydns.raft.core.progress import Inflights, Progress
from skydns.raft.core.ready import ConfigChangeRefused, NotLeader, ProposalDropped, Role
from skydns.raft.core.state import CoreState


def change_config(core: CoreState, new: Configuration, data: bytes | None = None) -> int:
    """Append a CONFIG entry that moves the cluster to ``new``; its index.

    One voter added or removed at a time (learners come and go freely),
    one change in flight, and only once an entry of this leader's term
    has committed (thesis §4.1, and its 2015 erratum).  ``data`` may
    carry more than the configuration (the adapter's member addresses)
    as long as `decode_config` reads ``new`` from it.
    """
    if core.role is not Role.LEADER:
        raise NotLeader(core.leader)
    if core.lead_transferee is not None:
        raise ProposalDropped(f"transferring leadership to {core.lead_transferee}")
    if core.config_index > core.log.committed:
        raise ConfigChangeRefused("another membership change is in flight")
    if core.log.term(core.log.committed) != core.term:
        raise ConfigChangeRefused("the leader has not committed an entry of its term yet")
    old = core.config
    if not new.voters:
        raise ConfigChangeRefused("a cluster needs at least one voter")
    if new.voters & new.learners:
        raise ConfigChangeRefused("a member is either a voter or a learner")
    if len(new.voters ^ old.voters) > 1:
        raise ConfigChangeRefused("only one voter may be added or removed at a time")
    if new == old:
        raise ConfigChangeRefused("the configuration is unchanged")
    data = encode_config(new) if data is None else data
    if decode_config(data) != new:
        raise ValueError("the entry's data does not describe the new configuration")
    entry = Entry(core.term, core.log.last_index() + 1, EntryKind.CONFIG, data)
    core.append([entry])
    core.broadcast_append()
    return entry.index


def track_config(core: CoreState, entries: list[Entry] | tuple[Entry, ...]) -> None:
    """Follow the log's latest CONFIG entry after ``entries`` were appended."""
    if not entries:
        return
    if core.config_index >= entries[0].index:
        # The entry that set the config may have been replaced: look again.
        index = config_entry_at(core, entries[0].index - 1)
        core.config_index = index
        core.set_config(_config_from(core, index))
    for entry in entries:
        if entry.kind is EntryKind.CONFIG:
            core.config_index = entry.index
            core.set_config(decode_config(entry.data))


def set_config(core: CoreState, config: Configuration) -> None:
    core.config = config
    if core.role is not Role.LEADER:
        return
    members = config.voters | config.learners
    for peer in list(core.progress):
        if peer not in members and peer != core.id:
            del core.progress[peer]
    for peer in members:
        if peer not in core.progress:
            core.progress[peer] = Progress(
                match=0,
                next=core.log.last_index() + 1,
                inflights=Inflights(core.max_inflight),
                last_active_tick=core.ticks,
            )
    if core.lead_transferee is not None and core.lead_transferee not in config.voters:
        core.lead_transferee = None
    if core.id in config.voters:
        replication.maybe_commit(core)  # a smaller quorum may commit more now


def step_down_if_removed(core: CoreState) -> None:
    """A leader that removed itself hands over once the removal commits."""
    if core.role is not Role.LEADER or core.id in core.config.voters:
        return
    if core.config_index > core.log.committed:
        return
    best = max(
        sorted(core.config.voters),
        key=lambda v: core.progress[v].match if v in core.progress else -1,
    )
    if core.progress.get(best) is not None and core.progress[best].match == (core.log.last_index()):
        core.send(TimeoutNow(core.id, best, core.term))
    core.become_follower(core.term, None)


def config_at(core: CoreState, index: int) -> Configuration:
    """The configuration in force once the log up to ``index`` is applied."""
    return _config_from(core, config_entry_at(core, index))


def config_entry_at(core: CoreState, index: int) -> int:
    """The index of the CONFIG entry in force once the log up to ``index`` is
    applied, or the snapshot's index when the log after it has none."""
    position = index
    while position > core.log.snapshot.index and core.log.entry(position).kind is not (
        EntryKind.CONFIG
    ):
        position -= 1
    return max(position, core.log.snapshot.index)


def _config_from(core: CoreState, position: int) -> Configuration:
    """The configuration of the CONFIG entry at ``position``, or the
    snapshot's (the initial one before any) at the snapshot's index."""
    if position > core.log.snapshot.index:
        return decode_config(core.log.entry(position).data)
    config = core.log.snapshot.config
    return config if config is not None else core.initial_config
