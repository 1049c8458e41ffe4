"""Crash safety of the on-disk Raft log.

A crash can tear only the tail of the last segment: whatever a ``save()``
returned from must be loaded intact, and a torn last batch is dropped
whole.  Damage that no crash explains in the last segment (a damaged batch
followed by more data) loads what is intact before it and marks the node as
recovering (SPEC §11); anywhere else it stops the node with the file and
offset.  The first tests model power loss by cutting and flipping bytes;
the last one SIGKILLs a real process in the middle of its saves.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.core.messages import Entry, HardState
from skydns.raft.storage import wal
from skydns.raft.storage.disk import CorruptDataError, DiskStorage
from skydns.raft.storage.interface import Loaded
from skydns.raft.storage.memory import MemoryStorage
from tests.test_raft_log import data_dir, entries, segment_files

#: One save, abstractly: (start a new term, entries to overwrite, entries to
#: write, payload bytes per entry).
Step = tuple[bool, int, int, int]

steps = st.lists(
    st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 5), st.integers(0, 60)),
    min_size=1,
    max_size=12,
)


class History:
    """Saves the same batches to a `DiskStorage` and to a model, remembering
    the model's state and the segment's size after each save."""

    def __init__(self, path: str, segment_size: int = 1 << 24) -> None:
        self.path = path
        self.storage = DiskStorage(path, segment_size)
        self.model = MemoryStorage()
        self.storage.load()
        self.term = 1
        #: The term and vote of the last hard state saved: the hard state
        #: file keeps them even when the WAL's copy is torn off.
        self.voted: tuple[int, str | None] = (0, None)
        self.states: list[Loaded] = [self.model.load()]
        self.sizes = [self.size()]

    def size(self) -> int:
        return os.path.getsize(segment_files(self.path)[-1])

    def save(self, hard_state: HardState | None, batch: Sequence[Entry]) -> None:
        if hard_state is not None:
            self.voted = (hard_state.term, hard_state.vote)
        self.storage.save(hard_state, batch)
        self.model.save(hard_state, batch)
        self.states.append(self.model.load())
        self.sizes.append(self.size())

    def step(self, step: Step) -> None:
        new_term, back, count, payload = step
        if new_term:
            self.term += 1
        loaded = self.model.load()
        log = loaded.entries
        last = log[-1].index if log else 0
        # Raft never overwrites a committed entry.
        first = max(loaded.hard_state.commit + 1, last + 1 - back)
        batch = entries(first, first + count - 1, self.term, b"p" * payload)
        self.save(HardState(self.term, "n1", first - 1) if new_term else None, batch)

    def close(self) -> bytes:
        self.storage.close()
        with open(segment_files(self.path)[-1], "rb") as f:
            return f.read()

    def state_at(self, size: int) -> Loaded:
        """The state a segment cut to ``size`` bytes must load as."""
        durable = [k for k, end in enumerate(self.sizes) if end <= size]
        return self.voting(self.states[durable[-1]])

    def voting(self, state: Loaded) -> Loaded:
        """``state`` with the last term and vote saved, which the hard state
        file holds whatever happens to the WAL's tail."""
        commit = state.hard_state.commit
        return attrs.evolve(state, hard_state=HardState(*self.voted, commit))


def load(path: str) -> Loaded:
    storage = DiskStorage(path)
    try:
        return storage.load()
    finally:
        storage.close()


