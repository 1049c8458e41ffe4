"""Service records, their validation, and the DNS name grammar (SPEC.md §1).

Names have the fixed layout, most specific on the left::

    [<uuid>.]<host>.<version>.<region>.<name>.<environment>.<domain>

Dots inside Version and Host are written as ``-`` in their label.  A query
may leave out labels on the left; ``*`` and ``any`` are wildcards anywhere.

SKELETON: the signatures below are the contract other modules build on.
Bodies marked ``NotImplementedError`` are being filled in.
"""

from __future__ import annotations

from typing import Any, Optional

from attrs import frozen

#: Label positions, left to right, of a fully specified instance name.
POSITIONS = ("uuid", "host", "version", "region", "name", "environment")
WILDCARDS = frozenset({"*", "any"})


class ValidationError(ValueError):
    """A registration body or field is invalid.  ``field`` names it (or "body")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PatternError(ValueError):
    """A DNS-style query pattern cannot be parsed (too many labels, bad label)."""


def encode_label(value: str) -> str:
    """The DNS label for a Version or Host value: dots become ``-``, lower case."""
    raise NotImplementedError


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

    def labels(self) -> tuple[str, str, str, str, str, str]:
        """Lower-cased labels in `POSITIONS` order (uuid, host, ... environment)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Log/snapshot encoding (round-trips through `from_dict`)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Service":
        """Inverse of `to_dict` (trusted input from our own log)."""
        raise NotImplementedError


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
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Callback":
        raise NotImplementedError

    def matches(self, service: Service) -> bool:
        """Whether this callback watches ``service``."""
        raise NotImplementedError


@frozen
class Pattern:
    """A parsed query: each position is a lower-cased label, or None for "any"."""

    uuid: Optional[str] = None
    host: Optional[str] = None
    version: Optional[str] = None
    region: Optional[str] = None
    name: Optional[str] = None
    environment: Optional[str] = None

    def matches(self, service: Service) -> bool:
        raise NotImplementedError

    def without_region(self) -> "Pattern":
        """The same pattern with the region position set to any (for failover)."""
        raise NotImplementedError


def parse_pattern(labels: "list[str] | tuple[str, ...]") -> Pattern:
    """Labels left of the domain (most specific first) to a `Pattern`.

    Fewer than six labels are padded on the left with wildcards.  More than
    six raise `PatternError` (the DNS side answers NXDOMAIN).
    """
    raise NotImplementedError


def parse_query(query: str, domain: str) -> Pattern:
    """An HTTP ``?query=`` value (``rails.production``, with or without the
    domain suffix) to a `Pattern`; `PatternError` if it cannot be one."""
    raise NotImplementedError


def parse_service(uuid: str, body: bytes) -> Service:
    """Validate a PUT body (JSON whatever the content type; keys matched
    case-insensitively; unknown keys ignored).  `ValidationError` names the
    first bad field."""
    raise NotImplementedError


def parse_callback(uuid: str, body: bytes) -> Callback:
    """Validate a PUT /skydns/callbacks/{uuid} body."""
    raise NotImplementedError


def parse_ttl(body: bytes) -> int:
    """Validate a PATCH body ``{"TTL": n}``; return n."""
    raise NotImplementedError
