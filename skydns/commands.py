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
class Expire:
    """Remove the listed instances whose lease has run out at ``now``.

    Proposed by the leader; an instance renewed since (its lease now ends after
    ``now``) is left alone.
    """

    uuids: tuple[str, ...]
    now: float


@frozen
class AddCallback:
    """Attach a callback to every current instance the callback matches."""

    callback: Callback
    now: float


Command = Union[Register, Unregister, Renew, Expire, AddCallback]


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
    elif isinstance(command, Expire):
        body = {"op": "expire", "uuids": list(command.uuids)}
    elif isinstance(command, AddCallback):
        body = {"op": "callback", "callback": command.callback.to_dict()}
    else:  # pragma: no cover - the Union is closed
        raise TypeError(f"not a command: {command!r}")
    body["now"] = command.now
    return _ENCODER.encode(body).encode("utf-8")


def decode(data: bytes) -> Command:
    """Decode bytes made by `encode`; raise `CommandDecodeError` otherwise."""
    try:
        body = json.loads(data.decode("utf-8"))
        op = body["op"]
        now = float(body["now"])
        if op == "register":
            return Register(Service.from_dict(body["service"]), now)
        if op == "unregister":
            return Unregister(str(body["uuid"]), now)
        if op == "renew":
            return Renew(str(body["uuid"]), int(body["ttl"]), now)
        if op == "expire":
            return Expire(tuple(str(u) for u in body["uuids"]), now)
        if op == "callback":
            return AddCallback(Callback.from_dict(body["callback"]), now)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CommandDecodeError(f"undecodable command: {e}") from e
    raise CommandDecodeError(f"unknown command op {op!r}")
