"""Snapshot figures with many registered instances (issue 6).

    python bench/snapshot.py [--instances 100000] [--suffix 1000]

Prints, for N instances:

- the memory per registered instance (RSS growth of this process / N);
- taking a snapshot: the copy made on the reactor thread, the encoding (in
  steps the server runs between requests; the longest step is the longest
  it delays one), joining the pieces (in a thread: how long the reactor
  thread waits meanwhile), and the durable write (write + fsync + WAL
  compaction);
- installing it on a new node: reassembling the chunks, decoding, storing
  and swapping the registry in;
- restarting a node: loading the data dir (snapshot + a log suffix of
  ``--suffix`` entries) and replaying it, as ``RaftNode`` does at start-up.

Targets (issue 6): each operation under 10 s, under 2 KB per instance.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Generator
from typing import Callable

from twisted.internet.task import Clock

from skydns.commands import Register, encode
from skydns.gctune import long_lived, tune_gc
from skydns.names import Service
from skydns.raft.core.messages import Entry, HardState, InstallSnapshot, SnapshotMeta
from skydns.raft.node.driver import RaftNode
from skydns.raft.node.envelope import wrap
from skydns.raft.node.snapshots import Assembler, decode_state, frame_chunks, take_steps
from skydns.raft.storage.disk import DiskStorage
from skydns.registry import Registry


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def service(n: int) -> Service:
    return Service(
        uuid=f"{n:08x}-0000-4000-8000-{n:012x}", name=f"svc{n % 500}", environment="production",
        region=("east", "west")[n % 2], version="1.0.0", host=f"10.{n >> 16 & 255}.{n >> 8 & 255}."
        f"{n & 255}", port=8000 + n % 1000, ttl=30,
    )  # fmt: skip


def decode_long_lived(data: bytes) -> tuple[Registry, object]:
    """`decode_state` as the server runs it: the collector paused, then frozen."""
    with long_lived():
        return decode_state(data)


def longest_stall(work: Callable[[], object]) -> float:
    """Run ``work`` in a thread while this one wakes every millisecond: the
    longest time this thread waited (a reactor in its place would have
    answered nothing meanwhile)."""
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    longest, last = 0.0, time.perf_counter()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    thread.join()
    return longest


def in_steps(steps: Generator[None, None, list[bytes]]) -> tuple[list[bytes], int, float]:
    """Run a snapshot's encoding step by step, as a node does between
    requests: (the pieces, how many steps, the longest step)."""
    count, longest = 0, 0.0
    while True:
        start = time.perf_counter()
        try:
            next(steps)
        except StopIteration as end:
            return end.value, count + 1, max(longest, time.perf_counter() - start)
        count += 1
        longest = max(longest, time.perf_counter() - start)


class NoTransport:
    def start(self, handler: object) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, message: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--suffix", type=int, default=1000)
    args = parser.parse_args()
    n = args.instances
    tune_gc()  # the server's thresholds

    gc.collect()
    before = rss()
    registry = Registry()
    for i in range(n):
        registry.apply(Register(service(i), 1000.0))
    gc.collect()
    per_instance = (rss() - before) / n
    print(f"instances:                     {n}")
    print(f"memory per instance:           {per_instance:,.0f} bytes (RSS delta / N)")

    t0 = time.perf_counter()
    state = registry.frozen_state()
    t1 = time.perf_counter()
    pieces, steps, stall = in_steps(take_steps(state, {}, {"n1": "127.0.0.1:7001"}))
    t2 = time.perf_counter()
    join_stall = longest_stall(lambda: b"".join(pieces))
    data = b"".join(pieces)
    root = tempfile.mkdtemp(prefix="skydns-bench-snap-")
    try:
        leader_dir = os.path.join(root, "leader")
        storage = DiskStorage(leader_dir)
        storage.load()
        entries = [Entry(1, i, data=b"x") for i in range(1, n + 1)]
        for start in range(0, n, 10_000):
            storage.save(HardState(1, "n1", start), entries[start : start + 10_000])
        meta = SnapshotMeta(n, 1)
        t3 = time.perf_counter()
        storage.save_snapshot(meta, data)
        t4 = time.perf_counter()
        storage.close()
        print(f"snapshot size:                 {len(data) / 1e6:.1f} MB")
        print(f"take: copy on the reactor:     {(t1 - t0) * 1000:.1f} ms")
        print(f"take: encode, in {steps} steps:  {t2 - t1:.2f} s")
        print(f"take: the longest step:        {stall * 1000:.1f} ms (the reactor runs one at a"
              " time, between requests)")  # fmt: skip
        print(f"take: longest wait of another  {join_stall * 1000:.1f} ms while a thread joins"
              " the pieces")  # fmt: skip
        print(f"take: write + fsync + compact: {t4 - t3:.2f} s")
        print(f"take: total:                   {t2 - t0 + t4 - t3:.2f} s")

        # Install on a new node: chunks in, assemble, decode, store, swap.
        t5 = time.perf_counter()
        assembler = Assembler()
        whole = None
        for chunk in frame_chunks(data):
            whole = assembler.receive(InstallSnapshot("n1", "n2", 1, meta, chunk))
        assert whole is not None
        t6 = time.perf_counter()
        new_registry, _ = decode_long_lived(whole.data)
        t7 = time.perf_counter()
        install_stall = longest_stall(lambda: decode_long_lived(whole.data))
        follower = DiskStorage(os.path.join(root, "follower"))
        follower.load()
        follower.save_snapshot(meta, whole.data)
        t8 = time.perf_counter()
        Registry().replace_with(new_registry)
        t9 = time.perf_counter()
        print(f"install: assemble chunks:      {t6 - t5:.2f} s")
        print(f"install: decode (in a thread): {t7 - t6:.2f} s")
        print(f"install: longest wait of another {install_stall * 1000:.1f} ms")
        print(f"install: write + fsync:        {t8 - t7:.2f} s")
        print(f"install: swap the registry:    {(t9 - t8) * 1000:.1f} ms")
        print(f"install: total:                {t9 - t5:.2f} s")

        # Restart: snapshot + a log suffix of real commands, replayed.
        suffix = [
            Entry(1, n + i, data=wrap("bench", i, encode(Register(service(n + i), 1000.0))))
            for i in range(1, args.suffix + 1)
        ]
        follower.save(HardState(1, "n1", n + args.suffix), suffix)
        follower.close()
        t10 = time.perf_counter()
        node = RaftNode(
            "n2", {"n2": None}, DiskStorage(os.path.join(root, "follower")), NoTransport(),  # type: ignore[arg-type]
            Registry(), Clock(),
        )  # fmt: skip
        t11 = time.perf_counter()
        assert len(node.registry) == n + args.suffix, len(node.registry)
        print(f"restart: load + replay {args.suffix} entries: {t11 - t10:.2f} s")
        node.storage.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
