"""Merge a Ready's messages before they go on the wire.

The core sends an AppendEntries to every follower for each proposal it
takes, so a leader that took 64 proposals in one reactor turn has 64
one-entry AppendEntries per follower in its Ready, and each would cost an
AMP box and a response.  Consecutive AppendEntries to the same follower
whose entries follow on from each other say exactly what one AppendEntries
with all their entries says (Raft §5.3: the follower checks the first
``prev``, then appends in order), so they are merged; the follower answers
once, and its answer for the last entry acknowledges all of them (the
leader frees every in-flight message up to the index it is told).

Likewise a follower's consecutive successful AppendEntriesResponses to the
same leader in the same term are replaced by the last one: its ``index`` is
the highest and implies the others.  Nothing else is touched, and the order
of messages to each destination is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Message,
    encoded_size,
)

#: Stop merging AppendEntries past this many bytes of entries.
MAX_MERGED_BYTES = 1024 * 1024


def _size(message: AppendEntries) -> int:
    return sum(encoded_size(e) for e in message.entries)


@attrs.define
class _Run:
    """AppendEntries being merged: the first message, then every entry and
    the highest commit index of the run."""

    first: AppendEntries
    entries: list[Entry]
    commit: int
    size: int
    merged: bool = False

    def follows(self, message: AppendEntries) -> bool:
        first = self.first
        last_index = first.prev_log_index + len(self.entries)
        last_term = self.entries[-1].term if self.entries else first.prev_log_term
        return (
            message.src == first.src
            and message.dst == first.dst
            and message.term == first.term
            and message.prev_log_index == last_index
            and message.prev_log_term == last_term
        )

    def message(self) -> AppendEntries:
        if not self.merged:
            return self.first
        return attrs.evolve(self.first, entries=tuple(self.entries), commit=self.commit)


def coalesce(messages: Iterable[Message]) -> list[Message]:
    """``messages`` with runs of mergeable messages to one destination merged."""
    out: list[Message | _Run] = []
    last_for: dict[str, int] = {}  # destination -> position in out of its last message
    for message in messages:
        position = last_for.get(message.dst)
        previous = out[position] if position is not None else None
        if isinstance(message, AppendEntries):
            if isinstance(previous, _Run) and previous.follows(message):
                size = previous.size + _size(message)
                if size <= MAX_MERGED_BYTES:
                    previous.entries.extend(message.entries)
                    previous.commit = max(previous.commit, message.commit)
                    previous.size = size
                    previous.merged = True
                    continue
            last_for[message.dst] = len(out)
            out.append(_Run(message, list(message.entries), message.commit, _size(message)))
            continue
        if (
            isinstance(message, AppendEntriesResponse)
            and isinstance(previous, AppendEntriesResponse)
            and position is not None
            and message.success
            and previous.success
            and (message.src, message.term) == (previous.src, previous.term)
            and message.index >= previous.index
        ):
            out[position] = message
            continue
        last_for[message.dst] = len(out)
        out.append(message)
    return [each.message() if isinstance(each, _Run) else each for each in out]
