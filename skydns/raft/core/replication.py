"""Log replication, both sides (Raft §5.3, §7).

Functions over the core's state (`CoreState`), kept apart (as ``election`` and
``membership`` are) so that ``core`` stays readable.  The leader appends,
sends AppendEntries (or InstallSnapshot, when a follower needs compacted
entries) and heartbeats, tracks each follower's `Progress` from the
responses, and commits what a quorum holds; a follower checks and appends
what it is sent.
"""

from __future__ import annotations

from skydns.raft.core import reads
from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    TimeoutNow,
)
from skydns.raft.core.progress import ProgressState
from skydns.raft.core.state import CoreState

# --- leader -----------------------------------------------------------------


def append(core: CoreState, entry: Entry) -> None:
    """Append ``entry`` to the leader's own log (and count its own copy)."""
    append_all(core, [entry])


def append_all(core: CoreState, entries: list[Entry]) -> None:
    """Append ``entries`` (consecutive, this term) to the leader's own log."""
    core.log.append(entries)
    configs = [e for e in entries if e.kind is EntryKind.CONFIG]
    if configs:
        core.track_config(configs)
    own = core.progress[core.id]
    own.maybe_update(entries[-1].index)
    maybe_commit(core)


def send_append(core: CoreState, to: str, send_if_empty: bool = True) -> bool:
    """Send ``to`` what it lacks; whether a message went out."""
    pr = core.progress[to]
    if pr.paused():
        return False
    prev = pr.next - 1
    prev_term = core.log.term(prev)
    if prev_term is None:
        # The entries it needs were compacted away: it needs a snapshot.
        pr.become_snapshot(core.log.snapshot.index, core.ticks)
        core.send(InstallSnapshot(core.id, to, core.term, core.log.snapshot))
        return True
    entries = core.log.slice(pr.next, core.max_size_per_msg)
    if not entries and not send_if_empty:
        return False
    commit = core.log.committed
    core.send(AppendEntries(core.id, to, core.term, prev, prev_term, tuple(entries), commit))
    pr.sent(entries[-1].index if entries else prev, len(entries))
    return True


def broadcast_append(core: CoreState) -> None:
    for peer in core.peers():
        send_append(core, peer)


def broadcast_heartbeat(core: CoreState, context: bytes | None) -> None:
    for peer in core.peers():
        commit = min(core.progress[peer].match, core.log.committed)
        core.send(Heartbeat(core.id, peer, core.term, commit, context))


def maybe_commit(core: CoreState) -> bool:
    """Advance the commit index to what a quorum holds (Raft §5.3, §5.4.2).

    Only an entry of the current term is committed by counting replicas;
    earlier ones commit with it (the paper's Figure 8).
    """
    matches = sorted(
        (0 if core.progress[v].recovering else core.progress[v].match for v in core.config.voters),
        reverse=True,
    )
    index = matches[core.quorum() - 1]
    if index > core.log.committed and core.log.term(index) == core.term:
        core.log.commit_to(index)
        return True
    return False


def handle_append_response(core: CoreState, m: AppendEntriesResponse) -> None:
    pr = core.progress.get(m.src)
    if pr is None:
        return
    pr.last_active_tick = core.ticks
    if m.recovering and not pr.recovering:
        # Its log may have lost what it acknowledged: forget what it said
        # and find where it matches again (SPEC §11).
        pr.match = 0
        pr.become_probe()
        pr.next = min(m.index + 1, core.log.last_index() + 1)
    pr.recovering = m.recovering
    if not m.success:
        hint = m.hint_index
        if m.hint_term > 0:
            hint, _ = core.log.find_conflict_by_term(m.hint_index, m.hint_term)
        if pr.maybe_decrease_to(m.index, hint):
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            send_append(core, m.src)
        return
    was_paused = pr.paused()
    if not pr.maybe_update(m.index):
        return
    if pr.state is ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state is ProgressState.SNAPSHOT:
        if pr.match >= pr.pending_snapshot:
            pr.become_probe()
    else:
        pr.inflights.free_le(m.index)
    if maybe_commit(core):
        reads.release_pending(core)
        broadcast_append(core)
    elif was_paused:
        send_append(core, m.src)
    while send_append(core, m.src, send_if_empty=False):
        pass
    if m.src == core.lead_transferee and pr.match == core.log.last_index():
        core.send(TimeoutNow(core.id, m.src, core.term))
    core.step_down_if_removed()


