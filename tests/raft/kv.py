"""The simulation's replicated state machine: a key-value register store.

Commands are JSON objects carrying a client id and sequence number; they run
through a `SessionTable` so that a retried proposal that ended up in the log
twice is applied once (Raft thesis §6.3).
"""

from __future__ import annotations

import json
from typing import Any

from skydns.raft.core.messages import Entry, EntryKind
from skydns.raft.node.sessions import SessionTable


def command(client: str, seq: int, kind: str, key: str, value: Any) -> bytes:
    return json.dumps({"c": client, "s": seq, "op": kind, "k": key, "v": value}).encode()


class KV:
    def __init__(self, dedupe: bool = True) -> None:
        self.data: dict[str, Any] = {}
        self.sessions: SessionTable[Any] = SessionTable()
        self.applied = 0
        self.dedupe = dedupe

    def apply(self, entry: Entry) -> tuple[str, int, Any] | None:
        """Apply one committed entry; return (client, seq, result) for a command."""
        if entry.index != self.applied + 1:
            raise AssertionError(f"applied {entry.index} after {self.applied}")
        self.applied = entry.index
        if entry.kind is not EntryKind.NORMAL:
            return None
        cmd = json.loads(entry.data)
        if self.dedupe:
            result = self.sessions.apply(cmd["c"], cmd["s"], lambda: self._run(cmd))
        else:
            result = self._run(cmd)
        return cmd["c"], cmd["s"], result

    def _run(self, cmd: dict[str, Any]) -> Any:
        key, value = cmd["k"], cmd["v"]
        if cmd["op"] == "write":
            self.data[key] = value
            return None
        old, new = value
        if self.data.get(key) == old:
            self.data[key] = new
            return True
        return False
