"""Service records, their validation, and the DNS name grammar (SPEC.md §1).

Names have the fixed layout, most specific on the left::

    [<uuid>.]<host>.<version>.<region>.<name>.<environment>.<domain>

Dots inside Version and Host are written as ``-`` in their label (and so are
the colons of an IPv6 literal: ``2001:db8::1`` → ``2001-db8--1``).  A query
may leave out labels on the left; ``*`` and ``any`` are wildcards anywhere.

Validation choices where SPEC.md is silent (documented for users in docs/):

- Host and Port are required (as in SkyDNS 1).  Name, Environment, Region and
  Version may be absent or empty: such an instance matches only a wildcard in
  that position.  A non-empty value must fit one DNS label.
- A label is 1–63 ASCII letters, digits, ``-`` or ``_``.  Version may also
  hold dots; Host is a host name (dot-separated labels, one trailing dot
  dropped) or an IPv4/IPv6 literal.  Their encoded label must fit 63 chars.
- TTL defaults to `DEFAULT_TTL` when absent; otherwise 1 ≤ TTL ≤ 2**31 - 1
  (RFC 2181 §8).  Priority and Weight are optional, 0–65535.
- Wrong JSON types (a string, a float or a boolean where an integer is due)
  are refused; ``null`` counts as absent.  When a key appears twice
  (case-insensitively) the last one wins, as in Go's ``encoding/json``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from typing import Any, Callable, Optional

from attrs import frozen

#: Label positions, left to right, of a fully specified instance name.
POSITIONS = ("uuid", "host", "version", "region", "name", "environment")
WILDCARDS = frozenset({"*", "any"})

#: Lease length when a registration gives no TTL.
DEFAULT_TTL = 3600
#: Longest TTL a DNS record may carry (RFC 2181 §8).
MAX_TTL = 2**31 - 1
MAX_LABEL = 63

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}\Z")
_DOTTED = re.compile(r"[A-Za-z0-9_.-]{1,63}\Z")
#: A host name label: no leading or trailing '-' (RFC 952, RFC 1123 §2.1).
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


class ValidationError(ValueError):
    """A registration body or field is invalid.  ``field`` names it (or "body")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PatternError(ValueError):
    """A DNS-style query pattern cannot be parsed (too many labels, bad label)."""


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


#: JSON as the log and snapshots store it: sorted keys, compact, ASCII.
_SORTED_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
#: A string as a JSON string literal, ASCII only (what ``json.dumps`` writes).
json_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


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
        return data

    def to_json(self) -> str:
        """``to_dict()`` as compact ASCII JSON with sorted keys (as the log
        and snapshots store it), written directly: it is on every write's
        path, where the general encoder costs several times as much."""
        numbers = (self.port, self.ttl, self.priority, self.weight)
        if any(n is not None and type(n) is not int for n in numbers):
            return _SORTED_ENCODER.encode(self.to_dict())  # not what parsing makes
        parts = [
            '{"environment":', json_quote(self.environment),
            ',"host":', json_quote(self.host),
            ',"name":', json_quote(self.name),
            ',"no_expire":true' if self.no_expire else "",
            ',"port":', str(self.port),
        ]  # fmt: skip
        if self.priority is not None:
            parts += [',"priority":', str(self.priority)]
        parts += [
            ',"region":', json_quote(self.region),
            ',"ttl":', str(self.ttl),
            ',"uuid":', json_quote(self.uuid),
            ',"version":', json_quote(self.version),
        ]  # fmt: skip
        if self.weight is not None:
            parts += [',"weight":', str(self.weight)]
        parts.append("}")
        return "".join(parts)

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


@frozen
class Pattern:
    """A parsed query: each position is a lower-cased label, or None for "any"."""

    uuid: Optional[str] = None
    host: Optional[str] = None
    version: Optional[str] = None
    region: Optional[str] = None
    name: Optional[str] = None
    environment: Optional[str] = None

    def labels(self) -> tuple[Optional[str], ...]:
        """The positions in `POSITIONS` order."""
        return (self.uuid, self.host, self.version, self.region, self.name, self.environment)

    def matches(self, service: Service) -> bool:
        return all(
            want is None or want == have
            for want, have in zip(self.labels(), service.labels(), strict=True)
        )

    def without_region(self) -> Pattern:
        """The same pattern with the region position set to any (for failover)."""
        return Pattern(
            uuid=self.uuid,
            host=self.host,
            version=self.version,
            region=None,
            name=self.name,
            environment=self.environment,
        )


def parse_pattern(labels: list[str] | tuple[str, ...]) -> Pattern:
    """Labels left of the domain (most specific first) to a `Pattern`.

    Fewer than six labels are padded on the left with wildcards.  More than
    six raise `PatternError` (the DNS side answers NXDOMAIN), and so does an
    empty label or one longer than 63 characters.
    """
    if len(labels) > len(POSITIONS):
        raise PatternError(
            f"too many labels: {len(labels)} (at most {len(POSITIONS)} before the domain)"
        )
    values: list[Optional[str]] = [None] * (len(POSITIONS) - len(labels))
    for label in labels:
        if not label:
            raise PatternError("empty label")
        if len(label) > MAX_LABEL:
            raise PatternError(f"label longer than {MAX_LABEL} characters")
        lowered = label.lower()
        values.append(None if lowered in WILDCARDS else lowered)
    return Pattern(*values)


def parse_query(query: str, domain: str) -> Pattern:
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
    return parse_pattern(text.split("."))


# -- JSON bodies ----------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_BOM = b"\xef\xbb\xbf"

