"""The JSON views of registered instances, callbacks and readiness that the
HTTP API and callbacks send (SPEC.md §2): kept apart from the service model in `skydns.names`, which
the registry itself builds on."""

from __future__ import annotations

import datetime
import math
from typing import Any

from skydns.names import Callback
from skydns.registry import Instance


def rfc3339(when: float) -> str:
    """``when`` (seconds since the epoch) as an RFC 3339 UTC timestamp, with
    milliseconds unless it is a whole second: what
    ``datetime.fromtimestamp(when, UTC).isoformat(...)`` gives (``Z`` for
    ``+00:00``), the date and time of day formatted once per second (a
    listing of 100,000 instances asks for a few distinct seconds)."""
    fraction, second = math.modf(when)
    micros = round(fraction * 1e6)  # fromtimestamp's rounding, carried into the second
    if micros >= 1_000_000:
        micros -= 1_000_000
        second += 1.0
    elif micros < 0:
        micros += 1_000_000
        second -= 1.0
    head = _SECONDS.get(second)
    if head is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        stamp = datetime.datetime.fromtimestamp(second, tz=datetime.UTC)
        head = _SECONDS[second] = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if when % 1:
        return f"{head}.{micros // 1000:03d}Z"
    return head + "Z"


#: Whole second -> its date and time of day (see `rfc3339`).
_SECONDS: dict[float, str] = {}


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
        "Expires": None if service.no_expire else rfc3339(instance.expires),
    }


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
