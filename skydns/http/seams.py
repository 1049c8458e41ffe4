"""What the HTTP API needs from the rest of the node: a cluster to propose
to and read from (and how a consistent read waits for it), and metrics to
record into and serve.  The API depends
on these shapes only, so it runs over a real Raft cluster, a one-process
`skydns.testing.LocalCluster` or a test double alike."""

from __future__ import annotations

from typing import Any, Optional, Protocol

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from skydns.cluster import NotLeader, StoreUnavailable
from skydns.commands import Command
from skydns.http.responses import RETRY_AFTER, APIError
from skydns.leases.renewal import Renewal
from skydns.registry import Applied, Registry


class Cluster(Protocol):
    """The part of `skydns.cluster.ICluster` the API uses."""

    registry: Registry

    def propose(self, command: Command) -> "Deferred[Applied]":
        """Fire with the result once applied; fail with `NotLeader` or a
        `TimeoutError` (the API arms no timer of its own) if it cannot be."""

    def read_barrier(self) -> "Deferred[None]": ...

    def renew(self, renewal: Renewal) -> "Deferred[Optional[int]]": ...

    def is_ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


class MetricsRenderer(Protocol):
    """What the API records into and ``GET /metrics`` serves (`skydns.metrics.Metrics`)."""

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its Content-Type."""

    def observe_http(self, route: str, method: str, code: int, seconds: float) -> None:
        """Count one answered request by route template, method and status."""

    def watched(self, what: str) -> None:
        """Count a watch stream's ``event`` sent, or a stream ``dropped``."""


#: ``?consistent=`` values and whether they ask for a linearizable read.
_CONSISTENT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


async def read_barrier(cluster: Cluster, consistent: Optional[str], timeout: float,
                       clock: IReactorTime) -> None:  # fmt: skip
    """With ``?consistent=true``, wait until ``cluster`` has applied every
    write committed before now (503 when it cannot within ``timeout``); 400
    for a value that is neither true nor false."""
    asked = "false" if consistent is None else consistent.lower()
    if asked not in _CONSISTENT:
        raise APIError(400, "consistent: must be true or false", field="consistent")
    if not _CONSISTENT[asked]:
        return
    d: Deferred[None] = cluster.read_barrier()
    d.addTimeout(timeout, clock)
    try:
        await d
    except (NotLeader, TimeoutError, defer.TimeoutError) as e:
        reason = f": {e}" if isinstance(e, StoreUnavailable) else ""
        raise APIError(
            503, "no consistent read is possible now" + reason, {b"Retry-After": RETRY_AFTER}
        ) from e
