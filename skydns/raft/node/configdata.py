"""What a CONFIG entry's data holds besides the configuration: every
member's Raft address (so each node learns how to reach a member from the
log) and the learners that are read replicas (so that no later leader
promotes them).  A snapshot's header carries both at its index
(`skydns.raft.node.snapshots`); the node keeps those for when the entry
itself has been compacted away."""

from __future__ import annotations

import json

from skydns.raft.core.messages import Configuration, encode_config
from skydns.raft.core.raft import RaftCore

Addresses = dict[str, str | None]


def config_data(config: Configuration, addresses: Addresses,
                replicas: frozenset[str] = frozenset()) -> bytes:  # fmt: skip
    """A CONFIG entry's data: ``config``, the address of each member, and
    the learners that are read replicas (never promoted)."""
    body = json.loads(encode_config(config))
    body["addresses"] = {m: addresses.get(m) for m in sorted(config.voters | config.learners)}
    body["replicas"] = sorted(replicas & config.learners)
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def replicas_of(data: bytes) -> frozenset[str]:
    """The read replicas a CONFIG entry's data lists (none in an entry
    written before they existed)."""
    try:
        found = json.loads(data).get("replicas", [])
    except (ValueError, AttributeError):
        return frozenset()
    return frozenset(str(m) for m in found) if isinstance(found, list) else frozenset()


def replicas_in_force(core: RaftCore, from_snapshot: frozenset[str]) -> frozenset[str]:
    """The read replicas of the configuration in force in ``core``;
    ``from_snapshot`` are those of the snapshot its log starts after."""
    if core.config_index > core.log.snapshot.index:
        found = replicas_of(core.log.entry(core.config_index).data)
    else:
        found = from_snapshot if core.config_index > 0 else frozenset()
    return found & core.config.learners


def replicas_at(core: RaftCore, index: int, from_snapshot: frozenset[str]) -> frozenset[str]:
    """The read replicas of the configuration in force at ``index`` (a
    snapshot's: a later CONFIG entry may not be committed)."""
    at = core.config_entry_at(min(core.config_index, index))
    if at > core.log.snapshot.index:
        return replicas_of(core.log.entry(at).data)
    return from_snapshot
