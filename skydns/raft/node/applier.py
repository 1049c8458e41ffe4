"""Applying a Raft node's committed entries to its state machine.

Every committed command goes through the session table
(``skydns.raft.node.sessions``), so a proposal submitted twice (a retry
after a leader change or a lost answer) is applied once (Raft thesis §6.3).
A command is "live" only on the leader and only for entries that were not
in the log at start-up, so a replay repeats no side effects.
"""

from __future__ import annotations

from typing import Any

from attrs import Factory, define
from twisted.logger import Logger

from skydns.raft.core.messages import Entry, EntryKind
from skydns.raft.node.envelope import EnvelopeError, unwrap
from skydns.raft.node.machine import IStateMachine
from skydns.raft.node.sessions import SessionTable

log = Logger()

#: (client id, sequence number, result): a proposal this batch answered.
Answer = tuple[str, int, Any]


@define(eq=False)
class Applier:
    """Applies committed entries to ``machine`` through ``sessions``."""

    machine: IStateMachine
    sessions: SessionTable[Any] = Factory(SessionTable)
    #: The index of the last entry applied, or of the snapshot restored:
    #: the one record of how far the state machine got.
    applied: int = 0
    #: Entries up to here were in the log at start-up: applying them is a
    #: replay, never "live".
    startup_last: int = 0

    def apply(self, entries: tuple[Entry, ...], leading: bool) -> list[Answer]:
        """Apply ``entries`` (committed, in order); return the proposals they answer."""
        answers: list[Answer] = []
        for entry in entries:
            if entry.index != self.applied + 1:
                raise AssertionError(f"applying {entry.index} after {self.applied}")
            if entry.kind is EntryKind.NORMAL:
                self._apply_entry(entry, leading, answers)
            self.applied = entry.index
        return answers

    def _apply_entry(self, entry: Entry, leading: bool, answers: list[Answer]) -> None:
        try:
            envelope = unwrap(entry.data)
        except EnvelopeError as e:
            # Deterministic on every node: the entry is skipped everywhere.
            log.error("log entry {index} is not a command, skipped: {error}",
                      index=entry.index, error=str(e))  # fmt: skip
            return
        live = leading and entry.index > self.startup_last

        def run() -> Any:
            return self.machine.apply(envelope.payload, entry.index, live)

        result = self.sessions.apply(envelope.client_id, envelope.seq, run)
        answers.append((envelope.client_id, envelope.seq, result))


__all__ = ["Answer", "Applier"]
