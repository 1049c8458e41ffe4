"""The watch hub: every registry change, matched to the watchers it concerns
and to a bounded history for those who come back (SPEC.md §6).

Watchers are filed under the dependency tag of their pattern
(`skydns.dns.dependencies`): a change reaches the watchers of the
(environment, name) pairs, environments and catch-all patterns it touched,
never all of them.  A watcher keeps no copy of its answer set: what a change
did to it follows from the change alone (`skydns.watch.changes`), so a
watcher costs the same whatever the change rate.

The history holds the last `HISTORY` changes.  A client that comes back
with an index (``Last-Event-ID``, or a long poll's ``index``) gets what
changed for its pattern since then, or a reset (the whole set again) when
that index is older than the history, from the future, or from before a
snapshot was installed.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable
from typing import Any, Callable, Optional, Protocol

from twisted.logger import Logger

from skydns.dns.dependencies import EVERYTHING, answer_tags, change_tags
from skydns.dns.resolution import QUERY
from skydns.names import Service
from skydns.patterns import Pattern
from skydns.registry import Registry
from skydns.watch.changes import Change, Delta, change_of, delta

log = Logger()

#: Changes remembered for clients that come back with an index.
HISTORY = 10_000


class Watcher(Protocol):
    """Something told of the changes to one pattern's answer set."""

    pattern: Pattern

    def changed(self, delta: Delta) -> None:
        """The pattern's answer set changed (``delta`` is not empty)."""

    def reset(self, index: int) -> None:
        """Anything may have changed (a whole state was installed): send
        the whole set again."""


def pattern_tags(pattern: Pattern) -> frozenset[Hashable]:
    """The tags of the changes that can alter ``pattern``'s answer set."""
    return answer_tags([(QUERY, pattern.without_region(), None)])


class WatchHub:
    """Watchers of ``registry``'s patterns, and the recent changes."""

    def __init__(self, registry: Registry, history: int = HISTORY) -> None:
        self.registry = registry
        self._history: collections.deque[Change] = collections.deque(maxlen=history)
        #: Changes older than this index are not held (a snapshot was
        #: installed, or the history started here).
        self._floor = registry.version
        self._by_tag: dict[Hashable, set[Watcher]] = {}
        #: Deltas handed to watchers, for the metrics.
        self.events = 0
        registry.add_change_listener(self._registry_changed)

    @property
    def index(self) -> int:
        """The index of the state readers see now."""
        return self.registry.version

    def __len__(self) -> int:
        """Watchers held."""
        return len({w for watchers in self._by_tag.values() for w in watchers})

    def add(self, watcher: Watcher) -> None:
        for tag in pattern_tags(watcher.pattern):
            self._by_tag.setdefault(tag, set()).add(watcher)

    def remove(self, watcher: Watcher) -> None:
        for tag in pattern_tags(watcher.pattern):
            watchers = self._by_tag.get(tag)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._by_tag[tag]

    def since(self, pattern: Pattern, index: int) -> Optional[list[Delta]]:
        """The non-empty deltas of ``pattern`` after ``index``, oldest
        first; None when they are not all held (the client must start over)."""
        if index < self._floor or index > self.index:
            return None
        found = []
        for change in reversed(self._history):  # newest first: stop at the index
            if change.index <= index:
                break
            step = delta(change, pattern)
            if step:
                found.append(step)
        found.reverse()
        return found

    def _registry_changed(self, touched: Optional[tuple[Service, ...]]) -> None:
        index = self.registry.version
        if touched is None:
            self._history.clear()
            self._floor = index
            for watcher in self._all():
                self._tell(watcher.reset, index)
            return
        if not touched:
            return  # a callback added: no instance changed
        change = change_of(index, touched, self.registry.held)
        history = self._history
        if len(history) == history.maxlen:
            self._floor = history[0].index  # forgotten from here on
        history.append(change)
        concerned: set[Watcher] = set()
        for tag in change_tags(touched):
            concerned.update(self._by_tag.get(tag, ()))
        for watcher in concerned:
            step = delta(change, watcher.pattern)
            if step:
                self.events += 1
                self._tell(watcher.changed, step)

    def _all(self) -> set[Watcher]:
        return {w for watchers in self._by_tag.values() for w in watchers}

    @staticmethod
    def _tell(call: Callable[[Any], None], value: Any) -> None:
        try:
            call(value)
        except Exception:
            log.failure("a watcher failed on a change")


__all__ = ["EVERYTHING", "HISTORY", "Watcher", "WatchHub", "pattern_tags"]
