"""The apex's nameservers: the cluster's nodes as ``<node-id>.ns.dns.<domain>``
NS records, with their addresses as glue (SPEC.md §3)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from skydns.dns.records import address_record

#: TTL of the apex NS records and their glue.
NS_TTL = 300

#: ``(node id, address)`` of each nameserver.
Nameservers = Sequence[tuple[str, str]]

_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def ns_label(node_id: str) -> str:
    """The DNS label for a node id: lower case, runs of anything but letters,
    digits and ``-`` become ``-``."""
    label = _NOT_LABEL.sub("-", node_id.lower()).strip("-")[:63].strip("-")
    return label or "node"


class ApexNameservers:
    """The nameservers of ``domain``, from a fixed list or a callable
    returning the current one (a cluster's members change)."""

    def __init__(
        self, configured: Union[Nameservers, Callable[[], Nameservers]], domain: bytes
    ) -> None:
        self._configured = configured
        self._domain = domain
        #: Whether the list may change (answers built from it are kept briefly).
        self.changing = callable(configured)
        #: `pairs()` of a fixed list, computed once.
        self._fixed: Optional[list[tuple[bytes, Any]]] = None

    def pairs(self) -> list[tuple[bytes, Any]]:
        """``(name, glue record or None)`` for each nameserver, duplicates dropped."""
        if self._fixed is not None:
            return list(self._fixed)
        configured = self._configured
        listed = configured() if callable(configured) else configured
        servers = []
        seen = set()
        for node_id, ip in listed:
            name = f"{ns_label(node_id)}.ns.dns.".encode("ascii") + self._domain
            if name in seen:
                continue
            seen.add(name)
            servers.append((name, glue(ip)))
        if not self.changing:
            self._fixed = list(servers)
        return servers


def glue(ip: str) -> Any:
    """The A/AAAA glue for a nameserver address; None for a wildcard bind
    address (0.0.0.0, ::) or something that is not an IP literal."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.is_unspecified:
        return None
    return address_record(str(address), NS_TTL)
