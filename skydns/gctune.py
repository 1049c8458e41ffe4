"""Garbage-collector thresholds for a SkyDNS process.

With CPython's default thresholds (700, 10, 10) a node under write load
spent about a fifth of its CPU in the cyclic garbage collector: a request's
Deferreds, coroutine frames and AMP boxes live across a few reactor turns,
so young collections every 700 allocations promote them, and they are then
found dead only by the older collections, whose full passes also walk every
registered instance and log entry.  A larger young generation lets nearly all
of them die by reference counting before any collection looks at them.
Measured with ``bench/raft_write.py``-style load (64 clients writing to a
3-node cluster): leader CPU per write 0.49 -> 0.40 ms, followers
0.11 -> 0.09 ms.  Garbage in reference cycles is still collected, later.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: (young, middle, old) thresholds; the later two are CPython's defaults.
THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Set `THRESHOLDS` for this process (`makeService` calls it)."""
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def long_lived() -> Iterator[None]:
    """Build something big that will live long (a registry restored from a
    snapshot) without the cyclic collector meanwhile, then `gc.freeze` what
    exists.

    Each full collection walks every tracked object: with 100,000
    instances, about 300 ms during which no thread runs, so a node
    restoring a snapshot in a thread would stop answering DNS several times
    over.  Frozen objects are skipped by every later collection (they are
    still freed by reference counting, as the registry's always are: they
    hold no cycles).  What else is alive at that moment is frozen too, so
    this is for rare moments (start-up, installing a snapshot): cyclic
    garbage among those objects would never be collected.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
