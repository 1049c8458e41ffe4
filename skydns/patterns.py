"""Queries: the pattern a DNS name or an HTTP ``?query=`` asks for, with
wildcards, and its grammar (SPEC.md §1 and §5).

Two label orders are offered (``--names``): the seed's, and SkyDNS
version 1's, which swaps region and version.  In either, a name may start
with RFC 2782's ``_<name>._<proto>``: ``_rails._tcp.production`` asks what
``production`` asks, restricted to Name ``rails`` and Protocol ``tcp``.
A ``_<name>`` that contradicts the Name the rest of the pattern fixes
(``_rails._tcp.web.production``) is a `PatternError`: nothing can match.
"""

from __future__ import annotations

from typing import Optional

from attrs import evolve, frozen

from skydns.names import MAX_LABEL, POSITIONS, PROTOCOLS, WILDCARDS, Service

#: SkyDNS version 1's order: ``<uuid>.<host>.<region>.<version>.<name>.<environment>``.
SKYDNS1_ORDER = ("uuid", "host", "region", "version", "name", "environment")
#: ``--names`` choices: the fields the labels of a full name fix, left to right.
ORDERS: dict[str, tuple[str, ...]] = {"seed": POSITIONS, "skydns1": SKYDNS1_ORDER}
#: RFC 2782's second label, ``_tcp`` or ``_udp``, to its protocol.
_PROTOCOL_LABELS = {"_" + protocol: protocol for protocol in PROTOCOLS}


class PatternError(ValueError):
    """A DNS-style query pattern cannot be parsed (too many labels, bad label)."""


@frozen
class Pattern:
    """A parsed query: each position is a lower-cased label, or None for "any"."""

    uuid: Optional[str] = None
    host: Optional[str] = None
    version: Optional[str] = None
    region: Optional[str] = None
    name: Optional[str] = None
    environment: Optional[str] = None
    #: The Protocol an RFC 2782 name asks for; None for any.
    protocol: Optional[str] = None

    def labels(self) -> tuple[Optional[str], ...]:
        """The positions in `POSITIONS` order."""
        return (self.uuid, self.host, self.version, self.region, self.name, self.environment)

    def matches(self, service: Service) -> bool:
        return (self.protocol is None or self.protocol == service.protocol) and all(
            want is None or want == have
            for want, have in zip(self.labels(), service.labels(), strict=True)
        )

    def without_region(self) -> Pattern:
        """The same pattern with the region position set to any (for failover)."""
        return evolve(self, region=None)


def parse_pattern(labels: list[str] | tuple[str, ...], order: tuple[str, ...] = POSITIONS
                  ) -> Pattern:  # fmt: skip
    """Labels left of the domain (most specific first) to a `Pattern`, read
    in ``order`` (a value of `ORDERS`).

    Fewer than six labels are padded on the left with wildcards.  More than
    six (after an RFC 2782 ``_<name>._<proto>`` prefix) raise `PatternError`
    (the DNS side answers NXDOMAIN), and so does an empty label or one
    longer than 63 characters.
    """
    service, protocol, labels = _rfc2782(labels)
    if len(labels) > len(order):
        raise PatternError(
            f"too many labels: {len(labels)} (at most {len(order)} before the domain)"
        )
    fields: dict[str, Optional[str]] = {}
    for position, label in zip(order[len(order) - len(labels):], labels, strict=True):
        fields[position] = _value(label)
    if service is not None:
        fixed = fields.get("name")
        if fixed is not None and fixed != service:
            raise PatternError(f"_{service} and {fixed} name different services")
        fields["name"] = service
    return Pattern(protocol=protocol, **fields)


def _value(label: str) -> Optional[str]:
    """One label's value: lower-cased, None for a wildcard."""
    if not label:
        raise PatternError("empty label")
    if len(label) > MAX_LABEL:
        raise PatternError(f"label longer than {MAX_LABEL} characters")
    lowered = label.lower()
    return None if lowered in WILDCARDS else lowered


def _rfc2782(labels: list[str] | tuple[str, ...]
             ) -> tuple[Optional[str], Optional[str], list[str] | tuple[str, ...]]:  # fmt: skip
    """``(name or None, protocol, rest)`` for a name starting ``_<name>._<proto>``;
    ``(None, None, labels)`` for any other."""
    if len(labels) < 2 or len(labels[0]) < 2 or labels[0][0] != "_":
        return None, None, labels
    protocol = _PROTOCOL_LABELS.get(labels[1].lower())
    if protocol is None:
        return None, None, labels
    return _value(labels[0][1:]), protocol, labels[2:]


def parse_query(query: str, domain: str, order: tuple[str, ...] = POSITIONS) -> Pattern:
    """An HTTP ``?query=`` value (``rails.production``, with or without the
    domain suffix) to a `Pattern`; `PatternError` if it cannot be one.

    An empty query (or the domain alone) matches every instance.
    """
    text = query.strip().lower()
    if text.endswith("."):
        text = text[:-1]
    suffix = domain.strip().lower().rstrip(".")
    if suffix:
        if text == suffix:
            text = ""
        elif text.endswith("." + suffix):
            text = text[: -len(suffix) - 1]
    if not text:
        return Pattern()
    return parse_pattern(text.split("."), order)
