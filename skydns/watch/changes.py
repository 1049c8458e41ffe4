"""What a registry change did to each instance it touched, and what that
means for one pattern: the unit both watch streams and long polls are
built from (SPEC.md §6).

A `Change` holds, for each touched UUID, the service before and after
(None for absent), taken from the registry's change stream.  A watcher's
pattern turns it into a `Delta`: the instances added to, changed in and
removed from its answer set.  A renewal, which only moves a lease (and
the TTL it was granted with), is no change at all.

The answer set of a pattern is what a DNS SRV query for it returns,
drained instances included (shown with ``Drain``, so a drain is a change):
the instances matching every label, and for a pattern naming a region also
the failover instances of the other regions.  So the set is matched with
the region left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, Optional

from attrs import evolve, frozen

from skydns.names import Service
from skydns.patterns import Pattern
from skydns.registry import Instance


@frozen
class Change:
    """One registry change: its index (the registry version after it) and
    ``(uuid, before, after)`` for each instance it touched."""

    index: int
    touched: tuple[tuple[str, Optional[Service], Optional[Service]], ...]


@frozen
class Delta:
    """How one change altered one pattern's answer set."""

    index: int
    added: tuple[Service, ...] = ()
    changed: tuple[Service, ...] = ()
    removed: tuple[Service, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def change_of(
    index: int, touched: Iterable[Service], held: Callable[[str], Optional[Instance]]
) -> Change:
    """The `Change` at ``index`` from the services a registry change
    touched (old and new versions, flat) and ``held(uuid)``, the instance
    the registry holds now (alive or not): a touched service that is what
    the registry holds is the one after, any other the one before."""
    before: dict[str, Optional[Service]] = {}
    after: dict[str, Optional[Service]] = {}
    for service in touched:
        key = service.uuid.lower()
        if key not in after:
            now = held(key)
            after[key] = now.service if now is not None else None
        if after[key] is not service:
            before[key] = service
    return Change(index, tuple((key, before.get(key), after[key]) for key in after))


def same(a: Service, b: Service) -> bool:
    """Whether two versions of an instance answer alike: equal but for the
    TTL a renewal granted."""
    return a == evolve(b, ttl=a.ttl)


def delta(change: Change, pattern: Pattern) -> Delta:
    """What ``change`` did to ``pattern``'s answer set."""
    wanted = pattern.without_region()
    added: list[Service] = []
    changed: list[Service] = []
    removed: list[Service] = []
    for _, before, after in change.touched:
        was = before is not None and wanted.matches(before)
        now = after is not None and wanted.matches(after)
        if now and was:
            assert before is not None and after is not None
            if not same(before, after):
                changed.append(after)
        elif now:
            assert after is not None
            added.append(after)
        elif was:
            assert before is not None
            removed.append(before)
    return Delta(change.index, tuple(added), tuple(changed), tuple(removed))