def rewrite(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def flip(data: bytes, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


class TornTailTests(SynchronousTestCase):
    def test_every_offset_of_the_last_batch(self) -> None:
        """Cut anywhere inside the last batch, the log loads as it was before
        that batch, and the cut is made durable."""
        history = History(data_dir(self))
        history.save(HardState(1, "a", 0), entries(1, 3, 1))
        history.save(None, entries(4, 5, 1, b"x" * 30))
        history.save(HardState(2, "b", 4), entries(5, 8, 2, b"y" * 20))
        data = history.close()
        [segment] = segment_files(history.path)
        before = history.sizes[-2]
        for cut in range(before, len(data)):
            rewrite(segment, data[:cut])
            self.assertEqual(load(history.path), history.voting(history.states[-2]), f"cut {cut}")
            self.assertEqual(os.path.getsize(segment), before)

    def test_saves_continue_after_a_torn_tail(self) -> None:
        """After a torn tail is cut, new saves land and survive a restart."""
        history = History(data_dir(self))
        history.save(None, entries(1, 4, 1))
        history.save(HardState(3), entries(5, 6, 1))
        data = history.close()
        [segment] = segment_files(history.path)
        rewrite(segment, data[:-5])
        storage = DiskStorage(history.path)
        self.assertEqual(storage.load(), Loaded(HardState(3), None, entries(1, 4, 1)))
        storage.save(HardState(2), entries(5, 5, 2))
        storage.close()
        self.assertEqual(
            load(history.path), Loaded(HardState(2), None, entries(1, 4, 1) + entries(5, 5, 2))
        )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=steps, where=st.floats(0, 1), garbage=st.binary(max_size=64))
    def test_cut_anywhere(self, steps: list[Step], where: float, garbage: bytes) -> None:
        """Cut at any offset after the segment's base, plus any garbage a
        crash may leave: the log loads as it was after the last save wholly
        before the cut, never anything else (garbage reaching past the end
        of the batch it damaged, which no single torn write leaves, also
        marks the log as recovering)."""
        history = History(data_dir(self))
        for step in steps:
            history.step(step)
        data = history.close()
        [segment] = segment_files(history.path)
        cut = history.sizes[0] + int(where * (len(data) - history.sizes[0]))
        rewrite(segment, data[:cut] + garbage)
        loaded = load(history.path)
        self.assertEqual(attrs.evolve(loaded, recovering=None), history.state_at(cut))
        if not garbage:
            self.assertIsNone(loaded.recovering)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=steps, bit=st.integers(0, 1 << 20))
    def test_flip_in_the_last_batch(self, steps: list[Step], bit: int) -> None:
        """A flipped bit in the last batch (as a torn write may leave) drops
        that batch and nothing before it."""
        history = History(data_dir(self))
        for step in steps:
            history.step(step)
        history.save(HardState(99), entries(1, 2, 99))
        data = history.close()
        [segment] = segment_files(history.path)
        start = history.sizes[-2]
        rewrite(segment, flip(data, start * 8 + bit % ((len(data) - start) * 8)))
        self.assertEqual(load(history.path), history.voting(history.states[-2]))

    def test_torn_tail_of_a_rolled_log(self) -> None:
        """Only the last segment's tail is cut; earlier segments stay whole."""
        history = History(data_dir(self), segment_size=300)
        for batch in range(10):
            history.save(None, entries(batch * 4 + 1, batch * 4 + 4, 1, b"z" * 20))
        history.close()
        files = segment_files(history.path)
        self.assertGreater(len(files), 2)
        with open(files[-1], "r+b") as f:
            f.truncate(os.path.getsize(files[-1]) - 1)
        self.assertEqual(load(history.path), history.voting(history.states[-2]))


class CorruptionTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=steps, which=st.integers(0, 100), bit=st.integers(0, 1 << 20))
    def test_flip_before_the_last_batch(self, steps: list[Step], which: int, bit: int) -> None:
        """A flipped bit in any batch but the last: batches that had been
        synced are lost, so the log loads what is intact before it and is
        marked recovering (SPEC §11), the reason naming the file and the
        batch's offset, durably; a damaged base stops the node."""
        history = History(data_dir(self))
        for step in steps:
            history.step(step)
        history.save(HardState(99), entries(1, 1, 99))
        data = history.close()
        [segment] = segment_files(history.path)
        ends = sorted(set(history.sizes))
        frame = which % (len(ends) - 1)
        start = wal.SEGMENT_HEADER_SIZE if frame == 0 else ends[frame - 1]
        end = ends[frame]
        rewrite(segment, flip(data, start * 8 + bit % ((end - start) * 8)))
        if frame == 0:
            error = self.assertRaises(CorruptDataError, load, history.path)
            self.assertEqual((error.path, error.offset), (segment, start))
            self.assertIn(f"{segment}: corrupt data at byte offset {start}", str(error))
            return
        loaded = load(history.path)
        self.assertEqual(attrs.evolve(loaded, recovering=None), history.state_at(start))
        assert loaded.recovering is not None
        self.assertIn(f"{segment}: corrupt data at byte offset {start}", loaded.recovering)
        self.assertEqual(load(history.path).recovering, loaded.recovering, "remembered")

    def test_flip_in_an_earlier_segment_tail(self) -> None:
        """Damage at the end of a segment that is not the last is corruption,
        not a torn tail: that segment was complete when the next began."""
        history = History(data_dir(self), segment_size=300)
        for batch in range(10):
            history.save(None, entries(batch * 4 + 1, batch * 4 + 4, 1, b"z" * 20))
        history.close()
        first = segment_files(history.path)[0]
        with open(first, "rb") as f:
            data = f.read()
        rewrite(first, flip(data, len(data) * 8 - 3))
        error = self.assertRaises(CorruptDataError, load, history.path)
        self.assertEqual(error.path, first)

    def test_lone_base_damaged(self) -> None:
        """A last segment whose base record is damaged is refused, not
        emptied: without it the segment cannot be placed in the log."""
        path = data_dir(self)
        load(path)
        [segment] = segment_files(path)
        with open(segment, "rb") as f:
            data = f.read()
        rewrite(segment, flip(data, len(data) * 8 - 1))
        error = self.assertRaises(CorruptDataError, load, path)
        self.assertIn("no base record", str(error))


