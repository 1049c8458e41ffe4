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
import math
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import IO, Any, Callable, Optional, Protocol

from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python import threadable
from twisted.python.compat import ioType
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile
from zope.interface import implementer

from skydns.clock import Clock
from skydns.commands import AddCallback, Command, Expire, Register, Renew, Unregister
from skydns.names import Service
from skydns.registry import Applied, Outcome, Removal

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
        # One tuple, replaced whole: threads that log share the cache safely.
        self._cached: tuple[Optional[int], str] = (None, "-")

    def __call__(self, when: Optional[float]) -> str:
        if when is None:
            return "-"
        second = int(when // 1)
        cached = self._cached
        if cached[0] != second:
            cached = self._cached = (second, formatTime(second))
        return cached[1]


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


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

#: Keys the JSON line has under its own name (or leaves out), besides log_*.
_HEADER = frozenset({"time", "level", "namespace", "message"}) | _RESERVED

#: Event key -> ``"key":`` as JSON, or "" for a key the line leaves out (a
#: bounded cache: events from one call site have the same keys every time).
_field_prefix: dict[Any, str] = {}

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _plain(value: Any) -> Any:
    """``value`` if JSON can carry it as it is, else its repr."""
    if type(value) in _JSON_SCALARS:
        return value
    try:
        _ENCODER.encode(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _json_value(value: Any) -> str:
    """``value`` (or its repr, see `_plain`) as JSON text, as `_ENCODER`
    writes it inside an object; the common scalars without the encoder."""
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
    return _ENCODER.encode(_plain(value))


class _RFC3339Clock:
    """RFC 3339 UTC time with milliseconds, what
    ``datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds")``
    gives (with ``Z``), the date and time of day computed once a second."""

    def __init__(self) -> None:
        self._cached: tuple[Optional[float], str] = (None, "")

    def __call__(self, when: float) -> str:
        # fromtimestamp's own rounding: the fraction to the nearest
        # microsecond, half to even, carried into the second.
        fraction, second = math.modf(when)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            micros -= 1_000_000
            second += 1.0
        elif micros < 0:
            micros += 1_000_000
            second -= 1.0
        cached = self._cached
        if cached[0] != second:
            stamp = datetime.fromtimestamp(second, tz=UTC)
            cached = self._cached = (second, stamp.strftime("%Y-%m-%dT%H:%M:%S."))
        return f"{cached[1]}{micros // 1000:03d}Z"


_rfc3339 = _RFC3339Clock()


def event_as_json(event: LogEvent) -> str:
    """One event as one line of JSON: ``time`` (RFC 3339 UTC), ``level``,
    ``namespace``, ``message`` (the formatted text), the event's own fields,
    and ``traceback`` for a logged failure."""
    # Written piece by piece rather than as a dict through json.dumps: the
    # same text (tests compare the two), a third cheaper.
    when = event.get("log_time")
    parts = [
        '{"time":' + ("null" if when is None else '"' + _rfc3339(when) + '"'),
        '"level":' + _json_value(getattr(event.get("log_level"), "name", "info")),
        '"namespace":' + _json_value(event.get("log_namespace")),
        '"message":' + encode_basestring_ascii(_message(event)),
    ]
    if event.get("log_system") is not None:
        parts.append('"system":' + encode_basestring_ascii(str(event["log_system"])))
    failure = event.get("log_failure")
    for key, value in event.items():
        prefix = _field_prefix.get(key)
        if prefix is None:
            skip = key.startswith("log_") or key in _HEADER
            prefix = "" if skip else encode_basestring_ascii(key) + ":"
            if len(_field_prefix) < 4096:
                _field_prefix[key] = prefix
        if prefix and not (failure is not None and key == "traceback"):
            parts.append(prefix + _json_value(value))
    if failure is not None:
        try:
            traceback = failure.getTraceback()
        except Exception:
            traceback = repr(failure)
        parts.append('"traceback":' + encode_basestring_ascii(traceback))
    return ",".join(parts) + "}\n"


class _Reactor(Protocol):
    """What `LogWriter` uses of the reactor."""

    running: bool

    def callLater(  # noqa: N802 - Twisted's
        self, delay: float, f: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> IDelayedCall: ...


#: Lines at these levels are written at once, with the lines before them.
_URGENT = frozenset({LogLevel.warn, LogLevel.error, LogLevel.critical})


@implementer(ILogObserver)
class LogWriter:
    """Writes the events at or above a level (per namespace, as
    `LogLevelFilterPredicate` decides) to ``out``, one formatted line each.

    `FileLogObserver` writes and flushes every line: one system call per
    line, which under write load costs more than formatting it.  Given a
    running ``reactor``, lines from the reactor's thread are collected and
    written together once per reactor turn, so a burst of registrations
    costs one write.  A line at warn or above is written at once, after
    those collected before it; so are lines from other threads, lines while
    the reactor is not running (starting, stopped) and every line when no
    reactor is given.  `flush` writes what is collected (shutdown calls it).
    """

    #: Lines collected before they are written without waiting for the turn.
    max_lines = 512

    def __init__(
        self,
        out: IO[Any],
        format_event: Callable[[LogEvent], Optional[str]],
        predicate: LogLevelFilterPredicate,
        reactor: Optional[_Reactor] = None,
        in_reactor_thread: Callable[[], bool] = threadable.isInIOThread,
    ) -> None:
        self.out = out
        self.format_event = format_event
        self.predicate = predicate
        self._encoding = None if ioType(out) is str else "utf-8"
        self._reactor = reactor
        self.in_reactor_thread = in_reactor_thread
        self._lines: list[str] = []
        self._lock = threading.RLock()
        self._call: Optional[IDelayedCall] = None
        #: namespace -> the levels written for it, from ``predicate``.
        self._levels: dict[Any, frozenset[Any]] = {}

    def _wanted(self, event: LogEvent) -> bool:
        namespace = event.get("log_namespace")
        levels = self._levels.get(namespace)
        if levels is None:
            if not namespace:
                return False  # as LogLevelFilterPredicate: no namespace, no line
            least = self.predicate.logLevelForNamespace(namespace)
            levels = frozenset(x for x in LogLevel.iterconstants() if not x < least)
            if len(self._levels) > 1024:
                self._levels.clear()
            self._levels[namespace] = levels
        return event.get("log_level") in levels

    def __call__(self, event: LogEvent) -> None:
        if not self._wanted(event):
            return
        text = self.format_event(event)
        if not text:
            return
        reactor = self._reactor
        with self._lock:
            self._lines.append(text)
            if (
                reactor is None
                or not reactor.running
                or event.get("log_level") in _URGENT
                or not self.in_reactor_thread()
                or len(self._lines) >= self.max_lines
            ):
                self._write()
            elif self._call is None:
                self._call = reactor.callLater(0, self._turn_ended)

    def _turn_ended(self) -> None:
        with self._lock:
            self._call = None
            self._write()

    def flush(self) -> None:
        """Write the lines collected so far; cancel the pending write."""
        with self._lock:
            if self._call is not None:
                if self._call.active():
                    self._call.cancel()
                self._call = None
            self._write()

    @property
    def rotates(self) -> bool:
        """Whether the lines go to a file that `rotate` can rotate."""
        return isinstance(self.out, LogFile)

    def rotate(self) -> None:
        """Write what is held, then rotate the log file (as twistd does on
        SIGUSR1); nothing to do when writing to standard output."""
        with self._lock:
            self.flush()
            if isinstance(self.out, LogFile):
                self.out.rotate()

    def _write(self) -> None:
        if not self._lines:
            return
        text = "".join(self._lines)
        del self._lines[:]
        self.out.write(text if self._encoding is None else text.encode(self._encoding))
        self.out.flush()


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


#: ``--log-rotate-size``: a log file is rotated when it reaches this many bytes.
DEFAULT_ROTATE_SIZE = 10_000_000

#: ``--log-keep``: rotated log files kept (older ones are deleted).
DEFAULT_KEEP = 10


def _open(
    twistd: Mapping[str, Any], rotate_size: int = DEFAULT_ROTATE_SIZE, keep: int = DEFAULT_KEEP
) -> IO[str]:
    """Where twistd itself would write: stdout under ``-n`` without
    ``--logfile`` (or with ``--logfile -``), else the file (twistd.log by
    default), rotated at ``rotate_size`` bytes (and on SIGUSR1, as twistd
    does) with ``keep`` rotated files kept.  twistd's own log keeps every
    rotated file; with a line per registration on every node that fills a
    disk, so the number is bounded here."""
    path = twistd.get("logfile") or ""
    if path == "-" or (not path and twistd.get("nodaemon")):
        return sys.stdout
    logfile: IO[str] = LogFile.fromFullPath(  # type: ignore[assignment]
        path or "twistd.log", rotateLength=rotate_size, maxRotatedFiles=keep
    )
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
    reactor: Optional[_Reactor] = None,
    rotate_size: int = DEFAULT_ROTATE_SIZE,
    keep: int = DEFAULT_KEEP,
) -> Optional[LogWriter]:
    """The observer for ``--log-format fmt --log-level level``.

    ``twistd`` is twistd's own options (``options.parent`` in
    ``makeService``): the destination follows its ``--logfile`` and
    ``--nodaemon``.  None when twistd was given ``--syslog`` or ``--logger``:
    its own choice stands.  ``out`` overrides the destination (tests).
    With a ``reactor`` lines are written once per reactor turn (`LogWriter`).
    A log file is rotated at ``rotate_size`` bytes, ``keep`` old ones kept.
    """
    twistd = twistd if twistd is not None else {"nodaemon": True}
    if (twistd.get("syslog") or twistd.get("logger")) and out is None:
        return None
    if out is None:
        out = _open(twistd, rotate_size, keep)
    fmt = parse_log_format(fmt)
    if isinstance(level, str):
        level = parse_log_level(level)
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    if level == LogLevel.info:
        for namespace in CHATTY_NAMESPACES:
            predicate.setLogLevelForNamespace(namespace, LogLevel.warn)
    format_event = event_as_json if fmt == "json" else text_formatter()
    return LogWriter(out, format_event, predicate, reactor)


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
