"""The lease routes' work (SPEC.md §7) and SkyDNS 1's heartbeat, for the
API: grant, renew, revoke and show a lease, and ``PATCH {"TTL": n}``.

A grant and a revoke are proposals; a renewal is not: it goes to the
leader's lease deadlines (`ICluster.renew`), which the leader checkpoints
to the log at a bounded rate.  A lease's ``Remaining`` here is the end the
log recorded: for a lease kept alive, a quarter of its TTL or more (the
leader's own deadline may be up to the whole TTL away).
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Callable, Optional, Protocol

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from skydns.bodies import ValidationError, check_lease_id, parse_ttl
from skydns.clock import Clock
from skydns.commands import Command, GrantLease, Renew, RevokeLease
from skydns.http.responses import APIError, proposal_failed, render_json
from skydns.leases.renewal import INSTANCE, LEASE, NEEDS_LOG, Renewal
from skydns.presentation import service_json
from skydns.registry import Applied, Outcome, Registry
from skydns.timestamps import rfc3339


class LeaseCluster(Protocol):
    """The part of `skydns.cluster.ICluster` the lease routes use."""

    registry: Registry

    def renew(self, renewal: Renewal) -> "Deferred[Optional[int]]": ...


def new_lease_id() -> str:
    """A fresh lease ID: 16 hex digits of a random positive 63-bit number,
    so that it can also be the ID of an etcd lease (``--store etcd``)."""
    return f"{secrets.randbelow(2**63 - 1) + 1:016x}"


def _lease_id(lease_id: str) -> str:
    """``lease_id`` if it can name a lease; 404 otherwise (none has it)."""
    try:
        check_lease_id(lease_id)
    except ValidationError as e:
        raise APIError(404, f"lease {lease_id[:64]} not found") from e
    return lease_id


def _gone(lease_id: str) -> APIError:
    return APIError(404, f"lease {lease_id} not found: it expired or was revoked; "
                         "grant a new one and register its instances again")  # fmt: skip


class LeaseRoutes:
    """What the lease routes and the heartbeat do, over ``cluster``;
    ``propose`` turns a command into its applied result or the API's error."""

    def __init__(
        self,
        cluster: LeaseCluster,
        clock: Clock,
        propose: Callable[[Command], "Deferred[Applied]"],
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self.propose = propose

    def grant(self, request: Request, body: bytes) -> "Deferred[bytes]":
        try:
            ttl = parse_ttl(body)
        except ValidationError as e:
            raise APIError(400, str(e), field=e.field) from e
        lease_id = new_lease_id()

        def granted(applied: Applied) -> bytes:
            if applied.status is Outcome.CONFLICT:
                raise APIError(409, f"lease {lease_id} exists already: ask again")
            return render_json(request, 201, {"ID": lease_id, "TTL": ttl})

        return self.propose(GrantLease(lease_id, ttl, self.clock.seconds())).addCallback(granted)

    def renew(self, request: Request, lease_id: str) -> "Deferred[bytes]":
        lease_id = _lease_id(lease_id)

        def renewed(ttl: Optional[int]) -> bytes:
            if ttl is None or ttl < 0:
                raise _gone(lease_id)
            return render_json(request, 200, {"ID": lease_id, "TTL": ttl})

        d = self.cluster.renew(Renewal(LEASE, lease_id))
        return d.addErrback(proposal_failed).addCallback(renewed)

    def revoke(self, request: Request, lease_id: str) -> "Deferred[bytes]":
        lease_id = _lease_id(lease_id)

        def revoked(applied: Applied) -> bytes:
            if applied.status is Outcome.NOT_FOUND:
                raise _gone(lease_id)
            removed = [r.instance.service.uuid for r in applied.removals]
            return render_json(request, 200, {"ID": lease_id, "Removed": removed})

        now = self.clock.seconds()
        return self.propose(RevokeLease((lease_id,), now)).addCallback(revoked)

    def show(self, lease_id: str) -> dict[str, Any]:
        """``GET /skydns/leases/{ID}`` (after any read barrier)."""
        lease_id = _lease_id(lease_id)
        now = self.clock.seconds()
        registry = self.cluster.registry
        lease = registry.lease(lease_id, now)
        if lease is None:
            raise _gone(lease_id)
        return {"ID": lease.id, "TTL": lease.ttl,
                "Remaining": math.floor(lease.remaining(now)),
                "Expires": rfc3339(lease.expires),
                "Instances": registry.lease_members(lease_id)}  # fmt: skip

    def heartbeat(self, request: Request, uuid: str, ttl: int) -> "Deferred[bytes]":
        """``PATCH {"TTL": n}``: the instance's deadline moves on the leader,
        no log entry, unless the TTL changes (then a `Renew` is proposed)."""
        now = self.clock.seconds()

        def answered(renewed: Optional[int]) -> "Deferred[bytes] | bytes":
            if renewed == NEEDS_LOG:
                d = self.propose(Renew(uuid, ttl, now))
                return d.addCallback(shown)
            if renewed is None:
                raise APIError(404, f"service {uuid} not found")
            return self._shown(request, uuid, now, renewed)

        def shown(applied: Applied) -> bytes:
            if applied.status is Outcome.NOT_FOUND:
                raise APIError(404, f"service {uuid} not found")
            return self._shown(request, uuid, now, None)

        d = self.cluster.renew(Renewal(INSTANCE, uuid, ttl))
        return d.addErrback(proposal_failed).addCallback(answered)

    def _shown(self, request: Request, uuid: str, now: float, ttl: Optional[int]) -> bytes:
        """The instance after a renewal: as this node holds it, with the
        leader's new deadline (``ttl`` from ``now``) when it did not log one."""
        instance = self.cluster.registry.get(uuid, now)
        if instance is None:
            return render_json(request, 200, {"UUID": uuid, "TTL": ttl})
        body = service_json(instance, now)
        if ttl is not None:
            body["TTL"], body["Expires"] = ttl, rfc3339(now + ttl)
        return render_json(request, 200, body)
