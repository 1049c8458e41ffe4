"""How long a durable save takes on this disk, for reasoning about group commit.

Prints the latency of a bare append + fdatasync, then of `DiskStorage.save`
with batches of 1, 16 and 64 entries: median and p99 per batch, batches per
second and entries per second when saves run back to back (as they would on
the reactor thread, which blocks for each one).

    python bench/fsync.py [--dir DIR] [--runs 300] [--entry-size 200]

Run it on the disk that will hold the data dir (``--dir``); by default a
temporary directory under the current one is used and removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skydns.raft.core.messages import Entry, HardState  # noqa: E402
from skydns.raft.storage.disk import DiskStorage  # noqa: E402


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(label: str, samples: list[float], batch: int) -> None:
    total = sum(samples)
    print(
        f"{label:<24} median {statistics.median(samples) * 1e3:7.3f} ms"
        f"   p99 {percentile(samples, 0.99) * 1e3:7.3f} ms"
        f"   {len(samples) / total:8.0f} batches/s"
        f"   {len(samples) * batch / total:9.0f} entries/s"
    )


def bare_fdatasync(directory: str, runs: int, size: int) -> list[float]:
    path = os.path.join(directory, "bare")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = b"x" * size
    samples = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return samples


def storage_saves(directory: str, runs: int, size: int, batch: int) -> list[float]:
    storage = DiskStorage(os.path.join(directory, f"data-{batch}"))
    storage.load()
    payload = b"x" * size
    samples = []
    index = 0
    try:
        for run in range(runs):
            entries = [Entry(1, index + i + 1, data=payload) for i in range(batch)]
            index += batch
            start = time.perf_counter()
            storage.save(HardState(1, "n1", run), entries)
            samples.append(time.perf_counter() - start)
    finally:
        storage.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="a directory on the disk to measure")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--entry-size", type=int, default=200, help="bytes of data per entry")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="skydns-fsync-", dir=args.dir or ".")
    try:
        print(
            f"disk of {os.path.abspath(directory)}, {args.runs} runs, "
            f"{args.entry_size}-byte entries"
        )
        report("append + fdatasync", bare_fdatasync(directory, args.runs, args.entry_size), 1)
        for batch in (1, 16, 64):
            samples = storage_saves(directory, args.runs, args.entry_size, batch)
            report(f"save, batch of {batch}", samples, batch)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
