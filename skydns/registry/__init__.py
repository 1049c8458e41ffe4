"""The registry: the deterministic state machine the Raft log drives
(`state`), what it holds (`model`) and its snapshot encoding (`snapshot`)."""

from skydns.registry.model import MAX_INSTANCES_PER_NAME, Applied, Instance, Outcome, Removal
from skydns.registry.snapshot import SnapshotError, encode_snapshot, run_steps, snapshot_pieces
from skydns.registry.state import Registry

__all__ = [
    "MAX_INSTANCES_PER_NAME",
    "Applied",
    "Instance",
    "Outcome",
    "Registry",
    "Removal",
    "SnapshotError",
    "encode_snapshot",
    "run_steps",
    "snapshot_pieces",
]
