"""Building DNS resource records from registry instances (SPEC.md §3).

Pure helpers for `skydns.dns.authority`: address records for IP literal
hosts, SRV records with SkyDNS's priority/weight rules, and TTLs taken from
the remaining lease.  Names are ``bytes`` here, as in `twisted.names`.

Records built from instances are `WireRecord`s: their RDATA bytes, not
`twisted.names` record objects, so a miss builds no objects but a tuple per
record.  What does not change with time is remembered: the address bytes of
each host string, and each instance's SRV port and target (by identity: a
registry change replaces an instance).  `to_header` gives the
`dns.RRHeader` the twisted.names path needs.
"""

from __future__ import annotations

import ipaddress
import math
import re
import struct
from collections.abc import Sequence
from io import BytesIO
from typing import Any, NamedTuple, Optional, Union

from attrs import define
from twisted.names import dns

from skydns.registry import Instance

#: SRV priority of the instances matching the query (SPEC.md §3).
PRIMARY_PRIORITY = 10
#: SRV priority of the instances in other regions (region failover).
FAILOVER_PRIORITY = 20
#: The largest TTL a record can carry (RFC 2181 §8).
MAX_TTL = 2**31 - 1

_SRV = struct.Struct("!HHH")
_HOST_LABEL = re.compile(rb"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")

AddressRecord = Union[dns.Record_A, dns.Record_AAAA]


def ttl_of(instance: Instance, now: float) -> int:
    """The TTL of a record for ``instance``: its remaining lease, rounded
    down so a cache never keeps it longer than the lease (NoExpire instances
    report their TTL as remaining)."""
    if instance.service.no_expire:
        return max(0, min(MAX_TTL, instance.service.ttl))
    return ttl_at(instance.expires, now)


def lease_end(instance: Instance) -> float:
    """When ``instance``'s TTL stops counting down: its lease's end, or
    ``math.inf`` for a NoExpire instance (whose TTL is fixed)."""
    return math.inf if instance.service.no_expire else instance.expires


def ttl_at(expires: float, now: float) -> int:
    """`ttl_of` for a lease ending at ``expires`` (finite), at ``now``."""
    left = expires - now
    return min(MAX_TTL, math.floor(left)) if left > 0 else 0


