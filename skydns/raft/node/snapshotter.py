"""A Raft node's snapshots: taking them, compacting, sending and installing.

- **Taking**: once about ``snapshot_entries`` entries (each member draws
  its own point within a quarter either side) were applied since the last
  snapshot, the node copies the registry's state (a shallow copy of
  immutable instances, a few ms for 100,000) and the session table, and
  encodes the copy on the reactor thread in steps of about a millisecond, a
  millisecond apart (``step_later``), between the requests and queries it
  serves.  Joining the pieces into one byte string (``bytes.join`` lets go
  of the GIL while it copies) and the durable write run through
  ``in_thread``.  (Encoding in a thread cost more: the reactor thread gives
  up the GIL at each system call and then waits up to the interpreter's
  switch interval, 5 ms, to get it back from a thread that computes, so
  requests stalled for as long as a snapshot was encoded.  With 64 clients
  writing to a 3-node cluster, p99 of renewals was 72-81 ms with snapshots
  and 39-45 ms without; now the two cannot be told apart.)  When the
  snapshot is stored (``save_snapshot`` compacts the stored log to it), the
  core forgets its entries too, except a tail of ``keep_entries`` kept in
  memory for followers that are only a little behind.
- **Sending**: the core asks for an `InstallSnapshot` (with empty data) for
  a follower whose next entry was compacted away; the node streams the last
  stored snapshot (which may be newer than the core's compaction point, as
  in etcd) in chunks (`skydns.raft.snapshots.frame_chunks`).
- **Receiving**: chunks are assembled and checked; the whole snapshot is
  decoded (in a thread) and only then stepped into the core; the Ready that
  accepts it is persisted and restores the registry and the session table
  before anything else in it is saved or applied.
- **Starting**: the last stored snapshot restores the registry and the
  session table, and the log suffix after it is replayed.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from skydns.raft.core.messages import Entry, InstallSnapshot, SnapshotMeta
from skydns.raft.node.sessions import SessionTable
from skydns.raft.node.snapshots import (
    CHUNK_SIZE,
    Assembler,
    decode_addresses,
    decode_state,
    frame_chunks,
    take_steps,
)
from skydns.raft.storage.disk import StorageFailure
from skydns.registry import Applied, Registry, SnapshotError, run_steps

if TYPE_CHECKING:
    from skydns.raft.node.driver import RaftNode

log = Logger()
T = TypeVar("T")

#: Runs a function off the reactor thread; fires with its result.
InThread = Callable[..., "Deferred[Any]"]

#: Calls a function at a later reactor turn (``reactor.callLater(STEP_PAUSE, f)``).
StepLater = Callable[[Callable[[], None]], object]

#: Seconds between two steps of a snapshot's encoding.  Not 0: with a step
#: always due, the reactor would never wait in ``epoll``, the one moment it
#: gives up the GIL, and the thread making the log durable would wait up to
#: the interpreter's switch interval (5 ms) each time it needs the GIL back
#: (measured: a leader's fdatasync took 40 ms instead of 3, and writes
#: stalled for as long as the encoding ran).
STEP_PAUSE = 0.001

DEFAULT_SNAPSHOT_ENTRIES = 10_000
DEFAULT_KEEP_ENTRIES = 1_000


def synchronously(call: Callable[..., T], *args: Any) -> Deferred[T]:
    return maybeDeferred(call, *args)


#: Decodes snapshot bytes (`decode_state`, or one that also tunes the GC).
Decode = Callable[[bytes], "tuple[Registry, SessionTable[Applied]]"]


class Snapshotter:
    def __init__(
        self,
        node: RaftNode,
        snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES,
        keep_entries: int = DEFAULT_KEEP_ENTRIES,
        in_thread: InThread | None = None,
        chunk_size: int = CHUNK_SIZE,
        decode: Decode = decode_state,
        step_later: StepLater | None = None,
    ) -> None:
        """``step_later``: how the encoding's next step is scheduled; without
        it a snapshot is encoded at once (tests, the simulation)."""
        self.node = node
        self.step_later = step_later
        #: Snapshot bytes -> (registry, session table); `SnapshotError` if unreadable.
        self.decode = decode
        self.snapshot_entries = snapshot_entries
        #: Entries after the last snapshot at which the next is taken.
        self.due = self._draw_due()
        self.keep_entries = keep_entries
        self.in_thread: InThread = in_thread or synchronously
        self.chunk_size = chunk_size
        #: The last snapshot stored (what followers are sent).
        self.latest: tuple[SnapshotMeta, bytes] | None = None
        self.taking: Deferred[None] | None = None
        self.assembler = Assembler()
        #: Snapshots received and decoded, waiting for the core's Ready.
        self._decoded: dict[int, tuple[Registry, SessionTable[Applied]]] = {}
        self.taken = 0
        self.installed = 0
        self.last_duration = 0.0

    # --- starting -----------------------------------------------------------

    def load(
        self, meta: SnapshotMeta | None, entries: Sequence[Entry]
    ) -> tuple[SnapshotMeta, list[Entry]]:
        """Restore the registry and sessions from the stored snapshot; return
        the snapshot the core starts from and the entries after it."""
        if meta is None:
            return SnapshotMeta(), list(entries)
        stored = self.node.storage.read_snapshot()
        if stored is None:
            raise StorageFailure(f"the log starts after {meta.index} but there is no snapshot")
        saved, data = stored
        if saved.index < meta.index:
            raise StorageFailure(
                f"the log starts after {meta.index} but the snapshot ends at {saved.index}"
            )
        registry, sessions = self.decode(data)
        self._restore(registry, sessions)
        self.node.members.snapshot_addresses = decode_addresses(data)
        self.latest = (saved, data)
        return saved, [e for e in entries if e.index > saved.index]

    def _restore(self, registry: Registry, sessions: SessionTable[Applied]) -> None:
        self.node.registry.replace_with(registry)
        self.node.sessions = sessions

    # --- taking -------------------------------------------------------------

    def maybe_take(self) -> None:
        node = self.node
        core = node.core
        applied = core.log.applied
        if self.taking is not None or node.failed or applied != node.applied_index:
            return
        base = self.latest[0].index if self.latest is not None else core.log.snapshot.index
        if applied - base < self.due:
            return
        self.due = self._draw_due()
        self.take()

    def _draw_due(self) -> int:
        """``snapshot_entries``, give or take a quarter, drawn anew for each
        snapshot: the members of a cluster apply the same entries, and with
        one threshold they would all encode a snapshot at the same moment,
        so a leader could find no follower free to acknowledge its writes
        for as long as that takes (and on one machine, three processes
        would want the CPU at once)."""
        spread = self.snapshot_entries // 4
        return self.snapshot_entries + self.node.rng.randint(-spread, spread)

    def take(self) -> Deferred[None]:
        """Snapshot the state applied so far (one snapshot at a time)."""
        node = self.node
        if self.taking is not None:
            return self.taking
        meta = node.core.snapshot_meta(node.core.log.applied)
        state = node.registry.frozen_state()
        sessions = node.sessions.snapshot()
        addresses = dict(node.addresses)
        start = node.clock.seconds()

        def join_and_save(pieces: list[bytes]) -> bytes:
            data = b"".join(pieces)
            node.storage.save_snapshot(meta, data)
            return data

        def stored(data: bytes | None) -> None:
            self.taking = None
            if data is None:
                return  # the node failed or stopped while encoding
            self.taken += 1
            self.last_duration = node.clock.seconds() - start
            if node.failed:
                return
            if self.latest is None or self.latest[0].index < meta.index:
                self.latest = (meta, data)
            log.info("raft snapshot at {index} stored ({size} bytes)",
                     index=meta.index, size=len(data))  # fmt: skip
            node.with_core(functools.partial(self._compact_core, meta.index))

        def failed(failure: Any) -> None:
            self.taking = None
            if failure.check(StorageFailure):
                node.fail(failure.value)
            else:
                log.failure("taking a snapshot failed", failure)

        taking = self.taking = Deferred()
        d = self._encode(take_steps(state, sessions, addresses))
        d.addCallback(lambda done: None if done is None else self.in_thread(join_and_save, done))
        d.addCallbacks(stored, failed)
        d.addBoth(lambda _: taking.callback(None))
        return taking

    def _encode(self, steps: Generator[None, None, T]) -> Deferred[T | None]:
        """Run ``steps`` one at a time, `step_later` apart; fires with their
        result, or None if the node failed or began to stop meanwhile (the
        log still holds everything; a stopping node does not wait for a
        snapshot it no longer needs)."""
        if self.step_later is None:
            return maybeDeferred(run_steps, steps)
        step_later = self.step_later
        done: Deferred[T | None] = Deferred()

        def step() -> None:
            if self.node.failed or not self.node.running:
                done.callback(None)
                return
            try:
                next(steps)
            except StopIteration as end:
                done.callback(end.value)
            except Exception:
                done.errback()
            else:
                step_later(step)

        step_later(step)
        return done

    def _compact_core(self, index: int) -> None:
        core = self.node.core
        keep_from = index - self.keep_entries
        if keep_from > core.log.snapshot.index and keep_from <= core.log.applied:
            core.compact(core.snapshot_meta(keep_from))

    # --- sending ------------------------------------------------------------

    def send(self, message: InstallSnapshot) -> None:
        """Stream the latest stored snapshot to ``message.dst``."""
        if self.latest is None:
            log.error("asked to send a snapshot, but none is stored")
            return
        meta, data = self.latest
        for chunk in frame_chunks(data, self.chunk_size):
            self.node.transport.send(InstallSnapshot(message.src, message.dst, message.term,
                                                     meta, chunk))  # fmt: skip

    # --- receiving ----------------------------------------------------------

    def receive(self, message: InstallSnapshot) -> None:
        """One chunk from a leader; steps the core once the snapshot is whole."""
        if message.term < self.node.core.term:
            return  # an old leader's transfer: ignore it
        whole = self.assembler.receive(message)
        if whole is None:
            return
        index = whole.meta.index
        d = self.in_thread(self.decode, whole.data)

        def decoded(result: tuple[Registry, SessionTable[Applied]]) -> None:
            if self.node.failed or not self.node.running:
                return
            self._decoded = {index: result}
            self.node.with_core(functools.partial(self.node.step_message, whole))

        def undecodable(failure: Any) -> None:
            failure.trap(SnapshotError)
            log.error("a snapshot from {src} cannot be read: {error}",
                      src=whole.src, error=failure.getErrorMessage())  # fmt: skip

        d.addCallbacks(decoded, undecodable)
        d.addErrback(lambda f: log.failure("installing a snapshot", f))

    def install(self, meta: SnapshotMeta, data: bytes) -> None:
        """Persist a snapshot the core accepted and restore the state from it
        (raises `StorageFailure`)."""
        decoded = self._decoded.pop(meta.index, None)
        self._decoded.clear()
        if decoded is None:
            decoded = self.decode(data)
        self.node.storage.save_snapshot(meta, data)
        self.latest = (meta, data)
        self._restore(*decoded)
        self.node.members.snapshot_addresses = decode_addresses(data)
        self.installed += 1
        log.info("raft snapshot at {index} installed from the leader", index=meta.index)
