"""The simulation's replicated state machine: a key-value register store,
behind the same `IStateMachine` seam as the registry.

Commands are JSON: ``{"op": "write", "k", "v"}`` or ``{"op": "cas", "k",
"v": [old, new]}``.  Each applied entry is reported to ``on_apply`` (the
world's invariants check that every node applies the same entries).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, Callable

from zope.interface import implementer

from skydns.raft.node.machine import InvalidCommand, IStateMachine, SnapshotError


def command(kind: str, key: str, value: Any) -> bytes:
    return json.dumps({"op": kind, "k": key, "v": value}, sort_keys=True).encode()


@implementer(IStateMachine)
class KVMachine:
    def __init__(self, on_apply: Callable[[int, bytes], None] | None = None) -> None:
        self.data: dict[str, Any] = {}
        self.applied = 0
        self.on_apply = on_apply

    def check(self, command: bytes) -> None:
        try:
            body = json.loads(command)
            if body["op"] not in ("write", "cas"):
                raise ValueError(body["op"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidCommand(str(e)) from e

    def apply(self, command: bytes, index: int, live: bool) -> Any:
        if self.on_apply is not None:
            self.on_apply(index, command)
        self.applied = index
        try:
            body = json.loads(command)
            key, value = body["k"], body["v"]
            if body["op"] == "write":
                self.data[key] = value
                return "ok"
            old, new = value
        except (ValueError, KeyError, TypeError):
            return "invalid"
        if self.data.get(key) == old:
            self.data[key] = new
            return True
        return False

    def snapshot(self) -> Generator[None, None, list[bytes]]:
        state = json.dumps({"data": self.data, "applied": self.applied}, sort_keys=True).encode()

        def steps() -> Generator[None, None, list[bytes]]:
            yield
            return [state]

        return steps()

    def decode(self, data: bytes) -> Any:
        try:
            body = json.loads(data)
            return dict(body["data"]), int(body["applied"])
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError(str(e)) from e

    def install(self, decoded: Any) -> None:
        self.data, self.applied = dict(decoded[0]), decoded[1]

    def encode_result(self, result: Any) -> str:
        return json.dumps(result)

    def decode_result(self, text: str) -> Any:
        return json.loads(text)