def ip_literal(host: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """The address ``host`` spells, or None when it is a host name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        # A zone index means nothing to a remote client; publish the bare address.
        address = ipaddress.IPv6Address(address.packed)
    return address


def address_record(host: str, ttl: int) -> Optional[AddressRecord]:
    """An A or AAAA record for an IP literal ``host``; None for a host name."""
    address = ip_literal(host)
    if address is None:
        return None
    if address.version == 4:
        return dns.Record_A(str(address), ttl)
    return dns.Record_AAAA(str(address), ttl)


def host_name(host: str) -> Optional[bytes]:
    """``host`` as an absolute DNS name without the trailing dot, or None
    when it cannot be one (a record naming it could not be encoded)."""
    try:
        name = host.rstrip(".").lower().encode("ascii")
    except UnicodeEncodeError:
        return None
    labels = name.split(b".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return None
    return name


def weight_share(count: int) -> int:
    """``floor(100 / n)``: the SRV weight of each of ``n`` equal instances."""
    return 100 // count if count else 0


@define
class Answer:
    """Records found for a question: answer and additional sections."""

    answers: tuple[Any, ...] = ()  # dns.RRHeader or WireRecord
    additional: tuple[Any, ...] = ()

    def __add__(self, other: "Answer") -> "Answer":
        return Answer(self.answers + other.answers, self.additional + other.additional)


def header(name: bytes, record: Any, ttl: int) -> dns.RRHeader:
    """An authoritative IN resource record."""
    return dns.RRHeader(name, record.TYPE, dns.IN, ttl, record, auth=True)


class _WireFields(NamedTuple):
    name: bytes
    type: int
    ttl: int
    rdata: bytes
    #: When the lease behind ``ttl`` ends (``math.inf`` for a NoExpire
    #: instance): an answer cache rewrites the TTL from it as time passes.
    expires: float = math.inf


class WireRecord(_WireFields):
    """An authoritative IN record built from registry instances, kept as the
    bytes it is sent as: ``name`` (the owner: dotted, lower case, no final
    dot), ``type``, ``ttl`` and ``rdata``, and the ``expires`` the TTL
    counts down to (`ttl_of`).  The RDATA holds no name a
    message may compress (an SRV target is written in full, RFC 2782), so
    its bytes are the same in every message.  `skydns.dns.encoder` writes it
    as is; `to_header` gives the `dns.RRHeader` twisted.names encodes to the
    same bytes."""

    __slots__ = ()

    #: Like `dns.RRHeader.auth` and ``cls``: every such record is
    #: authoritative, class IN.
    auth = True
    cls = dns.IN


def to_header(record: Any) -> dns.RRHeader:
    """``record`` as a `dns.RRHeader` (a `WireRecord` is decoded; anything
    else is returned as it is)."""
    if type(record) is not WireRecord:
        return record  # type: ignore[no-any-return]
    kind = dns.Message().lookupRecordType(record.type)
    payload = kind(ttl=record.ttl)
    payload.decode(BytesIO(record.rdata), len(record.rdata))
    return dns.RRHeader(record.name, record.type, dns.IN, record.ttl, payload, auth=True)


#: Entries kept in each of the encoding caches below (they are cleared when full).
_ENCODED_SIZE = 65536
_HOSTS: dict[str, Optional[tuple[int, bytes]]] = {}
_TARGETS: dict[bytes, bytes] = {}


def address_rdata(host: str) -> Optional[tuple[int, bytes]]:
    """``(type, RDATA)`` of the A or AAAA record for an IP literal ``host``
    (the packed address); None for a host name.  Remembered per host."""
    found = _HOSTS.get(host, _HOSTS)
    if found is not _HOSTS:
        return found  # type: ignore[return-value]
    address = ip_literal(host)
    if address is None:
        rdata = None
    else:
        rdata = (dns.A if address.version == 4 else dns.AAAA, address.packed)
    if len(_HOSTS) >= _ENCODED_SIZE:
        _HOSTS.clear()
    _HOSTS[host] = rdata
    return rdata


def name_wire(name: bytes) -> bytes:
    """``name`` (dotted, no final dot) uncompressed on the wire."""
    found = _TARGETS.get(name)
    if found is None:
        out = BytesIO()
        dns.Name(name).encode(out)
        found = out.getvalue()
        if len(_TARGETS) >= _ENCODED_SIZE:
            _TARGETS.clear()
        _TARGETS[name] = found
    return found


def dedupe(records: list[WireRecord]) -> tuple[WireRecord, ...]:
    """Drop repeated (name, type, rdata) records, keeping the one whose lease
    ends first (so its TTL stays the smallest as time passes), in first-seen
    order (an RRset holds each record once, RFC 2181 §5)."""
    if len(records) < 2:
        return tuple(records)
    kept: dict[tuple[bytes, int, bytes], WireRecord] = {}
    for record in records:
        key = (record.name, record.type, record.rdata)
        previous = kept.get(key)
        if previous is None or (record.expires, record.ttl) < (previous.expires, previous.ttl):
            kept[key] = record
    return tuple(kept.values())


def address_answer(
    name: bytes, instances: Sequence[Instance], now: float, record_type: int
) -> Answer:
    """A (or AAAA) records for the instances whose Host is an IPv4 (IPv6) literal."""
    records = []
    for instance in instances:
        found = address_rdata(instance.service.host)
        if found is not None and found[0] == record_type:
            ttl = ttl_of(instance, now)
            records.append(WireRecord(name, record_type, ttl, found[1], lease_end(instance)))
    return Answer(dedupe(records))


#: What `srv_answer` needs of an instance that does not change with time,
#: by ``id(instance)`` (the instance is kept, so the id stays its own; a
#: registry change makes a new instance): the instance; its SRV priority
#: (None for the default) and weight (None for the share); the SRV RDATA
#: after priority and weight (port, target), or None when the host cannot be
#: a target; the additional record's owner, type and RDATA (or None); and
#: the domain the target is under.
_SrvParts = tuple[
    Instance,
    Optional[int],
    Optional[int],
    Optional[bytes],
    Optional[tuple[bytes, int, bytes]],
    bytes,
]
_SRV_PARTS: dict[int, _SrvParts] = {}
#: Entries `_SRV_PARTS` keeps (it is cleared when full).  Each keeps its
#: instance alive, replaced ones too, until then (tens of MB at worst).
_SRV_PARTS_SIZE = 32768
_PRIORITY_WEIGHT = struct.Struct("!HH")
_PORT = struct.Struct("!H")


def _srv_parts(instance: Instance, domain: bytes) -> _SrvParts:
    known = _SRV_PARTS.get(id(instance))
    if known is not None and known[0] is instance and known[5] == domain:
        return known
    service = instance.service
    address = address_rdata(service.host)
    glue: Optional[tuple[bytes, int, bytes]] = None
    rest = None
    target: Optional[bytes]
    if address is not None:
        glue = (uuid_name(service.uuid, domain), address[0], address[1])
        target = glue[0]
    else:
        target = host_name(service.host)
    if target is not None:
        rest = _PORT.pack(service.port) + name_wire(target)
    parts: _SrvParts = (instance, service.priority, service.weight, rest, glue, domain)
    if len(_SRV_PARTS) >= _SRV_PARTS_SIZE:
        _SRV_PARTS.clear()
    _SRV_PARTS[id(instance)] = parts
    return parts


def srv_answer(
    name: bytes,
    instances: Sequence[Instance],
    now: float,
    domain: bytes,
    priority: Optional[int] = None,
) -> Answer:
    """One SRV record per instance (SPEC.md §3).

    Priority is the service's own, else `PRIMARY_PRIORITY`; a given
    ``priority`` (failover) overrides both.  Weight is the service's own,
    else ``floor(100 / n)``.  An IP host is targeted as ``<uuid>.<domain>``
    with its A/AAAA record in the additional section.
    """
    share = weight_share(len(instances))
    records = []
    additional = []
    for instance in instances:
        _, own_priority, weight, rest, glue, _ = _srv_parts(instance, domain)
        if rest is None:
            continue
        ttl = ttl_of(instance, now)
        expires = lease_end(instance)
        if glue is not None:
            additional.append(WireRecord(glue[0], glue[1], ttl, glue[2], expires))
        if priority is not None:
            srv_priority = priority
        elif own_priority is not None:
            srv_priority = own_priority
        else:
            srv_priority = PRIMARY_PRIORITY
        if weight is None:
            weight = share
        rdata = _PRIORITY_WEIGHT.pack(srv_priority, weight) + rest
        records.append(WireRecord(name, dns.SRV, ttl, rdata, expires))
    return Answer(dedupe(records), dedupe(additional))


def uuid_name(uuid: str, domain: bytes) -> bytes:
    """``<uuid>.<domain>``, the name an IP-host instance is published under."""
    return uuid.lower().encode("ascii", "replace") + b"." + domain
