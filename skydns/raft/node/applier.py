"""Applying a Raft node's committed entries to the registry.

Every committed command goes through the session table
(``skydns.raft.node.sessions``), so a proposal submitted twice (a retry after a
leader change or a lost answer) is applied once (Raft thesis §6.3).  Each
command the registry runs is told to the apply listeners, ``live`` only on
the leader and only for entries that were not in the log at start-up (a
replay sends no callbacks again).  The proposals and reads of this node
(``skydns.raft.node.proposals``) that an applied entry answers are returned as
calls for the node to make once the Ready is advanced.

`Applier.applied` is the one record of how far the registry got: the node
reads it, and moves it when a snapshot replaces the registry.
"""

from __future__ import annotations

import functools
from typing import Callable

from attrs import Factory, define
from twisted.logger import Logger

from skydns.cluster import ApplyListener
from skydns.commands import Command, CommandDecodeError, decode
from skydns.raft.core.messages import Entry, EntryKind
from skydns.raft.node.envelope import EnvelopeError, unwrap
from skydns.raft.node.proposals import Requests
from skydns.raft.node.sessions import SessionTable
from skydns.registry import Applied, Registry

log = Logger()


@define(eq=False)
class Applier:
    """Applies committed entries to ``registry`` and answers ``requests``.

    ``is_leader`` says whether this node leads now (an applied command is
    only "live" on the leader)."""

    registry: Registry
    requests: Requests
    is_leader: Callable[[], bool]
    sessions: SessionTable[Applied] = Factory(SessionTable)
    listeners: list[ApplyListener] = Factory(list)
    #: The index of the last entry applied, or of the snapshot restored.
    applied: int = 0
    #: Entries up to here were in the log at start-up: applying them is a
    #: replay, never "live" (no callbacks are sent for them again).
    startup_last: int = 0

    def apply(self, entries: tuple[Entry, ...]) -> list[Callable[[], None]]:
        """Apply ``entries`` (committed, in order); return the answers to
        the requests they complete, to be called after ``advance``."""
        done: list[Callable[[], None]] = []
        for entry in entries:
            if entry.kind is EntryKind.NORMAL:
                self._apply_entry(entry, done)
            self.applied = entry.index
        if entries:
            for read in self.requests.reads_applied(self.applied):
                done.append(functools.partial(self.requests.finish_read, read, None))
        return done

    def _apply_entry(self, entry: Entry, done: list[Callable[[], None]]) -> None:
        try:
            envelope = unwrap(entry.data)
            command = decode(envelope.payload)
        except (EnvelopeError, CommandDecodeError) as e:
            # Deterministic on every node: the entry is skipped everywhere.
            log.error("log entry {index} is not a command, skipped: {error}",
                      index=entry.index, error=str(e))  # fmt: skip
            return
        ran: list[Applied] = []

        def run() -> Applied:
            ran.append(self.registry.apply(command))
            return ran[0]

        result = self.sessions.apply(envelope.client_id, envelope.seq, run)
        if ran:
            live = self.is_leader() and entry.index > self.startup_last
            self._notify(command, ran[0], live)
        proposal = self.requests.proposals.get((envelope.client_id, envelope.seq))
        if proposal is not None:
            outcome = self.requests.outcome(result)
            done.append(functools.partial(self.requests.finish, proposal, outcome))

    def _notify(self, command: Command, applied: Applied, live: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(command, applied, live)
            except Exception:
                log.failure("apply listener {listener!r} failed", listener=listener)


__all__ = ["Applier"]
