"""Where ``--store etcd`` keeps the registry in etcd, and how each value is
written: one key per instance and per lease under the prefix, readable by
anyone with ``etcdctl get --prefix /skydns/``.

- ``<prefix>services/<uuid>``: the instance (`Service.to_dict`) and the
  callbacks attached to it.  Attached to an etcd lease unless NoExpire:
  its SkyDNS lease's, or one of its own TTL.
- ``<prefix>leases/<id>``: a SkyDNS lease (its TTL), attached to the etcd
  lease with the same ID (the 16 hex digits read as a number).
- ``<prefix>written``: rewritten by every write, so that a reader can learn
  the revision of the last write with one read (the read barrier).
- ``<prefix>leader``: the election key of the node that sends callbacks.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from attrs import frozen

from skydns.commands import callback_from_json, service_from_json
from skydns.names import Callback, Service

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


class BadValue(ValueError):
    """A key under the prefix whose value SkyDNS cannot read."""


@frozen
class Layout:
    """The keys under ``prefix`` (bytes, e.g. ``b"/skydns/"``)."""

    prefix: bytes

    @property
    def services(self) -> bytes:
        return self.prefix + b"services/"

    @property
    def leases(self) -> bytes:
        return self.prefix + b"leases/"

    @property
    def written(self) -> bytes:
        return self.prefix + b"written"

    @property
    def leader(self) -> bytes:
        return self.prefix + b"leader"

    def service_key(self, uuid: str) -> bytes:
        return self.services + uuid.lower().encode("utf-8")

    def lease_key(self, lease_id: str) -> bytes:
        return self.leases + lease_id.encode("ascii")

    def parse(self, key: bytes) -> Optional[tuple[str, str]]:
        """``("service", uuid)`` or ``("lease", id)`` for a key of ours;
        None for any other key under the prefix."""
        for kind, start in (("service", self.services), ("lease", self.leases)):
            if key.startswith(start):
                try:
                    return kind, key[len(start):].decode("utf-8")
                except UnicodeDecodeError:
                    return None
        return None


def encode_service(service: Service, callbacks: tuple[Callback, ...] = ()) -> bytes:
    body: dict[str, Any] = {"service": service.to_dict()}
    if callbacks:
        body["callbacks"] = [c.to_dict() for c in callbacks]
    return _ENCODER.encode(body).encode("utf-8")


def decode_service(value: bytes) -> tuple[Service, tuple[Callback, ...]]:
    """The instance and callbacks `encode_service` wrote; `BadValue` otherwise."""
    try:
        body = json.loads(value)
        service = service_from_json(body["service"])
        callbacks = tuple(callback_from_json(c) for c in body.get("callbacks", []))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadValue(f"not an instance: {e}") from e
    return service, callbacks


def encode_lease(ttl: int) -> bytes:
    return _ENCODER.encode({"TTL": ttl}).encode("ascii")


def decode_lease(value: bytes) -> int:
    """The TTL `encode_lease` wrote; `BadValue` otherwise."""
    try:
        ttl = json.loads(value)["TTL"]
    except (ValueError, KeyError, TypeError) as e:
        raise BadValue(f"not a lease: {e}") from e
    if type(ttl) is not int or ttl <= 0:
        raise BadValue("not a lease: TTL must be a positive whole number")
    return ttl


def lease_number(lease_id: str) -> int:
    """The etcd lease ID of a SkyDNS lease ID; 0 if it cannot be one (etcd's
    IDs are positive 63-bit numbers)."""
    try:
        number = int(lease_id, 16)
    except ValueError:
        return 0
    return number if 0 < number < 2**63 else 0
