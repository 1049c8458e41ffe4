"""Garbage-collector thresholds for a SkyDNS process.

A request's Deferreds, coroutine frames and AMP boxes live across a few
reactor turns; with CPython's default young generation (700 allocations)
they are promoted and found dead only by older collections, whose full
passes also walk every registered instance and log entry.  A larger young
generation lets nearly all of them die by reference counting first
(docs/cluster.md has the measurements).  Garbage in cycles is still
collected, later."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: (young, middle, old) thresholds; the later two are CPython's defaults.
THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Set `THRESHOLDS` for this process, and freeze what survives each full
    collection (`makeService` calls it)."""
    gc.set_threshold(*THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """Right after a full collection, every object left is live: freeze them
    all, so the next full collection walks only what was made since, not a
    registry that grew to 100,000 instances at run time (a 100 ms pause, in
    which DNS waits, each time).  Cyclic garbage among them could never be
    collected; `thaw` undoes the freeze now and then, so that stays bounded."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def thaw() -> None:
    """Let the next full collection walk everything once more (the service
    calls it every `THAW_INTERVAL` seconds)."""
    gc.unfreeze()


#: Seconds between two `thaw` calls: one full walk an hour at most.
THAW_INTERVAL = 3600.0


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
