"""Every JSON text SkyDNS writes by hand, in one place.

Some JSON is written on every write's path (a Register in the Raft log), for
every instance of a snapshot, or for every log line; there the general
encoder costs several times what writing the text directly does.  Each
writer here gives exactly the text its docstring names (``json.dumps`` with
``separators=(",", ":")``, ASCII only, and sorted keys where it says so);
tests/test_jsontext.py holds them to it with one property test.  Anything
else is written by the standard encoder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii
from typing import Any, Callable

from skydns.names import Callback, Service

#: A string as a JSON string literal, ASCII only (what ``json.dumps`` writes).
quote: Callable[[str], str] = encode_basestring_ascii

#: ``json.dumps(value, sort_keys=True, separators=(",", ":"))``.
SORTED = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
#: ``json.dumps(value, separators=(",", ":"))``.
COMPACT = json.JSONEncoder(separators=(",", ":"))


def service_json(service: Service) -> str:
    """``SORTED.encode(service.to_dict())``: how the log and snapshots store
    a service."""
    numbers = (service.port, service.ttl, service.priority, service.weight)
    if any(n is not None and type(n) is not int for n in numbers):
        return SORTED.encode(service.to_dict())  # not what parsing makes
    parts = [
        '{"drain":true,"environment":' if service.drain else '{"environment":',
        quote(service.environment),
        ',"host":', quote(service.host),
        ',"lease":' + quote(service.lease) if service.lease else "",
        ',"name":', quote(service.name),
        ',"no_expire":true' if service.no_expire else "",
        ',"port":', str(service.port),
    ]  # fmt: skip
    if service.priority is not None:
        parts += [',"priority":', str(service.priority)]
    if service.protocol != "tcp":
        parts += [',"protocol":', quote(service.protocol)]
    parts += [
        ',"region":', quote(service.region),
        ',"ttl":', str(service.ttl),
        ',"uuid":', quote(service.uuid),
        ',"version":', quote(service.version),
    ]  # fmt: skip
    if service.weight is not None:
        parts += [',"weight":', str(service.weight)]
    parts.append("}")
    return "".join(parts)


def register_json(now: float, service: Service) -> str | None:
    """``SORTED.encode({"now": now, "op": "register", "service": ...})``, or
    None when ``now`` is not a finite float (the general encoder's case)."""
    if type(now) is not float or not math.isfinite(now):
        return None
    return '{"now":' + repr(now) + ',"op":"register","service":' + service_json(service) + "}"


#: `instance_json` of an instance with no callbacks whose service has no
#: priority, weight, NoExpire, Drain, Lease or Protocol other than tcp (``%r`` of
#: a finite float is its JSON).
_PLAIN_INSTANCE = (
    '{"callbacks":[],"expires":%r,"service":{"environment":%s,"host":%s,"name":%s,'
    '"port":%d,"region":%s,"ttl":%d,"uuid":%s,"version":%s}}'
)


def instance_json(service: Service, expires: float, callbacks: tuple[Callback, ...]) -> str:
    """``SORTED.encode({"callbacks": [...], "expires": expires, "service":
    ...})``: one instance of a registry snapshot."""
    if (
        not callbacks
        and type(expires) is float
        and type(service.port) is int
        and type(service.ttl) is int
        and service.priority is None
        and service.weight is None
        and not service.no_expire
        and service.protocol == "tcp"
        and not service.drain
        and not service.lease
        and math.isfinite(expires)
    ):
        # most instances: one format, a third cheaper than the general path
        return _PLAIN_INSTANCE % (
            expires, quote(service.environment), quote(service.host), quote(service.name),
            service.port, quote(service.region), service.ttl, quote(service.uuid),
            quote(service.version),
        )  # fmt: skip
    if type(expires) is not float or not math.isfinite(expires):
        # not what the registry makes: the general encoder says it as it would
        body = {"service": service.to_dict(), "expires": expires,
                "callbacks": [cb.to_dict() for cb in callbacks]}  # fmt: skip
        return SORTED.encode(body)
    callbacks_json = SORTED.encode([cb.to_dict() for cb in callbacks]) if callbacks else "[]"
    return (
        '{"callbacks":' + callbacks_json + ',"expires":' + repr(expires)
        + ',"service":' + service_json(service) + "}"
    )  # fmt: skip


_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """``value`` if JSON can carry it as it is, else its repr."""
    if type(value) in _SCALARS:
        return value
    try:
        COMPACT.encode(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def value_json(value: Any) -> str:
    """``COMPACT.encode(plain(value))``, the common scalars without the encoder."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return COMPACT.encode(plain(value))


#: Key -> ``"key":`` (bounded: the same few keys come again and again).
_KEYS: dict[str, str] = {}


def object_json(items: Iterable[tuple[str, Any]]) -> str:
    """``COMPACT.encode({key: plain(value), ...})`` of ``items`` in their
    order (their keys distinct): one JSON log line's object."""
    parts = []
    keys = _KEYS
    for key, value in items:
        prefix = keys.get(key)
        if prefix is None:
            prefix = encode_basestring_ascii(key) + ":"
            if len(keys) < 4096:
                keys[key] = prefix
        parts.append(prefix + value_json(value))
    return "{" + ",".join(parts) + "}"
