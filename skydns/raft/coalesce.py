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

from skydns.raft.messages import AppendEntries, AppendEntriesResponse, Message, encode_entry

#: Stop merging AppendEntries past this many bytes of entries.
MAX_MERGED_BYTES = 1024 * 1024


def _follows(first: AppendEntries, second: AppendEntries) -> bool:
    last_index = first.prev_log_index + len(first.entries)
    last_term = first.entries[-1].term if first.entries else first.prev_log_term
    return (
        (second.src, second.dst, second.term) == (first.src, first.dst, first.term)
        and second.prev_log_index == last_index
        and second.prev_log_term == last_term
    )


def _size(message: AppendEntries) -> int:
    return sum(len(encode_entry(e)) for e in message.entries)


def coalesce(messages: Iterable[Message]) -> list[Message]:
    """``messages`` with runs of mergeable messages to one destination merged."""
    out: list[Message] = []
    last_for: dict[str, int] = {}  # destination -> position in out of its last message
    sizes: dict[int, int] = {}
    for message in messages:
        position = last_for.get(message.dst)
        previous = out[position] if position is not None else None
        if (
            isinstance(message, AppendEntries)
            and isinstance(previous, AppendEntries)
            and position is not None
            and _follows(previous, message)
        ):
            size = sizes.get(position, _size(previous)) + _size(message)
            if size <= MAX_MERGED_BYTES:
                out[position] = attrs.evolve(
                    previous,
                    entries=previous.entries + message.entries,
                    commit=max(previous.commit, message.commit),
                )
                sizes[position] = size
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
    return out