#: One decoder for every body (``json.loads`` with an option builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _load_object(body: bytes) -> dict[str, Any]:
    """A JSON object with lower-cased keys; `ValidationError` for "body"."""
    # What the "utf-8-sig" codec does (drop one leading BOM, decode UTF-8),
    # without going through its pure-Python codec on every request.
    if body[:3] == _BOM:
        body = body[3:]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("body", "is not UTF-8 text") from None
    try:
        data = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise ValidationError("body", "is not valid JSON") from None
    if type(data) is not dict:
        raise ValidationError("body", "must be a JSON object")
    return {key.lower(): value for key, value in data.items()}


# The JSON decoder gives exactly str, int, bool, ...: ``type(v) is int`` is
# ``isinstance(v, int) and not isinstance(v, bool)``, and cheaper.


def _integer(data: dict[str, Any], key: str, field: str, low: int, high: int) -> Optional[int]:
    """``data[key]`` (a lower-cased key) as an integer in [low, high], None if absent."""
    value = data.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(field, f"must be an integer from {low} to {high}")
    return value


def _required_integer(data: dict[str, Any], key: str, field: str, low: int, high: int) -> int:
    value = _integer(data, key, field, low, high)
    if value is None:
        raise ValidationError(field, "is required")
    return value


def _string(data: dict[str, Any], key: str, field: str) -> str:
    """``data[key]`` (a lower-cased key) as a string, "" if absent."""
    value = data.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise ValidationError(field, "must be a string")
    return value


def _check_label(field: str, value: str) -> str:
    if not _LABEL.match(value):
        raise ValidationError(
            field, "must be one DNS label: 1-63 letters, digits, '-' or '_' (no dots)"
        )
    return value


def _check_version(field: str, value: str) -> str:
    if not _DOTTED.match(value):
        raise ValidationError(
            field, "must be 1-63 letters, digits, '-', '_' or '.' (dots become '-')"
        )
    return value


def _check_host(field: str, value: str) -> str:
    """A host name or IP literal whose encoded label fits 63 characters."""
    if is_ip(value):
        if "%" in value:
            raise ValidationError(field, "must not carry an IPv6 zone")
        host = value
    else:
        host = value[:-1] if value.endswith(".") else value
        parts = host.split(".")
        if not host or not all(_HOST_LABEL.match(part) for part in parts):
            raise ValidationError(
                field,
                "must be a host name (letters, digits, '-', '_' and dots; no label "
                "starting or ending with '-') or an IP address",
            )
    if len(encode_label(host)) > MAX_LABEL:
        raise ValidationError(field, f"its label ({encode_label(host)}) is longer than 63 chars")
    return host


def _optional(
    data: dict[str, Any], key: str, field: str, check: Callable[[str, str], object]
) -> str:
    """The string at ``key`` ("" if absent), checked by ``check`` unless empty."""
    value = _string(data, key, field)
    if value:
        check(field, value)
    return value


def parse_service(uuid: str, body: bytes) -> Service:
    """Validate a PUT body (JSON whatever the content type; keys matched
    case-insensitively; unknown keys ignored).  `ValidationError` names the
    first bad field."""
    _check_label("UUID", uuid)
    data = _load_object(body)
    host = _string(data, "host", "Host")
    if not host:
        raise ValidationError("Host", "is required")
    host = _check_host("Host", host)
    port = _required_integer(data, "port", "Port", 1, 65535)
    # Name, Environment, Region and Version may be empty; checked in this order.
    name = _optional(data, "name", "Name", _check_label)
    environment = _optional(data, "environment", "Environment", _check_label)
    region = _optional(data, "region", "Region", _check_label)
    version = _optional(data, "version", "Version", _check_version)
    ttl = _integer(data, "ttl", "TTL", 1, MAX_TTL)
    priority = _integer(data, "priority", "Priority", 0, 65535)
    weight = _integer(data, "weight", "Weight", 0, 65535)
    no_expire = data.get("noexpire")
    if no_expire is None:
        no_expire = False
    elif type(no_expire) is not bool:
        raise ValidationError("NoExpire", "must be true or false")
    return Service(
        uuid=uuid,
        name=name,
        environment=environment,
        region=region,
        version=version,
        host=host,
        port=port,
        ttl=DEFAULT_TTL if ttl is None else ttl,
        priority=priority,
        weight=weight,
        no_expire=no_expire,
    )


def parse_callback(uuid: str, body: bytes) -> Callback:
    """Validate a PUT /skydns/callbacks/{uuid} body.

    Reply (a host name or IP address) and Port are required; the match
    fields (Name, Environment, Region, Version, Host) are optional and may be
    ``*`` or ``any``.
    """
    _check_label("UUID", uuid)
    data = _load_object(body)
    reply = _string(data, "reply", "Reply")
    if not reply:
        raise ValidationError("Reply", "is required")
    reply = _check_host("Reply", reply)
    port = _required_integer(data, "port", "Port", 1, 65535)

    def match(field: str, check: Callable[[str, str], str]) -> str:
        value = _string(data, field.lower(), field)
        if not value or value.lower() in WILDCARDS:
            return value
        return check(field, value)

    return Callback(
        uuid=uuid,
        name=match("Name", _check_label),
        environment=match("Environment", _check_label),
        region=match("Region", _check_label),
        version=match("Version", _check_version),
        host=match("Host", _check_host),
        reply=reply,
        port=port,
    )


def parse_ttl(body: bytes) -> int:
    """Validate a PATCH body ``{"TTL": n}``; return n."""
    ttl = _integer(_load_object(body), "ttl", "TTL", 1, MAX_TTL)
    if ttl is None:
        raise ValidationError("TTL", "is required")
    return ttl


