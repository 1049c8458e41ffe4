"""Why a Raft node may not serve: the few facts every part of it consults."""

from __future__ import annotations

from attrs import define


@define
class Condition:
    """What this node is going through, besides Raft's own roles."""

    running: bool = False
    #: Why it stopped for good (a failed write or sync: fail-stop).
    failed: str | None = None
    #: The index of the configuration that removed it from the cluster.
    removed: int | None = None
    #: Why its log may lack entries it acknowledged (SPEC §11), until a
    #: leader has restored it.
    recovering: str | None = None
    #: Set while a node started with ``--join`` is not yet in the
    #: configuration it holds.
    joining: str | None = None

    def refusal(self) -> str | None:
        """Why requests (writes, reads, changes) fail here now, if they do."""
        if self.failed is not None:
            return f"this node's storage failed: {self.failed}"
        if self.removed is not None:
            return f"this node was removed from the cluster at index {self.removed}"
        if not self.running:
            return "this node is not running"
        return None

    def unready(self) -> str | None:
        """Why this node should not be sent traffic (``/ready``), beyond Raft."""
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        if self.recovering is not None:
            return f"waiting for the leader to bring the log up to date: {self.recovering}"
        return self.joining
