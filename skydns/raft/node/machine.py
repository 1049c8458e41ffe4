"""The seam between a Raft node and what it replicates: `IStateMachine`.

The node never looks inside a command.  It asks the machine to check a
forwarded proposal, to apply each committed command (in log order, on every
node alike), and to snapshot and restore its state.  The registry's adapter
(``skydns.store.machine``) implements it in production; the simulation uses
a key-value store.  Nothing in ``skydns.raft`` knows either.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from zope.interface import Interface


class InvalidCommand(ValueError):
    """Bytes that are not a command this machine applies."""


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this machine can restore."""


#: Produces a snapshot in small steps (each ``next`` does about a millisecond
#: of work) and returns its pieces, whose concatenation is the snapshot.
SnapshotSteps = Generator[None, None, list[bytes]]


class IStateMachine(Interface):
    """A deterministic state machine driven by a Raft log."""

    def check(command: bytes) -> None:
        """Raise `InvalidCommand` if ``command`` is not one this machine
        could apply (a forwarded proposal is refused before it is logged)."""

    def apply(command: bytes, index: int, live: bool) -> Any:
        """Apply the committed ``command`` at log ``index``; return the result
        for whoever proposed it.  Must be deterministic and must not raise:
        a command that is invalid is applied as a no-op with an error result,
        identically on every node (SPEC §11).  ``live`` is true on the leader
        for an entry applied for the first time by this process (side effects
        such as callbacks happen only then)."""

    def snapshot() -> SnapshotSteps:
        """Capture the state now (cheaply) and encode it in steps."""

    def decode(data: bytes) -> Any:
        """Decode a snapshot (may run in a thread); raise `SnapshotError`."""

    def install(decoded: Any) -> None:
        """Replace the whole state by a decoded snapshot."""

    def encode_result(result: Any) -> str:
        """A result as text, kept in snapshots for retried requests (thesis §6.3)."""

    def decode_result(text: str) -> Any:
        """A result back from `encode_result`."""
