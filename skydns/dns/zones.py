"""Which zone a DNS name is in: a name is in a zone when it is the zone's
apex or ends in ``.<zone>``; of several zones, the longest holding it wins
(forward zones, reverse zones, the zones the DNSSEC signer signs).  Names
are ``bytes``, lower case, without a final dot."""

from __future__ import annotations

from collections.abc import Iterable


def in_zone(name: bytes, zone: bytes) -> bool:
    return name == zone or name.endswith(b"." + zone)


def longest_zone(name: bytes, zones: Iterable[bytes]) -> bytes | None:
    """The longest of ``zones`` that holds ``name`` (any case, a final dot
    or not), or None."""
    key = name.lower().rstrip(b".")
    return max((zone for zone in zones if in_zone(key, zone)), key=len, default=None)
