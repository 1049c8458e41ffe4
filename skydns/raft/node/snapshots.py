"""The bytes of a Raft node's snapshot: what it holds besides the state
machine's own snapshot.

The replicated state is the state machine *and* the exactly-once session
table (``skydns.raft.node.sessions``): a node restored from a snapshot must
still recognise a retried request it applied before.  The members' Raft
addresses at the snapshot's index travel with it, so that a node restored
from it can reach them::

    b"SKYS" | version (u8) | len(header JSON) (u32) | header JSON | machine's bytes

The header is ``{"sessions": {client: [seq, result]}, "addresses": {...},
"replicas": [...]}``, each result as the machine's
`IStateMachine.encode_result` writes it; ``replicas`` (the read replicas
among the learners, `skydns.raft.node.members`) may be missing from a
snapshot written before they existed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Generator
from typing import Any

from skydns.raft.node.machine import IStateMachine, SnapshotError, SnapshotSteps
from skydns.raft.node.sessions import SessionTable

_MAGIC = b"SKYS"
_HEADER = struct.Struct(">4sBI")


def encode_header(
    machine: IStateMachine, sessions: dict[str, tuple[int, Any]], addresses: dict[str, str | None],
    replicas: frozenset[str] = frozenset(),
) -> bytes:  # fmt: skip
    table = {c: [seq, machine.encode_result(result)] for c, (seq, result) in sessions.items()}
    body = json.dumps({"sessions": table, "addresses": addresses, "replicas": sorted(replicas)},
                      sort_keys=True, separators=(",", ":")).encode()  # fmt: skip
    return _HEADER.pack(_MAGIC, 1, len(body)) + body


def take_steps(
    machine: IStateMachine,
    sessions: dict[str, tuple[int, Any]],
    addresses: dict[str, str | None],
    replicas: frozenset[str] = frozenset(),
) -> Generator[None, None, list[bytes]]:
    """The snapshot's pieces, produced in the machine's steps.  The state is
    captured now, by this call, not when the steps run."""
    steps: SnapshotSteps = machine.snapshot()
    header = encode_header(machine, sessions, addresses, replicas)
    return _after(header, steps)


def _after(header: bytes, steps: SnapshotSteps) -> Generator[None, None, list[bytes]]:
    pieces = yield from steps
    return [header, *pieces]


def run_steps(steps: Generator[None, None, Any]) -> Any:
    """Run ``steps`` to the end at once; its result."""
    try:
        while True:
            next(steps)
    except StopIteration as end:
        return end.value


def _split(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < _HEADER.size:
        raise SnapshotError("snapshot shorter than its header")
    magic, version, length = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != 1:
        raise SnapshotError(f"not a snapshot this version can read ({magic!r}, {version})")
    start = _HEADER.size
    try:
        body = json.loads(data[start : start + length])
        if not isinstance(body, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError, RecursionError) as e:
        raise SnapshotError(f"unreadable snapshot header: {e}") from e
    return body, start + length


def decode(
    machine: IStateMachine, data: bytes
) -> tuple[Any, SessionTable[Any], dict[str, str | None], frozenset[str]]:
    """(the machine's decoded state, the session table, the addresses, the
    read replicas) of a snapshot; `SnapshotError` if it is unreadable.  May
    run in a thread."""
    body, end = _split(data)
    try:
        raw = body["sessions"]
        saved = {
            str(c): (int(seq), machine.decode_result(str(result)))
            for c, (seq, result) in raw.items()
        }
        addresses = {
            str(k): None if v is None else str(v) for k, v in body["addresses"].items()
        }
        replicas = frozenset(str(m) for m in body.get("replicas", []))
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise SnapshotError(f"unreadable snapshot header: {e}") from e
    return machine.decode(data[end:]), SessionTable.restore(saved), addresses, replicas