# The child: saves batches forever, printing "B first last term" before each
# save and "D" once it returned, so the parent knows what must be durable.
CHILD = """
import random, sys
from skydns.raft.storage.disk import DiskStorage
from skydns.raft.core.messages import Entry, HardState

def payload(index, term):
    return b"%d:%d;" % (index, term) * ((index * 7 + term) % 13 + 1)

storage = DiskStorage(sys.argv[1], segment_size=8192)
rng = random.Random(int(sys.argv[2]))
loaded = storage.load()
hard_state, log = loaded.hard_state, loaded.entries
term = max(hard_state.term, 1)
last = log[-1].index if log else 0
print("L", last, flush=True)
while True:
    first = last + 1
    if last > 3 and rng.random() < 0.1:
        term += 1
        first = last - rng.randint(0, 2)
    end = first + rng.randint(1, 20)
    batch = [Entry(term, i, data=payload(i, term)) for i in range(first, end)]
    print("B", first, batch[-1].index, term, flush=True)
    storage.save(HardState(term, "child", first - 1), batch)
    print("D", flush=True)
    last = batch[-1].index
"""


def payload(index: int, term: int) -> bytes:
    return b"%d:%d;" % (index, term) * ((index * 7 + term) % 13 + 1)


def apply(log: dict[int, int], first: int, last: int, term: int) -> dict[int, int]:
    """The log (index -> term) after a batch of ``first``..``last``."""
    after = {index: t for index, t in log.items() if index < first}
    after.update({index: term for index in range(first, last + 1)})
    return after


class KillTests(SynchronousTestCase):
    def run_child(self, path: str, seed: int, saves: int) -> list[list[str]]:
        """Run the child until it reports ``saves`` durable saves, SIGKILL it
        and return every line it printed."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=root)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, path, str(seed)], stdout=subprocess.PIPE, env=env
        )
        self.addCleanup(child.wait)
        self.addCleanup(lambda: None if child.poll() is not None else child.kill())
        assert child.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(child.stdout, selectors.EVENT_READ)
        output = b""
        deadline = time.monotonic() + 30
        while output.count(b"\nD\n") < saves:
            if time.monotonic() > deadline or child.poll() is not None:
                self.fail(f"child did not make {saves} saves in time: {output[-300:]!r}")
            if selector.select(timeout=1):
                output += os.read(child.stdout.fileno(), 65536)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        output += child.stdout.read()
        child.stdout.close()
        selector.close()
        # The kill may cut the last line short: keep only whole lines.
        return [
            line.split()
            for line in output.decode().splitlines(keepends=True)
            if line.endswith("\n")
        ]

    def check(self, loaded: Loaded, log: dict[int, int], lines: list[list[str]]) -> dict[int, int]:
        """``loaded`` holds every batch the child saw saved, and at most the
        one it was saving when killed; return the log as loaded."""
        durable_hard_state: HardState | None = None
        pending: tuple[int, int, int] | None = None
        self.assertEqual(lines[0], ["L", str(max(log, default=0))])
        for line in lines:
            if line[0] == "B":
                pending = (int(line[1]), int(line[2]), int(line[3]))
            elif line[0] == "D":
                assert pending is not None
                log = apply(log, *pending)
                durable_hard_state = HardState(pending[2], "child", pending[0] - 1)
                pending = None
        hard_state, snapshot, entries_ = loaded.hard_state, loaded.snapshot, loaded.entries
        self.assertIsNone(snapshot)
        self.assertIsNone(loaded.recovering, "a kill loses nothing that was synced")
        got = {entry.index: entry.term for entry in entries_}
        for entry in entries_:
            self.assertEqual(entry.data, payload(entry.index, entry.term))
        allowed_logs = [log]
        allowed_states = [durable_hard_state]
        if pending is not None:
            allowed_logs.append(apply(log, *pending))
            allowed_states.append(HardState(pending[2], "child", pending[0] - 1))
        self.assertIn(got, allowed_logs)
        if durable_hard_state is not None:
            self.assertIn(hard_state, allowed_states)
        return got

    def test_sigkill_during_saves(self) -> None:
        """A process SIGKILLed at random moments while saving loses nothing
        whose save returned, and loads and carries on every time."""
        path = data_dir(self)
        rng = random.Random()
        seed = rng.randrange(1 << 32)
        log: dict[int, int] = {}
        for round_ in range(4):
            lines = self.run_child(path, seed + round_, saves=rng.randint(1, 150))
            try:
                log = self.check(load(path), log, lines)
            except Exception:
                print(f"test_sigkill_during_saves failed with seed {seed}, round {round_}")
                raise
        self.assertGreater(len(segment_files(path)), 1)
