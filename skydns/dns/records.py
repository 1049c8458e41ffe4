"""Building DNS resource records from registry instances (SPEC.md §3).

Pure helpers for `skydns.dns.authority`: address records for IP literal
hosts, SRV records with SkyDNS's priority/weight rules, and TTLs taken from
the remaining lease.  Names are ``bytes`` here, as in `twisted.names`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import Any, Optional, Union

from attrs import frozen
from twisted.names import dns

from skydns.registry import Instance

#: SRV priority of the instances matching the query (SPEC.md §3).
PRIMARY_PRIORITY = 10
#: SRV priority of the instances in other regions (region failover).
FAILOVER_PRIORITY = 20
#: The largest TTL a record can carry (RFC 2181 §8).
MAX_TTL = 2**31 - 1

_HOST_LABEL = re.compile(rb"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")

AddressRecord = Union[dns.Record_A, dns.Record_AAAA]


def ttl_of(instance: Instance, now: float) -> int:
    """The TTL of a record for ``instance``: its remaining lease, rounded
    down so a cache never keeps it longer than the lease (NoExpire instances
    report their TTL as remaining)."""
    return max(0, min(MAX_TTL, math.floor(instance.remaining(now))))


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


@frozen
class Answer:
    """Records found for a question: answer and additional sections."""

    answers: tuple[dns.RRHeader, ...] = ()
    additional: tuple[dns.RRHeader, ...] = ()

    def __add__(self, other: "Answer") -> "Answer":
        return Answer(self.answers + other.answers, self.additional + other.additional)


def header(name: bytes, record: Any, ttl: int) -> dns.RRHeader:
    """An authoritative IN resource record."""
    return dns.RRHeader(name, record.TYPE, dns.IN, ttl, record, auth=True)


def dedupe(records: Iterable[dns.RRHeader]) -> tuple[dns.RRHeader, ...]:
    """Drop repeated (name, type, rdata) records, keeping the smallest TTL, in
    first-seen order (an RRset holds each record once, RFC 2181 §5)."""
    kept: dict[tuple[bytes, int, bytes], dns.RRHeader] = {}
    for record in records:
        key = (record.name.name.lower(), record.type, _rdata(record))
        previous = kept.get(key)
        if previous is None or record.ttl < previous.ttl:
            kept[key] = record
    return tuple(kept.values())


def _rdata(record: dns.RRHeader) -> bytes:
    out = BytesIO()
    payload: Any = record.payload
    payload.encode(out)
    return out.getvalue()


def address_answer(
    name: bytes, instances: Sequence[Instance], now: float, record_type: int
) -> Answer:
    """A (or AAAA) records for the instances whose Host is an IPv4 (IPv6) literal."""
    records = []
    for instance in instances:
        ttl = ttl_of(instance, now)
        record = address_record(instance.service.host, ttl)
        if record is not None and record.TYPE == record_type:
            records.append(header(name, record, ttl))
    return Answer(dedupe(records))


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
        service = instance.service
        ttl = ttl_of(instance, now)
        address = address_record(service.host, ttl)
        if address is not None:
            target = uuid_name(service.uuid, domain)
            additional.append(header(target, address, ttl))
        else:
            host = host_name(service.host)
            if host is None:
                continue
            target = host
        if priority is not None:
            srv_priority = priority
        elif service.priority is not None:
            srv_priority = service.priority
        else:
            srv_priority = PRIMARY_PRIORITY
        weight = service.weight if service.weight is not None else share
        record = dns.Record_SRV(srv_priority, weight, service.port, target, ttl)
        records.append(header(name, record, ttl))
    return Answer(dedupe(records), dedupe(additional))


def uuid_name(uuid: str, domain: bytes) -> bytes:
    """``<uuid>.<domain>``, the name an IP-host instance is published under."""
    return uuid.lower().encode("ascii", "replace") + b"." + domain
