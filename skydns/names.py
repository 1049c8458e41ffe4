"""The service model: registered services and callbacks, and the labels their
DNS names are made of (SPEC.md §1).

Names have the fixed layout, most specific on the left::

    [<uuid>.]<host>.<version>.<region>.<name>.<environment>.<domain>

Dots inside Version and Host are written as ``-`` in their label (and so are
the colons of an IPv6 literal: ``2001:db8::1`` → ``2001-db8--1``).  A query
may leave out labels on the left; ``*`` and ``any`` are wildcards anywhere.

What a registration may hold is checked where it comes in, by
`skydns.bodies`; the query grammar is `skydns.patterns`.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Optional

from attrs import frozen

#: Label positions, left to right, of a fully specified instance name.
POSITIONS = ("uuid", "host", "version", "region", "name", "environment")
#: The transports an instance may declare (``Protocol``), for RFC 2782 names.
PROTOCOLS = ("tcp", "udp")
WILDCARDS = frozenset({"*", "any"})

#: Lease length when a registration gives no TTL.
DEFAULT_TTL = 3600
#: Longest TTL a DNS record may carry (RFC 2181 §8).
MAX_TTL = 2**31 - 1
MAX_LABEL = 63



def encode_label(value: str) -> str:
    """The DNS label for a Version or Host value: dots become ``-``, lower case.

    The colons of an IPv6 literal also become ``-``.
    """
    return value.lower().replace(".", "-").replace(":", "-")


@functools.lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal (cached: hosts repeat)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@frozen
class Service:
    """A registered service instance as the API and the log carry it.

    Field values are kept as the client sent them (case included); labels
    for DNS matching come from `Service.labels`.
    """

    uuid: str
    name: str
    environment: str
    region: str
    version: str
    host: str
    port: int
    ttl: int
    priority: Optional[int] = None
    weight: Optional[int] = None
    no_expire: bool = False
    #: The transport an RFC 2782 name asks for (``_tcp`` or ``_udp``).
    protocol: str = "tcp"
    #: Drained: registered, its lease running, but left out of DNS answers.
    drain: bool = False
    #: The lease (SPEC.md §7) the instance lives by, or "" for its own TTL.
    lease: str = ""

    def labels(self) -> tuple[str, str, str, str, str, str]:
        """Lower-cased labels in `POSITIONS` order (uuid, host, ... environment)."""
        return (
            self.uuid.lower(),
            encode_label(self.host),
            encode_label(self.version),
            self.region.lower(),
            self.name.lower(),
            self.environment.lower(),
        )

    def to_dict(self) -> dict[str, Any]:
        """Log/snapshot encoding (round-trips through `from_dict`)."""
        data: dict[str, Any] = {
            "uuid": self.uuid,
            "name": self.name,
            "environment": self.environment,
            "region": self.region,
            "version": self.version,
            "host": self.host,
            "port": self.port,
            "ttl": self.ttl,
        }
        if self.priority is not None:
            data["priority"] = self.priority
        if self.weight is not None:
            data["weight"] = self.weight
        if self.no_expire:
            data["no_expire"] = True
        if self.protocol != "tcp":
            data["protocol"] = self.protocol
        if self.drain:
            data["drain"] = True
        if self.lease:
            data["lease"] = self.lease
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Service:
        """Inverse of `to_dict` (trusted input from our own log)."""
        priority = data.get("priority")
        weight = data.get("weight")
        return cls(
            uuid=str(data["uuid"]),
            name=str(data["name"]),
            environment=str(data["environment"]),
            region=str(data["region"]),
            version=str(data["version"]),
            host=str(data["host"]),
            port=int(data["port"]),
            ttl=int(data["ttl"]),
            priority=None if priority is None else int(priority),
            weight=None if weight is None else int(weight),
            no_expire=bool(data.get("no_expire", False)),
            protocol=str(data.get("protocol", "tcp")),
            drain=bool(data.get("drain", False)),
            lease=str(data.get("lease", "")),
        )


def _matches_field(wanted: str, label: str) -> bool:
    return not wanted or wanted in WILDCARDS or wanted == label


@frozen
class Callback:
    """A request to be told (HTTP DELETE to Reply:Port) when a matching
    instance is removed or expires.  Empty match fields match anything."""

    uuid: str
    name: str
    environment: str
    region: str
    version: str
    host: str
    reply: str
    port: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "environment": self.environment,
            "region": self.region,
            "version": self.version,
            "host": self.host,
            "reply": self.reply,
            "port": self.port,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Callback:
        return cls(
            uuid=str(data["uuid"]),
            name=str(data["name"]),
            environment=str(data["environment"]),
            region=str(data["region"]),
            version=str(data["version"]),
            host=str(data["host"]),
            reply=str(data["reply"]),
            port=int(data["port"]),
        )

    def matches(self, service: Service) -> bool:
        """Whether this callback watches ``service``.

        Each non-empty field must equal the service's (compared as labels,
        so case-insensitively); empty, ``*`` and ``any`` match anything.
        """
        _, host, version, region, name, environment = service.labels()
        return (
            _matches_field(self.name.lower(), name)
            and _matches_field(self.environment.lower(), environment)
            and _matches_field(self.region.lower(), region)
            and _matches_field(encode_label(self.version), version)
            and _matches_field(encode_label(self.host), host)
        )
