"""What the HTTP API needs from the rest of the node: a cluster to propose
to and read from, and metrics to record into and serve.  The API depends
on these shapes only, so it runs over a real Raft cluster, a one-process
`skydns.testing.LocalCluster` or a test double alike."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred

from skydns.commands import Command
from skydns.registry import Applied, Registry


class Cluster(Protocol):
    """The part of `skydns.cluster.ICluster` the API uses."""

    registry: Registry

    def propose(self, command: Command) -> "Deferred[Applied]":
        """Fire with the result once applied; fail with `NotLeader` or a
        `TimeoutError` (the API arms no timer of its own) if it cannot be."""

    def read_barrier(self) -> "Deferred[None]": ...

    def is_ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


class MetricsRenderer(Protocol):
    """What the API records into and ``GET /metrics`` serves (`skydns.metrics.Metrics`)."""

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its Content-Type."""

    def observe_http(self, route: str, method: str, code: int, seconds: float) -> None:
        """Count one answered request by route template, method and status."""
