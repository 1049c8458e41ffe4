"""The contract of a Raft node's durable storage (Raft Figure 2: what must
survive a crash), and what it gives back at start-up."""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen
from zope.interface import Interface

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta


@frozen
class Loaded:
    """What a storage holds when it is opened."""

    hard_state: HardState
    #: The snapshot the log starts after, or None if it starts at index 1.
    snapshot: SnapshotMeta | None
    entries: list[Entry]
    #: Why the log may lack entries this node acknowledged, if it may
    #: (SPEC §11): the node must not vote or count towards a commit until
    #: a leader has restored its log, then call `IRaftStorage.end_recovery`.
    recovering: str | None = None


class IRaftStorage(Interface):
    """Where a Raft node keeps what must survive a crash."""

    def load() -> Loaded:  # type: ignore[misc, empty-body]
        """Open the storage and return what it holds.

        Raises `CorruptDataError` if the data is damaged in a way it cannot
        recover from, and `DataDirLocked` if another process holds it.
        """

    def save(hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Make ``hard_state`` (if not None) and ``entries`` durable before
        returning.

        ``entries`` are consecutive; if the first one's index is at or before
        the last stored index, the stored suffix from that index is replaced
        (Raft §5.3) without comparing terms: pass what the core's
        ``Ready.entries`` holds, which starts at the first real conflict.

        Raises `StorageFailure` if a write or sync failed: the caller must
        stop the process and must not acknowledge anything.
        """

    def compact(index: int, term: int) -> None:
        """Forget the entries up to ``index`` (which ends at ``term``): a
        snapshot holds them.  If the log has no entry ``index`` of ``term``,
        the whole log is dropped and the next entry is ``index + 1`` (§7)."""

    def save_snapshot(meta: SnapshotMeta, data: bytes) -> None:
        """Durably store a snapshot of the state machine, then compact to it."""

    def read_snapshot() -> tuple[SnapshotMeta, bytes] | None:  # type: ignore[misc]
        """The last snapshot saved, if any."""

    def begin_recovery(reason: str) -> None:
        """Note, durably, that the log lacks what the cluster committed (a
        node joining with an empty data dir) until `end_recovery`."""

    def end_recovery() -> None:
        """A leader has restored the log (and the hard state saying so is
        durable): forget that the log was damaged."""

    def close() -> None:  # type: ignore[misc]
        """Release the storage; nothing may be called on it afterwards."""
