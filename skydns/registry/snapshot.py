"""The registry's snapshot encoding: deterministic JSON, written and read a
piece at a time so that a node with 100,000 instances never stops its
reactor for long (SPEC.md §4: a snapshot is the registry's whole state)."""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Generator
from typing import Any, Callable, TypeVar, cast

from skydns.jsontext import SORTED, instance_json
from skydns.names import Callback, Service
from skydns.registry.leases import Lease
from skydns.registry.model import Instance

#: Version of the snapshot encoding written by `encode_snapshot` when the
#: registry holds no lease (such bytes are what this code wrote before leases).
SNAPSHOT_FORMAT = 1
#: Version written when it holds leases: format 1 with a ``leases`` list.
SNAPSHOT_FORMAT_LEASES = 2

#: Where `decode_snapshot` puts each instance it reads, with its callbacks.
Insert = Callable[[Instance, list[Callback]], None]
#: What `snapshot_pieces` encodes: version, instances and callbacks by UUID
#: key, leases (`skydns.registry.Registry.frozen_state`).
FrozenState = tuple[int, dict[str, Instance], dict[str, tuple[Callback, ...]], tuple[Lease, ...]]
#: Where `decode_snapshot` puts each lease it reads.
PutLease = Callable[[Lease], None]


class SnapshotError(ValueError):
    """The bytes are not a registry snapshot this code can read."""


def encode_snapshot(
    version: int,
    instances: dict[str, Instance],
    callbacks: dict[str, tuple[Callback, ...]],
    leases: tuple[Lease, ...] = (),
) -> bytes:
    """`Registry.snapshot` bytes from a `Registry.frozen_state` copy, at once."""
    return b"".join(run_steps(snapshot_pieces(version, instances, callbacks, leases)))


def snapshot_pieces(
    version: int,
    instances: dict[str, Instance],
    callbacks: dict[str, tuple[Callback, ...]],
    leases: tuple[Lease, ...] = (),
) -> Generator[None, None, list[bytes]]:
    """`encode_snapshot` in steps of about a millisecond: a generator that
    yields between steps and returns the pieces the bytes are the join of.

    The bytes are ``json.dumps(body, sort_keys=True, separators=(",", ":"))``
    of ``{"format", "instances", "version"}`` (each instance
    ``{"callbacks", "expires", "service"}``) and, when there are leases,
    ``"leases"`` (each ``{"expires", "id", "ttl"}``, in ID order), written by `instance_json` a
    chunk of instances at a time.  A node encodes its snapshots on the
    reactor thread a step at a time, between the requests it serves
    (`skydns.raft.node.snapshotter`): one ``json.dumps`` of the whole body would
    stop the reactor for a third of a second with 100,000 instances, and
    building a dict per instance for it costs three times what
    `instance_json` does.  The keys are sorted a slice per step and the
    sorted slices merged.  The pieces are returned rather than joined so
    that the caller copies megabytes once, with what it puts around them.
    """
    keys = list(instances)
    slices = []
    for start in range(0, len(keys), _SNAPSHOT_SORT_SLICE):
        slices.append(sorted(keys[start : start + _SNAPSHOT_SORT_SLICE]))
        yield
    form = SNAPSHOT_FORMAT_LEASES if leases else SNAPSHOT_FORMAT
    pieces = [b'{"format":%d,"instances":[' % form]
    chunk: list[str] = []
    for key in slices[0] if len(slices) == 1 else heapq.merge(*slices):
        instance = instances[key]
        chunk.append(instance_json(instance.service, instance.expires, callbacks.get(key, ())))
        if len(chunk) == _SNAPSHOT_CHUNK:
            pieces += (",".join(chunk).encode("ascii"), b",")
            chunk = []
            yield
    if chunk:
        pieces.append(",".join(chunk).encode("ascii"))
    elif len(pieces) > 1:
        pieces.pop()  # the comma after the last full chunk
    if leases:
        listed = [{"expires": e.expires, "id": e.id, "ttl": e.ttl} for e in leases]
        pieces.append(b'],"leases":' + SORTED.encode(listed).encode("ascii") + b",")
    else:
        pieces.append(b"],")
    pieces.append(b'"version":%d}' % version)
    return pieces


T = TypeVar("T")


def run_steps(steps: Generator[None, None, T]) -> T:
    """Run a generator of steps (`snapshot_pieces`) to its end; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(T, done.value)


def _instance(item: Any) -> tuple[Instance, list[Callback]]:
    """An instance and its callbacks from a snapshot's list item."""
    return (
        Instance(Service.from_dict(item["service"]), float(item["expires"])),
        [Callback.from_dict(cb) for cb in item["callbacks"]],
    )


def _insert_items(insert: Insert, text: str, at: int) -> int:
    """Give ``insert`` the instances of the JSON array whose first item
    starts at ``at``, decoding one at a time (one ``json.loads`` of a
    whole snapshot would hold the GIL for as long as it runs, half a second
    for 100,000 instances, while the reactor waits to answer DNS); the
    offset after the array's closing bracket and the comma that follows."""
    if text.startswith("],", at):
        return at + 2
    while True:
        item, at = _SNAPSHOT_DECODER.raw_decode(text, at)
        insert(*_instance(item))
        if text.startswith(",", at):
            at += 1
        elif text.startswith("],", at):
            return at + 2
        else:
            raise ValueError(f"expected ',' or ']' at offset {at}")


#: The start of `encode_snapshot`'s bytes, up to the first instance.
_SNAPSHOT_HEAD = re.compile(r'\{"format":(\d+),"instances":\[')
_SNAPSHOT_DECODER = json.JSONDecoder()

#: Instances per chunk `snapshot_pieces` encodes and joins in one step.
_SNAPSHOT_CHUNK = 256
#: Keys per slice `snapshot_pieces` sorts in one step.
_SNAPSHOT_SORT_SLICE = 8192


def _leases(body: Any, form: int) -> list[Lease]:
    """The leases of a snapshot's top-level object (none in format 1)."""
    if form == SNAPSHOT_FORMAT:
        if "leases" in body:
            raise ValueError("leases in a format 1 snapshot")
        return []
    found = []
    for item in body["leases"]:
        lease = Lease(str(item["id"]), int(item["ttl"]), float(item["expires"]))
        found.append(lease)
    return found


_FORMATS = (SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_LEASES)


def decode_snapshot(data: bytes, insert: Insert, put_lease: PutLease) -> int:
    """Read `encode_snapshot` bytes, giving ``insert`` each instance in turn
    and ``put_lease`` each lease; the registry version they were taken at.
    `SnapshotError` if unreadable."""
    try:
        text = data.decode("utf-8")
        head = _SNAPSHOT_HEAD.match(text)
        if head is not None and int(head.group(1)) in _FORMATS:
            held: list[tuple[Instance, list[Callback]]] = []
            try:
                end = _insert_items(lambda i, c: held.append((i, c)), text, head.end())
                rest = json.loads("{" + text[end:])
                version = int(rest["version"])
                leases = _leases(rest, int(head.group(1)))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # not the compact form throughout: read it whole, below
            else:
                for lease in leases:
                    put_lease(lease)
                for instance, callbacks in held:
                    insert(instance, callbacks)
                return version
        body: Any = json.loads(text)
        if body.get("format") not in _FORMATS:
            raise SnapshotError(f"unknown snapshot format {body.get('format')!r}")
        version = int(body["version"])
        for lease in _leases(body, body["format"]):
            put_lease(lease)
        for item in body["instances"]:
            insert(*_instance(item))
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise SnapshotError(f"unreadable registry snapshot: {e}") from e
    return version
