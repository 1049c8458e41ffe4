"""The JSON views of registered instances, callbacks and readiness that the
HTTP API and callbacks send (SPEC.md §2): kept apart from the service model in `skydns.names`, which
the registry itself builds on."""

from __future__ import annotations

import math
from typing import Any

from skydns.names import Callback, Service
from skydns.registry import Instance
from skydns.timestamps import rfc3339


def remaining_ttl(instance: Instance, now: float) -> int:
    """Whole seconds left on the lease, rounded down (never more than left)."""
    return max(0, math.floor(instance.remaining(now)))


def service_json(instance: Instance, now: float) -> dict[str, Any]:
    """The service as ``GET /skydns/services/{uuid}`` shows it (SPEC.md §2).

    ``TTL`` is the remaining lease in whole seconds (the registered TTL for
    NoExpire instances); ``Expires`` is RFC 3339 UTC, null for NoExpire.
    """
    service = instance.service
    return {
        "UUID": service.uuid,
        "Name": service.name,
        "Version": service.version,
        "Environment": service.environment,
        "Region": service.region,
        "Host": service.host,
        "Port": service.port,
        "TTL": remaining_ttl(instance, now),
        "Priority": service.priority,
        "Weight": service.weight,
        "NoExpire": service.no_expire,
        "Protocol": service.protocol,
        "Drain": service.drain,
        "Lease": service.lease or None,
        "Expires": None if service.no_expire else rfc3339(instance.expires),
    }


def dns_names(service: Service, domain: str) -> list[str]:
    """Where DNS finds a newly registered instance (the register answer's
    ``DNS``): its name and environment (``*`` for one left empty: a query
    with a label there would not match it), and its UUID.  Name and
    environment are the last two labels in either ``--names`` order."""
    domain = domain.strip(".").lower()
    name = service.name.lower() or "*"
    environment = service.environment.lower() or "*"
    return [f"{name}.{environment}.{domain}.", f"{service.uuid.lower()}.{domain}."]


def callback_json(callback: Callback) -> dict[str, Any]:
    """A callback as the API shows it (SkyDNS v1 field names)."""
    return {
        "UUID": callback.uuid,
        "Name": callback.name,
        "Version": callback.version,
        "Environment": callback.environment,
        "Region": callback.region,
        "Host": callback.host,
        "Reply": callback.reply,
        "Port": callback.port,
    }


def not_ready_reason(status: dict[str, Any]) -> str:
    """Why a node that is not ready is not, from its cluster status (the
    ``/ready`` answer's ``reason``)."""
    reason = status.get("not_ready_because")
    if isinstance(reason, str):
        return reason
    if status.get("role") == "removed":
        return "this node was removed from the cluster"
    if status.get("leader") is None:
        return "no leader is known"
    return "catching up with the leader's commit index"
