"""The JSON bodies of the HTTP API, parsed and validated into the service
model (SPEC.md §2): a bad body is a `ValidationError` naming its field.

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

import re
from typing import Any, Callable, Optional

from skydns import jsoninput
from skydns.names import (
    DEFAULT_TTL,
    MAX_LABEL,
    MAX_TTL,
    PROTOCOLS,
    WILDCARDS,
    Callback,
    Service,
    encode_label,
    is_ip,
)

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}\Z")
_DOTTED = re.compile(r"[A-Za-z0-9_.-]{1,63}\Z")
#: A lease ID as `new_lease_id` makes it (SPEC.md §7).
_LEASE_ID = re.compile(r"[0-9a-f]{16}\Z")
#: A host name label: no leading or trailing '-' (RFC 952, RFC 1123 §2.1).
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


class ValidationError(ValueError):
    """A registration body or field is invalid.  ``field`` names it (or "body")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_BOM = b"\xef\xbb\xbf"



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
        data = jsoninput.loads(text)
    except ValueError:
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
        no_expire=_flag(data, "noexpire", "NoExpire"),
        protocol=_protocol(data),
        drain=_flag(data, "drain", "Drain"),
        lease=_lease(data),
    )


def _lease(data: dict[str, Any]) -> str:
    """Lease: the ID of a lease the instance lives by, or "" (its own TTL)."""
    lease = _string(data, "lease", "Lease")
    if lease:
        check_lease_id(lease)
        if data.get("noexpire") is True:
            raise ValidationError("Lease", "cannot be given with NoExpire")
    return lease


def check_lease_id(lease: object) -> None:
    """Raise `ValidationError` unless ``lease`` is a lease ID (16 hex digits)."""
    if type(lease) is not str or not _LEASE_ID.match(lease):
        raise ValidationError("Lease", "must be a lease ID (16 lower-case hex digits)")


def _flag(data: dict[str, Any], key: str, field: str) -> bool:
    """``data[key]`` (a lower-cased key) as a boolean, False if absent."""
    value = data.get(key)
    if value is None:
        return False
    if type(value) is not bool:
        raise ValidationError(field, "must be true or false")
    return value


def _protocol(data: dict[str, Any]) -> str:
    """Protocol: ``tcp`` (the default) or ``udp``, in any case."""
    value = _string(data, "protocol", "Protocol").lower() or "tcp"
    if value not in PROTOCOLS:
        raise ValidationError("Protocol", "must be tcp or udp")
    return value


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
    """Validate a body ``{"TTL": n}`` (n ≥ 1: a renewal, a lease grant); return n."""
    ttl = _integer(_load_object(body), "ttl", "TTL", 1, MAX_TTL)
    if ttl is None:
        raise ValidationError("TTL", "is required")
    return ttl


def parse_patch(body: bytes) -> tuple[Optional[int], Optional[bool]]:
    """Validate a PATCH body: ``{"TTL": n}`` renews (0 expires the instance
    now, as SkyDNS 1 did), ``{"Drain": b}`` drains or undrains; either or
    both.  Returns ``(ttl or None, drain or None)``."""
    data = _load_object(body)
    ttl = _integer(data, "ttl", "TTL", 0, MAX_TTL)
    drain = data.get("drain")
    if drain is not None and type(drain) is not bool:
        raise ValidationError("Drain", "must be true or false")
    if ttl is None and drain is None:
        raise ValidationError("TTL", "is required (or Drain)")
    return ttl, drain




# -- the same rules for what the Raft log carries -------------------------------


def _in_range(field: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:  # type: ignore[operator]
        raise ValidationError(field, f"must be an integer from {low} to {high}")


def check_service(service: Service) -> None:
    """Raise `ValidationError` unless ``service`` is what `parse_service`
    could have made: a log entry is held to the API's own rules, so no
    entry (forwarded by anyone) holds what a PUT could not."""
    _check_label("UUID", service.uuid)
    if not service.host or _check_host("Host", service.host) != service.host:
        raise ValidationError("Host", "is not a host name or IP address as the API keeps it")
    _in_range("Port", service.port, 1, 65535)
    for field, value, check in (
        ("Name", service.name, _check_label),
        ("Environment", service.environment, _check_label),
        ("Region", service.region, _check_label),
        ("Version", service.version, _check_version),
    ):
        if value:
            check(field, value)
    _in_range("TTL", service.ttl, 1, MAX_TTL)
    for field, number in (("Priority", service.priority), ("Weight", service.weight)):
        if number is not None:
            _in_range(field, number, 0, 65535)
    if type(service.no_expire) is not bool:
        raise ValidationError("NoExpire", "must be true or false")
    if type(service.drain) is not bool:
        raise ValidationError("Drain", "must be true or false")
    if service.protocol not in PROTOCOLS:
        raise ValidationError("Protocol", "must be tcp or udp")
    if service.lease:
        check_lease_id(service.lease)
        if service.no_expire:
            raise ValidationError("Lease", "cannot be given with NoExpire")


def check_callback(callback: Callback) -> None:
    """Raise `ValidationError` unless `parse_callback` could have made ``callback``."""
    _check_label("UUID", callback.uuid)
    if not callback.reply or _check_host("Reply", callback.reply) != callback.reply:
        raise ValidationError("Reply", "is not a host name or IP address")
    _in_range("Port", callback.port, 1, 65535)
    for field, value, check in (
        ("Name", callback.name, _check_label),
        ("Environment", callback.environment, _check_label),
        ("Region", callback.region, _check_label),
        ("Version", callback.version, _check_version),
        ("Host", callback.host, _check_host),
    ):
        if value and value.lower() not in WILDCARDS:
            check(field, value)


def check_ttl(ttl: object) -> None:
    """Raise `ValidationError` unless ``ttl`` is a TTL a PATCH could carry."""
    _in_range("TTL", ttl, 1, MAX_TTL)


#: The longest UUID a lookup by UUID (DELETE, PATCH) may carry in the log.
MAX_UUID_KEY = 1024


def check_uuid(uuid: object) -> None:
    """Raise `ValidationError` unless ``uuid`` is a string a DELETE or PATCH
    could name (any text, bounded: it only looks an instance up)."""
    if type(uuid) is not str or len(uuid) > MAX_UUID_KEY:
        raise ValidationError("UUID", f"must be a string of at most {MAX_UUID_KEY} characters")
