"""The commands the registry state machine applies, and their byte encoding.

Every change to the registry is one of these values.  They travel through the
Raft log as bytes (``encode``/``decode``), so they carry everything the
registry needs to apply them deterministically, including the time (``now``)
chosen by the node that proposed them: no node consults its own clock while
applying.
"""

from __future__ import annotations

import json
from typing import Any, Union

from attrs import frozen

from skydns import jsoninput
from skydns.bodies import (
    ValidationError,
    check_callback,
    check_lease_id,
    check_service,
    check_ttl,
    check_uuid,
)
from skydns.jsontext import register_json
from skydns.names import Callback, Service


@frozen
class Register:
    """Add a new instance; refused (``conflict``) if the UUID exists."""

    service: Service
    now: float


@frozen
class Unregister:
    """Remove an instance; ``not_found`` if absent."""

    uuid: str
    now: float


@frozen
class Renew:
    """Renew an instance's lease for ``ttl`` seconds from ``now``."""

    uuid: str
    ttl: int
    now: float


@frozen
class Drain:
    """Leave an instance out of DNS answers (``drain`` true) or put it back;
    it stays registered and its lease runs on."""

    uuid: str
    drain: bool
    now: float


@frozen
class Expire:
    """Remove the listed instances whose lease has run out at ``now``.

    Proposed by the leader; an instance renewed since (its lease now ends after
    ``now``) is left alone.
    """

    uuids: tuple[str, ...]
    now: float


@frozen
class GrantLease:
    """Create a lease of ``ttl`` seconds from ``now`` (SPEC.md §7);
    ``conflict`` if a live lease has this ID."""

    lease: str
    ttl: int
    now: float


@frozen
class RevokeLease:
    """End the listed leases and remove every instance that lives by them.

    ``lapsed`` is the leader's expiry: only a lease whose time has run out at
    ``now`` goes (one extended since stays).  Otherwise it is a client's
    DELETE of one lease, ``not_found`` if it is gone.
    """

    leases: tuple[str, ...]
    now: float
    lapsed: bool = False


@frozen
class Checkpoint:
    """The leader's record of renewals it took without a log entry each:
    each listed lease, and each listed instance living by its own TTL, now
    ends no earlier than the time beside it.  Ends only move later; a lease
    or instance no longer held (revoked, expired) is left alone."""

    leases: tuple[tuple[str, float], ...]
    instances: tuple[tuple[str, float], ...]
    now: float


@frozen
class AddCallback:
    """Attach a callback to every current instance the callback matches."""

    callback: Callback
    now: float


Command = Union[
    Register, Unregister, Renew, Drain, Expire, AddCallback, GrantLease, RevokeLease, Checkpoint
]


#: One encoder for every command (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


class CommandDecodeError(ValueError):
    """The bytes are not an encoded command."""


def encode(command: Command) -> bytes:
    """Encode a command as compact, deterministic JSON bytes (sorted keys)."""
    if type(command) is Register:
        # Every write proposes one: written directly, as `_ENCODER` would.
        text = register_json(command.now, command.service)
        if text is not None:
            return text.encode("ascii")
    body: dict[str, Any]
    if isinstance(command, Register):
        body = {"op": "register", "service": command.service.to_dict()}
    elif isinstance(command, Unregister):
        body = {"op": "unregister", "uuid": command.uuid}
    elif isinstance(command, Renew):
        body = {"op": "renew", "uuid": command.uuid, "ttl": command.ttl}
    elif isinstance(command, Drain):
        body = {"op": "drain", "uuid": command.uuid, "drain": command.drain}
    elif isinstance(command, Expire):
        body = {"op": "expire", "uuids": list(command.uuids)}
    elif isinstance(command, AddCallback):
        body = {"op": "callback", "callback": command.callback.to_dict()}
    elif isinstance(command, GrantLease):
        body = {"op": "grant", "lease": command.lease, "ttl": command.ttl}
    elif isinstance(command, RevokeLease):
        body = {"op": "revoke", "leases": list(command.leases), "lapsed": command.lapsed}
    elif isinstance(command, Checkpoint):
        body = {"op": "checkpoint", "leases": [list(e) for e in command.leases],
                "instances": [list(e) for e in command.instances]}  # fmt: skip
    else:  # pragma: no cover - the Union is closed
        raise TypeError(f"not a command: {command!r}")
    body["now"] = command.now
    return _ENCODER.encode(body).encode("utf-8")


#: The latest time a command may carry (year 5138): beyond it, or not a
#: finite number, the entry is invalid.
MAX_NOW = 1e11
#: The most UUIDs one Expire may list.
MAX_EXPIRE = 100_000


#: The fields of each op, as `encode` writes them.
_FIELDS = {
    "register": {"op", "now", "service"},
    "unregister": {"op", "now", "uuid"},
    "renew": {"op", "now", "uuid", "ttl"},
    "drain": {"op", "now", "uuid", "drain"},
    "expire": {"op", "now", "uuids"},
    "callback": {"op", "now", "callback"},
    "grant": {"op", "now", "lease", "ttl"},
    "revoke": {"op", "now", "leases", "lapsed"},
    "checkpoint": {"op", "now", "leases", "instances"},
}
_SERVICE_FIELDS = frozenset(
    {"uuid", "name", "environment", "region", "version", "host", "port", "ttl", "priority",
     "weight", "no_expire", "protocol", "drain", "lease"}
)  # fmt: skip
_CALLBACK_FIELDS = frozenset(
    {"uuid", "name", "environment", "region", "version", "host", "reply", "port"}
)


