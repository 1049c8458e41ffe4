"""Exactly-once application of client requests (Raft thesis §6.3).

A client tags each proposal with its id and a sequence number that grows by
one per request; a retry reuses the number.  The state machine layer runs
every committed command through `SessionTable.apply`, in log order, on every
node: a sequence number seen before returns the cached result instead of
applying twice.  The table is part of the replicated state, so it is
snapshotted and restored with it (`snapshot` / `restore`).
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from attrs import define, field, frozen

R = TypeVar("R")


@frozen
class Stale:
    """The answer to a request older than the client's latest: the client
    has already moved on, so the result is no longer kept."""

    client_id: str
    seq: int


@define
class SessionTable(Generic[R]):
    _sessions: dict[str, tuple[int, R]] = field(factory=dict)

    def apply(self, client_id: str, seq: int, command: Callable[[], R]) -> R | Stale:
        """Run ``command`` unless ``(client_id, seq)`` already ran."""
        last = self._sessions.get(client_id)
        if last is not None:
            last_seq, result = last
            if seq == last_seq:
                return result
            if seq < last_seq:
                return Stale(client_id, seq)
        result = command()
        self._sessions[client_id] = (seq, result)
        return result

    def last_seq(self, client_id: str) -> int | None:
        last = self._sessions.get(client_id)
        return None if last is None else last[0]

    def snapshot(self) -> dict[str, tuple[int, R]]:
        """A copy to store beside the state machine's own snapshot."""
        return dict(self._sessions)

    @classmethod
    def restore(cls, saved: dict[str, tuple[int, R]]) -> SessionTable[R]:
        return cls(dict(saved))

    def __len__(self) -> int:
        return len(self._sessions)
