"""Log setup: the observer twistd writes with (`log_observer`), one that
collects a reactor turn's lines into one write (`LogWriter`), rotation, and
the ``--log-format`` and ``--log-level`` options.

twistd picks its log observer before the application runs; a plugin can only
offer one as the application's `ILogObserver` component, which twistd uses
unless ``--logger`` is given.  `RootService` does that from the root of the
service tree, with an observer made by `log_observer`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import IO, Any, Callable, Optional, Protocol

from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
)
from twisted.python import threadable
from twisted.python.compat import ioType
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile
from zope.interface import implementer

from skydns.logformat import event_as_json, text_formatter

#: ``--log-format`` values.
LOG_FORMATS = ("text", "json")

#: ``--log-level`` values, least to most severe.
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


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