def _object(value: Any, fields: frozenset[str] | set[str], what: str) -> dict[str, Any]:
    if type(value) is not dict or not set(value) <= fields:
        raise ValueError(f"{what}: not an object of the known fields")
    return value


def _strings(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in names:
        value = data[name]
        if type(value) is not str:
            raise ValueError(f"{name}: not a string")
        out[name] = value
    return out


def decode(data: bytes) -> Command:
    """Decode bytes made by `encode`; raise `CommandDecodeError` otherwise,
    and for any command a request to the API could not have made (numbers
    out of range or not finite, unknown fields, values the API refuses):
    such an entry, wherever it came from, is applied as a no-op."""
    try:
        body = _object(jsoninput.loads(data), set().union(*_FIELDS.values()),
                       "command")  # fmt: skip
        op = body.get("op")
        if op not in _FIELDS or set(body) != _FIELDS[op]:
            raise ValueError(f"unknown command op {op!r} or fields {sorted(body)}")
        now = body["now"]
        if type(now) not in (int, float) or not 0 <= now <= MAX_NOW:
            raise ValueError(f"now: {now!r} is not a time")
        now = float(now)
        command: Command
        if op == "register":
            command = Register(service_from_json(body["service"]), now)
        elif op == "unregister":
            check_uuid(body["uuid"])
            command = Unregister(body["uuid"], now)
        elif op == "renew":
            check_uuid(body["uuid"])
            check_ttl(body["ttl"])
            command = Renew(body["uuid"], body["ttl"], now)
        elif op == "drain":
            check_uuid(body["uuid"])
            if type(body["drain"]) is not bool:
                raise ValueError("drain: not true or false")
            command = Drain(body["uuid"], body["drain"], now)
        elif op == "expire":
            uuids = body["uuids"]
            if type(uuids) is not list or len(uuids) > MAX_EXPIRE:
                raise ValueError(f"uuids: not a list of at most {MAX_EXPIRE}")
            for uuid in uuids:
                check_uuid(uuid)
            command = Expire(tuple(uuids), now)
        elif op == "grant":
            check_lease_id(body["lease"])
            check_ttl(body["ttl"])
            command = GrantLease(body["lease"], body["ttl"], now)
        elif op == "revoke":
            leases = _list(body["leases"], "leases")
            for lease in leases:
                check_lease_id(lease)
            if type(body["lapsed"]) is not bool:
                raise ValueError("lapsed: not true or false")
            command = RevokeLease(tuple(leases), now, body["lapsed"])
        elif op == "checkpoint":
            command = Checkpoint(
                _ends(body["leases"], check_lease_id), _ends(body["instances"], check_uuid), now
            )
        else:
            command = AddCallback(callback_from_json(body["callback"]), now)
    except ValidationError as e:
        raise CommandDecodeError(f"invalid command: {e}") from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CommandDecodeError(f"undecodable command: {e}") from e
    return command


def _list(value: Any, what: str) -> list[Any]:
    if type(value) is not list or len(value) > MAX_EXPIRE:
        raise ValueError(f"{what}: not a list of at most {MAX_EXPIRE}")
    return value


def _ends(value: Any, check: Any) -> tuple[tuple[str, float], ...]:
    """A Checkpoint's ``[[key, end], ...]``, each key checked by ``check``."""
    ends = []
    for item in _list(value, "checkpoint"):
        if type(item) is not list or len(item) != 2:
            raise ValueError("checkpoint: not [key, end] pairs")
        key, end = item
        check(key)
        if type(end) not in (int, float) or not 0 <= end <= MAX_NOW:
            raise ValueError(f"checkpoint: {end!r} is not a time")
        ends.append((key, float(end)))
    return tuple(ends)


def service_from_json(value: Any) -> Service:
    """A `Service` from its `Service.to_dict` form; ValueError (a
    `CommandDecodeError` or `ValidationError`) for anything else."""
    data = _object(value, _SERVICE_FIELDS, "service")
    texts = _strings(data, ("uuid", "name", "environment", "region", "version", "host"))
    service = Service(
        **texts, port=data["port"], ttl=data["ttl"], priority=data.get("priority"),
        weight=data.get("weight"), no_expire=data.get("no_expire", False),
        protocol=data.get("protocol", "tcp"), drain=data.get("drain", False),
        lease=data.get("lease", ""),
    )  # fmt: skip
    check_service(service)
    return service


def callback_from_json(value: Any) -> Callback:
    """A `Callback` from its `Callback.to_dict` form; ValueError otherwise."""
    data = _object(value, _CALLBACK_FIELDS, "callback")
    texts = _strings(data, ("uuid", "name", "environment", "region", "version", "host", "reply"))
    callback = Callback(**texts, port=data["port"])
    check_callback(callback)
    return callback
