"""A Raft node's snapshots: taking them, compacting, sending and installing.

- **Taking**: once about ``snapshot_entries`` entries (each member draws its
  own point within a quarter either side, so members do not all encode at
  once) were applied since the last snapshot, the state machine captures its
  state and encodes it in steps of about a millisecond, ``step_later``
  apart, between the requests and queries the node serves; joining the
  pieces and the durable write run through ``in_thread``.  Once stored (the
  storage compacts its log to it), the core forgets its entries too, except
  a tail of ``keep_entries`` for followers that are only a little behind.
- **Sending**: for a follower whose next entry was compacted away the core
  emits an empty `InstallSnapshot`; the node streams the last stored
  snapshot (``skydns.raft.node.transfer``).
- **Receiving**: chunks are assembled and checked; the whole snapshot is
  decoded (in a thread) and only then stepped into the core; the Ready that
  accepts it is persisted and restores the state machine and the session
  table before anything else in it is saved or applied.
- **Starting**: the last stored snapshot restores the state machine and the
  session table, and the log suffix after it is replayed.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Sequence
from typing import Any, Callable, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from skydns.raft.core.messages import Entry, InstallSnapshot, SnapshotMeta
from skydns.raft.core.raft import RaftCore
from skydns.raft.node import snapshots
from skydns.raft.node.applier import Applier
from skydns.raft.node.condition import Condition
from skydns.raft.node.gate import CoreGate
from skydns.raft.node.machine import IStateMachine, SnapshotError
from skydns.raft.node.members import Members
from skydns.raft.node.transfer import CHUNK_SIZE, Assembler, frame_chunks
from skydns.raft.storage.errors import StorageFailure
from skydns.raft.storage.interface import IRaftStorage

log = Logger()
T = TypeVar("T")

#: Runs a function off the reactor thread; fires with its result.
InThread = Callable[..., "Deferred[Any]"]

#: Calls a function at a later reactor turn (``reactor.callLater(STEP_PAUSE, f)``).
StepLater = Callable[[Callable[[], None]], object]

#: Seconds between two steps of a snapshot's encoding.  Not 0: with a step
#: always due the reactor would never wait in ``epoll``, the one moment it
#: gives up the GIL, and the thread making the log durable would wait for it
#: (docs/cluster.md, run F).
STEP_PAUSE = 0.001

DEFAULT_SNAPSHOT_ENTRIES = 10_000
DEFAULT_KEEP_ENTRIES = 1_000


#: A decoded snapshot: (the machine's state, the session table, the
#: addresses, the read replicas).
Decoded = tuple[Any, Any, dict[str, str | None], frozenset[str]]


def synchronously(call: Callable[..., T], *args: Any) -> Deferred[T]:
    return maybeDeferred(call, *args)


def load_snapshot(
    storage: IRaftStorage, machine: IStateMachine, meta: SnapshotMeta | None,
    entries: Sequence[Entry],
) -> tuple[SnapshotMeta, list[Entry], tuple[SnapshotMeta, bytes, Decoded] | None]:
    """At start-up: the snapshot the core starts from, the entries after it,
    and the stored snapshot decoded (None if the log starts at index 1)."""
    if meta is None:
        return SnapshotMeta(), list(entries), None
    stored = storage.read_snapshot()
    if stored is None:
        raise StorageFailure(f"the log starts after {meta.index} but there is no snapshot")
    saved, data = stored
    if saved.index < meta.index:
        raise StorageFailure(
            f"the log starts after {meta.index} but the snapshot ends at {saved.index}"
        )
    try:
        decoded = snapshots.decode(machine, data)
    except SnapshotError as e:
        raise StorageFailure(f"the stored snapshot cannot be read: {e}") from e
    return saved, [e for e in entries if e.index > saved.index], (saved, data, decoded)


class Snapshotter:
    def __init__(
        self,
        storage: IRaftStorage,
        machine: IStateMachine,
        applier: Applier,
        members: Members,
        gate: CoreGate,
        send: Callable[[InstallSnapshot], None],
        deliver: Callable[[InstallSnapshot], None],
        clock: IReactorTime,
        condition: Condition,
        fail: Callable[[StorageFailure], None],
        rng: random.Random,
        snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES,
        keep_entries: int = DEFAULT_KEEP_ENTRIES,
        in_thread: InThread | None = None,
        step_later: StepLater | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        """``deliver`` steps a whole snapshot into the core; ``step_later``
        schedules the encoding's next step (without it a snapshot is encoded
        at once)."""
        self.storage = storage
        self.machine = machine
        self.applier = applier
        self.members = members
        self.gate = gate
        self.send_message = send
        self.deliver = deliver
        self.clock = clock
        self.condition = condition
        self.fail = fail
        self.rng = rng
        self.snapshot_entries = snapshot_entries
        self.keep_entries = keep_entries
        self.in_thread: InThread = in_thread or synchronously
        self.step_later = step_later
        self.chunk_size = chunk_size
        #: Entries after the last snapshot at which the next is taken.
        self.due = self._draw_due()
        #: The last snapshot stored (what followers are sent).
        self.latest: tuple[SnapshotMeta, bytes] | None = None
        self.taking: Deferred[None] | None = None
        self.assembler = Assembler()
        #: A snapshot received and decoded, waiting for the core's Ready.
        self._decoded: dict[int, Decoded] = {}
        self.taken = 0
        self.installed = 0
        self.last_duration = 0.0

    # --- starting -----------------------------------------------------------

    def restore_stored(self, meta: SnapshotMeta, data: bytes, decoded: Decoded) -> None:
        """Start from the stored snapshot `load_snapshot` read."""
        self._restore(decoded)
        self.latest = (meta, data)

    def _restore(self, decoded: Decoded) -> None:
        state, sessions, addresses, replicas = decoded
        self.machine.install(state)
        self.applier.sessions = sessions
        self.members.snapshot_addresses = addresses
        self.members.snapshot_replicas = replicas

    # --- taking -------------------------------------------------------------

    def maybe_take(self) -> None:
        core = self.gate.core
        applied = core.log.applied
        if self.taking is not None or self.condition.failed or applied != self.applier.applied:
            return
        base = self.latest[0].index if self.latest is not None else core.log.snapshot.index
        if applied - base < self.due:
            return
        self.due = self._draw_due()
        self.take()

    def _draw_due(self) -> int:
        spread = self.snapshot_entries // 4
        return self.snapshot_entries + self.rng.randint(-spread, spread)

    def take(self) -> Deferred[None]:
        """Snapshot the state applied so far (one snapshot at a time)."""
        if self.taking is not None:
            return self.taking
        core = self.gate.core
        meta = core.snapshot_meta(core.log.applied)
        steps = snapshots.take_steps(
            self.machine, self.applier.sessions.snapshot(), dict(self.members.addresses),
            self.members.replicas_at(core, meta.index),
        )
        start = self.clock.seconds()

        def join_and_save(pieces: list[bytes]) -> bytes:
            data = b"".join(pieces)
            self.storage.save_snapshot(meta, data)
            return data

        def stored(data: bytes | None) -> None:
            self.taking = None
            if data is None:
                return  # the node failed or stopped while encoding
            self.taken += 1
            self.last_duration = self.clock.seconds() - start
            if self.condition.failed:
                return
            if self.latest is None or self.latest[0].index < meta.index:
                self.latest = (meta, data)
            log.info("raft snapshot at {index} stored ({size} bytes)",
                     index=meta.index, size=len(data))  # fmt: skip
            self.gate.run(lambda core: self._compact_core(core, meta.index))

        def failed(failure: Any) -> None:
            self.taking = None
            if failure.check(StorageFailure):
                self.fail(failure.value)
            else:
                log.failure("taking a snapshot failed", failure)

        taking = self.taking = Deferred()
        d = self._encode(steps)
        d.addCallback(lambda done: None if done is None else self.in_thread(join_and_save, done))
        d.addCallbacks(stored, failed)
        d.addBoth(lambda _: taking.callback(None))
        return taking

    def _encode(self, steps: Generator[None, None, T]) -> Deferred[T | None]:
        """Run ``steps`` one at a time, `step_later` apart; fires with their
        result, or None if the node failed or began to stop meanwhile."""
        if self.step_later is None:
            return maybeDeferred(snapshots.run_steps, steps)
        step_later = self.step_later
        done: Deferred[T | None] = Deferred()

        def step() -> None:
            if self.condition.failed or not self.condition.running:
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

    def _compact_core(self, core: RaftCore, index: int) -> None:
        keep_from = index - self.keep_entries
        if keep_from > core.log.snapshot.index and keep_from <= core.log.applied:
            # The read replicas at the new start, while its entries are there.
            self.members.snapshot_replicas = self.members.replicas_at(core, keep_from)
            core.compact(core.snapshot_meta(keep_from))

    # --- sending ------------------------------------------------------------

    def send(self, message: InstallSnapshot) -> None:
        """Stream the latest stored snapshot to ``message.dst``."""
        if self.latest is None:
            log.error("asked to send a snapshot, but none is stored")
            return
        meta, data = self.latest
        for chunk in frame_chunks(data, self.chunk_size):
            self.send_message(InstallSnapshot(message.src, message.dst, message.term, meta, chunk))

    # --- receiving ----------------------------------------------------------

    def receive(self, message: InstallSnapshot) -> None:
        """One chunk from a leader; steps the core once the snapshot is whole."""
        if message.term < self.gate.core.term:
            return  # an old leader's transfer: ignore it
        whole = self.assembler.receive(message)
        if whole is None:
            return
        index = whole.meta.index
        d = self.in_thread(snapshots.decode, self.machine, whole.data)

        def decoded(result: Decoded) -> None:
            if self.condition.refusal() is not None:
                return
            self._decoded = {index: result}
            self.deliver(whole)

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
            try:
                decoded = snapshots.decode(self.machine, data)
            except SnapshotError as e:
                raise StorageFailure(f"the leader's snapshot cannot be read: {e}") from e
        self.storage.save_snapshot(meta, data)
        self.latest = (meta, data)
        self._restore(decoded)
        self.applier.applied = meta.index
        self.installed += 1
        log.info("raft snapshot at {index} installed from the leader", index=meta.index)
