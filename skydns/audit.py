"""The registry change log: one structured line per change to this node's
replica.

`RegistryLog.on_applied` is an apply listener
(``cluster.add_apply_listener(RegistryLog().on_applied)``): registrations,
removals, expirations and new callbacks are logged at info level with the
instance's fields as structured event keys; renewals and commands that
changed nothing at debug.  Nothing here logs per DNS query.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from twisted.logger import Logger, LogLevel

from skydns.commands import (
    AddCallback,
    Checkpoint,
    Command,
    Drain,
    Expire,
    GrantLease,
    Register,
    Renew,
    RevokeLease,
    Unregister,
)
from skydns.names import Service
from skydns.registry import Applied, Outcome, Removal


def _service_fields(service: Service) -> dict[str, Any]:
    return {
        "uuid": service.uuid,
        "name": service.name,
        "environment": service.environment,
        "region": service.region,
        "version": service.version,
        "host": service.host,
        "port": service.port,
        "ttl": service.ttl,
        "no_expire": service.no_expire,
    }


_SERVICE = (
    "{uuid} at {host}:{port} name={name} environment={environment} region={region} "
    "version={version}"
)
_REGISTERED = "registered " + _SERVICE + " ttl={ttl}"
_CALLBACK = (
    "callback {uuid} watches name {name!r} environment {environment!r} region {region!r}: "
    "DELETE to {reply}:{port}"
)


def _emit(log: Logger, level: LogLevel, fmt: str, event: dict[str, Any]) -> None:
    """``log.emit(level, fmt, **event)``: the same event, without the copies
    of the keywords through ``info`` and ``emit`` and ``emit``'s check of
    the level, which sorts LogLevel's constants on every call (together
    about half of what a registry line cost before it reached an observer).
    ``level`` must be a `LogLevel`; ``event`` becomes the event."""
    event.update(
        log_logger=log, log_level=level, log_namespace=log.namespace, log_source=log.source,
        log_format=fmt, log_time=time.time(),  # wall time, as Logger.emit stamps it
    )  # fmt: skip
    log.observer(event)


class RegistryLog:
    """Apply listener that logs each change to this node's replica.

    Every node logs the commands it applies (``live`` says whether this node
    is the leader applying it for the first time), so each node's log shows
    its registry's history; a node replaying its log after a restart logs the
    replayed changes again.
    """

    def __init__(self, log: Optional[Logger] = None) -> None:
        self.log = log if log is not None else Logger(namespace="skydns.registry")

    def on_applied(self, command: Command, applied: Applied, live: bool) -> None:
        if isinstance(command, Register):
            self._removed("expire", applied.removals, live, "lease ran out; uuid reused")
            if applied.status is Outcome.OK:
                event = {"change": "register", "live": live}
                event.update(_service_fields(command.service))
                _emit(self.log, LogLevel.info, _REGISTERED, event)
            else:
                self._unchanged("register", command.service.uuid, applied, live)
        elif isinstance(command, Unregister):
            self._removed("unregister", applied.removals, live)
            if not applied.removals:
                self._unchanged("unregister", command.uuid, applied, live)
        elif isinstance(command, Expire):
            self._removed("expire", applied.removals, live, "lease ran out")
        elif isinstance(command, Renew):
            _emit(self.log, LogLevel.debug, "renewed {uuid} for {ttl}s: {status}", {
                "change": "renew", "uuid": command.uuid, "ttl": command.ttl,
                "status": applied.status.value, "live": live,
            })  # fmt: skip
        elif isinstance(command, Drain):
            _emit(self.log, LogLevel.info, "{verb} {uuid}: {status}", {
                "change": "drain", "uuid": command.uuid, "drain": command.drain,
                "verb": "drained" if command.drain else "undrained",
                "status": applied.status.value, "live": live,
            })  # fmt: skip
        elif isinstance(command, GrantLease):
            _emit(self.log, LogLevel.info, "granted lease {lease} for {ttl}s: {status}", {
                "change": "grant", "lease": command.lease, "ttl": command.ttl,
                "status": applied.status.value, "live": live,
            })  # fmt: skip
        elif isinstance(command, RevokeLease):
            if command.lapsed:
                self._removed("expire", applied.removals, live, "its lease ran out")
            else:
                self._removed("unregister", applied.removals, live, "its lease was revoked")
        elif isinstance(command, Checkpoint):
            _emit(self.log, LogLevel.debug, "checkpointed {count} lease ends", {
                "change": "checkpoint", "count": len(command.leases) + len(command.instances),
                "live": live,
            })  # fmt: skip
        elif isinstance(command, AddCallback):
            cb = command.callback
            if applied.status is Outcome.OK:
                _emit(self.log, LogLevel.info, _CALLBACK, {
                    "change": "callback", "uuid": cb.uuid, "name": cb.name,
                    "environment": cb.environment, "region": cb.region, "version": cb.version,
                    "host": cb.host, "reply": cb.reply, "port": cb.port, "live": live,
                })  # fmt: skip
            else:
                self._unchanged("callback", cb.uuid, applied, live)

    def _removed(
        self, change: str, removals: tuple[Removal, ...], live: bool, reason: str = ""
    ) -> None:
        if not removals:
            return
        verb = {"unregister": "unregistered", "expire": "expired"}[change]
        fmt = verb + " " + _SERVICE + (": {reason}" if reason else "")
        for removal in removals:
            event = {"change": change, "live": live, "reason": reason,
                     "callbacks": len(removal.callbacks)}  # fmt: skip
            event.update(_service_fields(removal.instance.service))
            _emit(self.log, LogLevel.info, fmt, event)

    def _unchanged(self, change: str, uuid: str, applied: Applied, live: bool) -> None:
        _emit(self.log, LogLevel.debug, "{change} {uuid}: {status}, nothing changed", {
            "change": change, "uuid": uuid, "status": applied.status.value, "live": live,
        })  # fmt: skip
