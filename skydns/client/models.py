"""Values the client sends and receives, with their JSON encodings (SPEC.md §2).

Field names on the wire are SkyDNS version 1's (``Name``, ``TTL``, ...);
responses are read with case-insensitive keys, like the server reads requests.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from attrs import field, frozen


def _lower_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in data.items()}


def _opt_int(value: Any) -> Optional[int]:
    return None if value is None else int(value)


@frozen
class ServiceSpec:
    """What to register for an instance (the body of ``PUT /skydns/services/{uuid}``).

    Every field may be left out here; the server refuses a registration
    without host and port (`BadRequest` naming the field), and a missing
    TTL is 3600 s, the server's default.
    """

    name: str = ""
    environment: str = ""
    region: str = ""
    version: str = ""
    host: str = ""
    port: int = 0
    ttl: int = 3600
    priority: Optional[int] = None
    weight: Optional[int] = None
    no_expire: bool = False
    #: ``tcp`` or ``udp``: the RFC 2782 names (``_name._proto``) it answers under.
    protocol: str = "tcp"
    #: Register it drained: out of DNS answers until undrained.
    drain: bool = False
    #: The ID of a lease it lives by (``SkyDNSClient.grant_lease``, or a
    #: `Session`'s): renewed with the lease, no heartbeat of its own.
    lease: str = ""

    def to_json(self) -> dict[str, Any]:
        """The request body; optional fields are sent only when set."""
        body: dict[str, Any] = {
            "Name": self.name,
            "Environment": self.environment,
            "Region": self.region,
            "Version": self.version,
            "Host": self.host,
            "Port": self.port,
            "TTL": self.ttl,
        }
        if self.priority is not None:
            body["Priority"] = self.priority
        if self.weight is not None:
            body["Weight"] = self.weight
        if self.no_expire:
            body["NoExpire"] = True
        if self.protocol != "tcp":
            body["Protocol"] = self.protocol
        if self.drain:
            body["Drain"] = True
        if self.lease:
            body["Lease"] = self.lease
        return body


@frozen
class ServiceInfo:
    """A registered instance as the server reports it; ``ttl`` is the lease remaining."""

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
    expires: Any = None
    protocol: str = "tcp"
    #: Whether it is drained (registered, but in no DNS answer).
    drain: bool = False
    #: The lease it lives by, if any.
    lease: Optional[str] = None
    #: The JSON object exactly as received (``--json`` prints it).
    raw: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], uuid: str = "") -> "ServiceInfo":
        """Read a service object; ``uuid`` fills in when the body does not carry one."""
        d = _lower_keys(data)
        return cls(
            uuid=str(d.get("uuid") or uuid),
            name=str(d.get("name", "")),
            environment=str(d.get("environment", "")),
            region=str(d.get("region", "")),
            version=str(d.get("version", "")),
            host=str(d.get("host", "")),
            port=int(d.get("port") or 0),
            ttl=int(d.get("ttl") or 0),
            priority=_opt_int(d.get("priority")),
            weight=_opt_int(d.get("weight")),
            no_expire=bool(d.get("noexpire", False)),
            expires=d.get("expires"),
            protocol=str(d.get("protocol") or "tcp"),
            drain=bool(d.get("drain", False)),
            lease=d.get("lease") or None,
            raw=dict(data),
        )


@frozen
class CallbackSpec:
    """A callback request: be told at ``reply:port`` when a matching instance goes.

    Empty match fields match anything.
    """

    reply: str
    port: int
    name: str = ""
    environment: str = ""
    region: str = ""
    version: str = ""
    host: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Environment": self.environment,
            "Region": self.region,
            "Version": self.version,
            "Host": self.host,
            "Reply": self.reply,
            "Port": self.port,
        }


@frozen
class Member:
    """One cluster member as the answering node knows it."""

    id: str
    address: Optional[str]
    role: str
    #: Whether the leader heard from it within an election timeout; None
    #: when the answering node is not the leader (only the leader knows).
    reachable: Optional[bool] = None


@frozen
class ClusterStatus:
    """The ``GET /skydns/cluster`` object."""

    id: str
    leader: Optional[str]
    term: int
    commit_index: int
    applied_index: int
    members: tuple[Member, ...]
    raw: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ClusterStatus":
        members = tuple(
            Member(
                id=str(m.get("id", "")),
                address=None if m.get("address") is None else str(m.get("address")),
                role=str(m.get("role", "")),
                reachable=None if m.get("reachable") is None else bool(m.get("reachable")),
            )
            for m in data.get("members") or ()
        )
        leader = data.get("leader")
        return cls(
            id=str(data.get("id", "")),
            leader=None if leader is None else str(leader),
            term=int(data.get("term") or 0),
            commit_index=int(data.get("commit_index") or 0),
            applied_index=int(data.get("applied_index") or 0),
            members=members,
            raw=dict(data),
        )


@frozen
class LeaseInfo:
    """A lease as the server reports it: ``ttl`` is what each renewal gives;
    ``remaining`` and ``instances`` come with `SkyDNSClient.lease` only."""

    id: str
    ttl: int
    remaining: Optional[int] = None
    instances: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LeaseInfo":
        d = _lower_keys(data)
        remaining = d.get("remaining")
        return cls(id=str(d.get("id", "")), ttl=int(d.get("ttl") or 0),
                   remaining=None if remaining is None else int(remaining),
                   instances=tuple(str(u) for u in d.get("instances") or ()))  # fmt: skip