def handle_heartbeat_response(core: CoreState, m: HeartbeatResponse) -> None:
    pr = core.progress.get(m.src)
    if pr is None:
        return
    pr.last_active_tick = core.ticks
    pr.probe_sent = False
    if (
        pr.state is ProgressState.SNAPSHOT
        and core.ticks - pr.snapshot_tick >= core.snapshot_timeout_tick
    ):
        # The snapshot (or its acknowledgement) was lost: send it again.
        pr.pending_snapshot = 0
        pr.become_probe()
    if pr.state is ProgressState.REPLICATE and pr.inflights.full():
        pr.inflights.free_first()
    if pr.match < core.log.last_index():
        send_append(core, m.src)
    if m.context is None or m.src not in core.config.voters:
        return
    reads.ack(core, m.context, m.src)


# --- follower ---------------------------------------------------------------


def handle_append(core: CoreState, m: AppendEntries) -> None:
    if m.prev_log_index < core.log.committed:
        _acknowledge(core, m.src, core.log.committed)
        return
    last_new = core.log.maybe_append(m.prev_log_index, m.prev_log_term, m.commit, m.entries)
    if last_new is not None:
        core.track_config(m.entries)
        if core.recovering and _restored(core, m, last_new):
            end_recovery(core, m.src)
        _acknowledge(core, m.src, last_new)
        return
    hint_index, hint_term = core.log.find_conflict_by_term(m.prev_log_index, m.prev_log_term)
    core.send(
        AppendEntriesResponse(
            core.id, m.src, core.term, False, m.prev_log_index, hint_index, hint_term,
            recovering=core.recovering,
        )
    )  # fmt: skip


def _acknowledge(core: CoreState, leader: str, index: int) -> None:
    core.send(
        AppendEntriesResponse(core.id, leader, core.term, True, index, recovering=core.recovering)
    )


def _restored(core: CoreState, m: AppendEntries, last_new: int) -> bool:
    """Whether this (recovering) follower now holds every committed entry:
    all of the leader's log up to a commit index that names an entry of the
    leader's own term (so every entry before it is committed too, Raft
    §5.4.2), which includes whatever this follower once acknowledged."""
    return 0 < m.commit <= last_new and core.log.term(m.commit) == m.term


def lost_entries(core: CoreState, m: Heartbeat) -> None:
    """The leader caps a heartbeat's commit index at what this follower
    acknowledged, yet the log ends before it: it lost entries it once held
    (SPEC §11), which start-up could not see.  It stops voting and counting
    until a leader has restored it, as if it had found the loss at start
    (the Ready's ``lost`` makes that durable), and tells the leader, which
    forgets what it matched and probes from where the log now ends."""
    last = core.log.last_index()
    core.recovering = True
    core.lost = (f"the leader says {m.commit} is committed and acknowledged by this node, "
                 f"but its log ends at {last}")  # fmt: skip
    core.send(
        AppendEntriesResponse(
            core.id, m.src, core.term, False, m.commit, last, core.log.last_term(),
            recovering=True,
        )
    )  # fmt: skip


def end_recovery(core: CoreState, leader: str) -> None:
    """The log is whole again: vote and count as before.  The vote of this
    term, if not cast, goes to the leader that restored the log, so that a
    vote this server may have cast in this term before its loss is never
    followed by a second one (the Ready carrying it is persisted before
    any message goes out)."""
    core.recovering = False
    core.recovered = True
    if core.vote is None:
        core.vote = leader


def handle_snapshot(core: CoreState, m: InstallSnapshot) -> None:
    """Follower side of InstallSnapshot (Raft §7)."""
    meta = m.meta
    if meta.index <= core.log.committed or core.pending_snapshot is not None:
        # Old news (or one is already on its way to the disk).
        _acknowledge(core, m.src, core.log.committed)
        return
    if core.log.match_term(meta.index, meta.term):
        # We hold the snapshot's last entry: only the commit index moves.
        core.log.commit_to(meta.index)
        _acknowledge(core, m.src, core.log.committed)
        return
    core.log.restore_snapshot(meta)
    if meta.config is not None:
        core.set_config(meta.config)
    core.config_index = meta.index
    core.pending_snapshot = m
    # Sent only after the Ready that carries the snapshot is persisted.
    _acknowledge(core, m.src, meta.index)
