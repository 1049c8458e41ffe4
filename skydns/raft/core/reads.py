"""Linearizable reads by ReadIndex (thesis §6.4).

Functions over the core's state (`CoreState`), kept apart (as ``election`` and
``membership`` are) so that ``core`` stays readable.  The leader notes
its commit index for a read, confirms it is still leader with a
heartbeat round (`skydns.raft.core.progress.ReadOnly` counts the
acknowledgements), then hands the index out as a `ReadState` (its own
reads) or a ReadIndexResponse (a follower's).
"""

from __future__ import annotations

from skydns.raft.core.messages import ReadIndexResponse
from skydns.raft.core.ready import ReadState
from skydns.raft.core.state import CoreState


def leader_read(core: CoreState, context: bytes, origin: str | None) -> None:
    if core.log.term(core.log.committed) != core.term or core.id not in core.config.voters:
        # A leader removing itself (until it steps down) cannot count
        # itself towards a read's quorum: it holds the read instead.
        # Until an entry of its term commits, the leader's commit index
        # may lag the cluster's: hold the read until then.
        core.pending_reads.append((context, origin))
        return
    if core.quorum() == 1:
        deliver(core, core.log.committed, context, origin)
    elif core.read_only.add(core.log.committed, context, origin, core.id):
        core.broadcast_heartbeat(context)


def release_pending(core: CoreState) -> None:
    """Serve the reads held until an entry of this term committed."""
    if core.log.term(core.log.committed) != core.term:
        return
    pending, core.pending_reads = core.pending_reads, []
    for context, origin in pending:
        leader_read(core, context, origin)


def ack(core: CoreState, context: bytes, voter: str) -> None:
    """``voter`` answered the heartbeat that carried ``context``."""
    if len(core.read_only.ack(context, voter)) >= core.quorum():
        for index, ctx, origin in core.read_only.release(context):
            deliver(core, index, ctx, origin)


def deliver(core: CoreState, index: int, context: bytes, origin: str | None) -> None:
    if origin is None or origin == core.id:
        core.read_states.append(ReadState(index, context))
    else:
        core.send(ReadIndexResponse(core.id, origin, core.term, index, context))
