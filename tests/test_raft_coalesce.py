"""Merging a Ready's messages keeps what each destination is told."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Heartbeat,
    Message,
)
from skydns.raft.node.coalesce import MAX_MERGED_BYTES, coalesce


def ae(dst: str, prev: int, prev_term: int, count: int, commit: int, term: int = 2,
       size: int = 1) -> AppendEntries:  # fmt: skip
    entries = tuple(Entry(term, prev + i + 1, data=b"x" * size) for i in range(count))
    return AppendEntries("a", dst, term, prev, prev_term, entries, commit)


class CoalesceTests(SynchronousTestCase):
    def test_contiguous_appends_to_one_follower_merge(self) -> None:
        """Three one-entry AppendEntries become one with the three entries and
        the latest commit index."""
        merged = coalesce([ae("b", 5, 2, 1, 4), ae("b", 6, 2, 1, 5), ae("b", 7, 2, 1, 6)])
        assert len(merged) == 1
        message = merged[0]
        assert isinstance(message, AppendEntries)
        assert (message.prev_log_index, message.prev_log_term, message.commit) == (5, 2, 6)
        assert [e.index for e in message.entries] == [6, 7, 8]

    def test_an_empty_append_that_follows_raises_the_commit(self) -> None:
        """An AppendEntries with no entries that follows on adds nothing to
        the run but its commit index, which the merged message carries."""
        [message] = coalesce([ae("b", 5, 2, 1, 4), ae("b", 6, 2, 0, 6)])
        assert isinstance(message, AppendEntries)
        assert ([e.index for e in message.entries], message.commit) == ([6], 6)

    def test_destinations_are_merged_separately_and_order_is_kept(self) -> None:
        messages: list[Message] = [
            ae("b", 5, 2, 1, 4), ae("c", 3, 2, 1, 4), ae("b", 6, 2, 1, 4), ae("c", 4, 2, 1, 4),
        ]  # fmt: skip
        merged = coalesce(messages)
        assert [(m.dst, len(m.entries)) for m in merged] == [("b", 2), ("c", 2)]  # type: ignore

    def test_gaps_terms_and_other_messages_break_a_run(self) -> None:
        """Appends that do not follow on, or come after another kind of message
        to the same node, stay as they are."""
        gap = [ae("b", 5, 2, 1, 4), ae("b", 9, 2, 1, 4)]
        assert coalesce(gap) == gap
        other_term = [ae("b", 5, 2, 1, 4), ae("b", 6, 1, 1, 4)]
        assert coalesce(other_term) == other_term
        newer_leader_term = [ae("b", 5, 2, 1, 4), ae("b", 6, 2, 1, 4, term=3)]
        assert coalesce(newer_leader_term) == newer_leader_term
        interleaved: list[Message] = [
            ae("b", 5, 2, 1, 4), Heartbeat("a", "b", 2, 4), ae("b", 6, 2, 1, 4),
        ]  # fmt: skip
        assert coalesce(interleaved) == interleaved

    def test_merging_stops_at_the_size_cap(self) -> None:
        big = MAX_MERGED_BYTES // 2 + 1
        messages = [ae("b", 5, 2, 1, 4, size=big), ae("b", 6, 2, 1, 4, size=big)]
        assert coalesce(messages) == messages

    def test_successful_responses_keep_the_last(self) -> None:
        """Acknowledgements of 6, 7, 8 become the one for 8; a rejection is kept."""
        ok = [AppendEntriesResponse("b", "a", 2, True, i) for i in (6, 7, 8)]
        assert coalesce(ok) == [ok[-1]]
        reject = AppendEntriesResponse("b", "a", 2, False, 9, hint_index=7, hint_term=2)
        mixed: list[Message] = [ok[0], reject, ok[1]]
        assert coalesce(mixed) == mixed
