"""The registry as the state machine a Raft node drives (`IStateMachine`).

Commands arrive as bytes (``skydns.commands.encode``); each committed one
is decoded and applied to the registry, and the apply listeners (metrics,
the audit log, callbacks) are told.  A command that does not decode is
applied as a logged no-op with the result ``invalid``, identically on every
node, so that a bad entry can never stop the log (SPEC §11).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger
from zope.interface import implementer

from skydns.commands import Command, CommandDecodeError, decode
from skydns.raft.node.machine import InvalidCommand, IStateMachine, SnapshotError, SnapshotSteps
from skydns.registry import Applied, Outcome, Registry, snapshot_pieces
from skydns.registry import SnapshotError as RegistrySnapshotError

log = Logger()

#: Called after every applied command: (command, result, live).
ApplyListener = Callable[[Command, Applied, bool], None]

#: The result of an entry that is not a command.
INVALID = Applied(Outcome.INVALID)


@implementer(IStateMachine)
class RegistryMachine:
    """Applies committed commands to ``registry``."""

    def __init__(
        self, registry: Registry, decode_snapshot: Callable[[bytes], Registry] | None = None
    ) -> None:
        self.registry = registry
        self.listeners: list[ApplyListener] = []
        self._decode_snapshot = decode_snapshot or Registry.restore

    def check(self, command: bytes) -> None:
        try:
            decode(command)
        except CommandDecodeError as e:
            raise InvalidCommand(str(e)) from e

    def apply(self, command: bytes, index: int, live: bool) -> Applied:
        try:
            decoded = decode(command)
        except CommandDecodeError as e:
            log.error("log entry {index} is not a valid command, applied as a no-op: {error}",
                      index=index, error=str(e))  # fmt: skip
            return INVALID
        applied = self.registry.apply(decoded)
        for listener in list(self.listeners):
            try:
                listener(decoded, applied, live)
            except Exception:
                log.failure("apply listener {listener!r} failed", listener=listener)
        return applied

    def snapshot(self) -> SnapshotSteps:
        return snapshot_pieces(*self.registry.frozen_state())

    def decode(self, data: bytes) -> Registry:
        try:
            return self._decode_snapshot(data)
        except RegistrySnapshotError as e:
            raise SnapshotError(str(e)) from e

    def install(self, decoded: Any) -> None:
        self.registry.replace_with(decoded)

    def encode_result(self, result: Any) -> str:
        # Only the status: the removals mattered only the first time (callbacks).
        return str(result.status.value)

    def decode_result(self, text: str) -> Applied:
        return Applied(Outcome.parse(text))
