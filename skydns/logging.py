"""Logs: one structured line per registry change, and the text or JSON-lines
observer twistd writes them with.

`RegistryLog.on_applied` is an apply listener
(``cluster.add_apply_listener(RegistryLog().on_applied)``): registrations,
removals, expirations and new callbacks are logged at info level with the
instance's fields as structured event keys; renewals and commands that
changed nothing at debug.  Nothing here logs per DNS query.

twistd picks its log observer before the application runs; a plugin can only
offer one as the application's `ILogObserver` component, which twistd uses
unless ``--logger`` is given.  `RootService` does that from the root of the
service tree, with an observer made by `log_observer`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any, Callable, Optional

from twisted.application.service import IServiceCollection, MultiService
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile

from skydns.clock import Clock
from skydns.commands import AddCallback, Command, Expire, Register, Renew, Unregister
from skydns.names import Service
from skydns.registry import Applied, Removal

#: ``--log-format`` values.
LOG_FORMATS = ("text", "json")

#: ``--log-level`` values, least to most severe.
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

#: Event keys of twisted.logger and of the legacy log bridge that the JSON
#: line carries under its own names (or not at all).
_RESERVED = frozenset({"format", "message", "isError", "system", "time", "why", "failure"})


# -- the registry change log ----------------------------------------------------


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


def address_text(address: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a Twisted address, for a
    log line or a JSON field; anything else as ``str`` gives it."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not isinstance(host, str) or not isinstance(port, int):
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LogThrottle:
    """At most one line per key per ``interval`` seconds, for events that can
    repeat once per query or connection (an upstream that stopped answering):
    `allow` says whether to log now and how many lines it kept back before."""

    def __init__(self, clock: Clock, interval: float = 10.0) -> None:
        self.clock = clock
        self.interval = interval
        self._last: dict[Any, float] = {}
        self._held: dict[Any, int] = {}

    def allow(self, key: Any) -> Optional[int]:
        """None to stay quiet; else the number of lines held back since the
        last one for ``key``."""
        now = self.clock.seconds()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) > 1024:  # keys come from configuration, but stay bounded
            self._last.clear()
        self._last[key] = now
        return self._held.pop(key, 0)


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
            if applied.status == "ok":
                self.log.info(
                    "registered " + _SERVICE + " ttl={ttl}",
                    change="register", live=live, **_service_fields(command.service),
                )  # fmt: skip
            else:
                self._unchanged("register", command.service.uuid, applied, live)
        elif isinstance(command, Unregister):
            self._removed("unregister", applied.removals, live)
            if not applied.removals:
                self._unchanged("unregister", command.uuid, applied, live)
        elif isinstance(command, Expire):
            self._removed("expire", applied.removals, live, "lease ran out")
        elif isinstance(command, Renew):
            self.log.debug(
                "renewed {uuid} for {ttl}s: {status}",
                change="renew", uuid=command.uuid, ttl=command.ttl, status=applied.status,
                live=live,
            )  # fmt: skip
        elif isinstance(command, AddCallback):
            cb = command.callback
            if applied.status == "ok":
                self.log.info(
                    "callback {uuid} watches name {name!r} environment {environment!r} "
                    "region {region!r}: DELETE to {reply}:{port}",
                    change="callback", uuid=cb.uuid, name=cb.name, environment=cb.environment,
                    region=cb.region, version=cb.version, host=cb.host, reply=cb.reply,
                    port=cb.port, live=live,
                )  # fmt: skip
            else:
                self._unchanged("callback", cb.uuid, applied, live)

    def _removed(
        self, change: str, removals: tuple[Removal, ...], live: bool, reason: str = ""
    ) -> None:
        verb = {"unregister": "unregistered", "expire": "expired"}[change]
        suffix = ": {reason}" if reason else ""
        for removal in removals:
            self.log.info(
                verb + " " + _SERVICE + suffix,
                change=change, live=live, reason=reason, callbacks=len(removal.callbacks),
                **_service_fields(removal.instance.service),
            )  # fmt: skip

    def _unchanged(self, change: str, uuid: str, applied: Applied, live: bool) -> None:
        self.log.debug(
            "{change} {uuid}: {status}, nothing changed",
            change=change, uuid=uuid, status=applied.status, live=live,
        )  # fmt: skip


# -- observers --------------------------------------------------------------------
#
# Every node writes one info line per registry change, so at a few thousand
# writes a second formatting is a visible share of a node's CPU.  Twisted's
# own formatting runs each event through `string.Formatter` (to support its
# ``{name()}`` call syntax) and builds a time zone and a datetime for every
# timestamp; the functions below give the same text for less: a format with no
# ``()`` in it says with `str.format_map` exactly what `string.Formatter`
# says, and a timestamp with whole-second resolution is formatted once a
# second.  Anything unusual (flattened events, failures, a format that does
# not fit the event) goes to Twisted's formatter, which also reports errors.


def _message(event: LogEvent) -> str:
    """``formatEvent(event)``, fast for the common plain formats."""
    fmt = event.get("log_format")
    if type(fmt) is str and "()" not in fmt and "log_flattened" not in event:
        try:
            return fmt.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


class _SecondClock:
    """`formatTime` for whole-second formats, computed once per second."""

    def __init__(self) -> None:
        self._second: Optional[int] = None
        self._text = "-"

    def __call__(self, when: Optional[float]) -> str:
        if when is None:
            return "-"
        second = int(when // 1)
        if second != self._second:
            self._text = formatTime(second)
            self._second = second
        return self._text


def text_formatter() -> Callable[[LogEvent], Optional[str]]:
    """Twisted's classic text line (``{time} [{system}] {message}``, as
    `textFileLogObserver` writes it), computed faster."""
    clock = _SecondClock()

    def format_event(event: LogEvent) -> Optional[str]:
        if "log_failure" in event or "log_system" in event:
            return formatEventAsClassicLogText(event, formatTime=clock)
        text = _message(event)
        if not text:
            return None
        level = event.get("log_level")
        line = (
            f"{clock(event.get('log_time'))} [{event.get('log_namespace', '-')}"
            f"#{'-' if level is None else level.name}] {text}"
        )
        return line.replace("\n", "\n\t") + "\n"

    return format_event


_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """``value`` if JSON can carry it as it is, else its repr."""
    if type(value) in _JSON_SCALARS:
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _rfc3339(when: float) -> str:
    stamp = datetime.fromtimestamp(when, tz=timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_as_json(event: LogEvent) -> str:
    """One event as one line of JSON: ``time`` (RFC 3339 UTC), ``level``,
    ``namespace``, ``message`` (the formatted text), the event's own fields,
    and ``traceback`` for a logged failure."""
    when = event.get("log_time")
    level = event.get("log_level")
    line: dict[str, Any] = {
        "time": None if when is None else _rfc3339(when),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace"),
        "message": _message(event),
    }
    if event.get("log_system") is not None:
        line["system"] = str(event["log_system"])
    for key, value in event.items():
        if key.startswith("log_") or key in _RESERVED or key in line:
            continue
        line[key] = _plain(value)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            line["traceback"] = failure.getTraceback()
        except Exception:
            line["traceback"] = repr(failure)
    return json.dumps(line, separators=(",", ":")) + "\n"


def json_lines_observer(out: IO[str]) -> FileLogObserver:
    """An observer writing each event to ``out`` as one line of JSON."""
    return FileLogObserver(out, event_as_json)


def parse_log_format(text: str) -> str:
    """``text`` or ``json`` (for ``--log-format``)."""
    value = text.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"{text!r} is not a log format ({', '.join(LOG_FORMATS)})")
    return value


def parse_log_level(text: str) -> LogLevel:
    """A level name (for ``--log-level``): events below it are not written."""
    value = text.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return LogLevel.levelWithName(value)


def _open(twistd: Mapping[str, Any]) -> IO[str]:
    """Where twistd itself would write: stdout under ``-n`` without
    ``--logfile`` (or with ``--logfile -``), else the file (twistd.log by
    default), rotated as twistd rotates it."""
    path = twistd.get("logfile") or ""
    if path == "-" or (not path and twistd.get("nodaemon")):
        return sys.stdout
    logfile: IO[str] = LogFile.fromFullPath(path or "twistd.log")  # type: ignore[assignment]
    return logfile


#: Twisted's per-connection info lines ("Starting factory <...>" as every
#: connection attempt starts and stops, "Scheduling retry 7 to connect ..."
#: every second a peer is down, AMP's "connection established/lost (HOST:
#: ... PEER: ...)"): shown at ``--log-level debug`` only.  The Raft
#: transport logs peers going away and coming back itself.
CHATTY_NAMESPACES = (
    "twisted.internet.protocol",
    "twisted.internet.endpoints",
    "twisted.application._client_service",
    "twisted.protocols.amp",
)


def log_observer(
    fmt: str = "text",
    level: str | LogLevel = "info",
    twistd: Optional[Mapping[str, Any]] = None,
    out: Optional[IO[str]] = None,
) -> Optional[ILogObserver]:
    """The observer for ``--log-format fmt --log-level level``.

    ``twistd`` is twistd's own options (``options.parent`` in
    ``makeService``): the destination follows its ``--logfile`` and
    ``--nodaemon``.  None when twistd was given ``--syslog`` or ``--logger``:
    its own choice stands.  ``out`` overrides the destination (tests).
    """
    twistd = twistd if twistd is not None else {"nodaemon": True}
    if (twistd.get("syslog") or twistd.get("logger")) and out is None:
        return None
    if out is None:
        out = _open(twistd)
    fmt = parse_log_format(fmt)
    if isinstance(level, str):
        level = parse_log_level(level)
    inner = json_lines_observer(out) if fmt == "json" else FileLogObserver(out, text_formatter())
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    if level == LogLevel.info:
        for namespace in CHATTY_NAMESPACES:
            predicate.setLogLevelForNamespace(namespace, LogLevel.warn)
    return FilteringLogObserver(inner, [predicate])


def json_observer() -> ILogObserver:
    """JSON lines on stdout at info level: ``twistd --logger
    skydns.logging.json_observer -n skydns ...`` (``--logfile`` is then
    ignored by twistd)."""
    observer = log_observer("json", "info", out=sys.stdout)
    assert observer is not None
    return observer


class RootService(MultiService):
    """The root of the service tree: hands ``observer`` to twistd as the
    application's `ILogObserver` when it is attached to the application."""

    def __init__(self, observer: Optional[ILogObserver] = None) -> None:
        super().__init__()
        self.observer = observer

    def setServiceParent(self, parent: IServiceCollection) -> None:  # noqa: N802 - Twisted's
        if self.observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.observer)
        super().setServiceParent(parent)
