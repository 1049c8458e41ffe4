"""How a log event becomes a line: readable text, or one JSON object (with
the event's structured keys) per line for log shippers.

Every node writes one info line per registry change, so at a few thousand
writes a second formatting is a visible share of a node's CPU: these give
the text Twisted's formatters give, for less, and hand anything unusual to
Twisted's own."""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.logger import (
    LogEvent,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)

from skydns.jsontext import object_json
from skydns.timestamps import rfc3339

#: Event keys of twisted.logger and of the legacy log bridge that the JSON
#: line carries under its own names (or not at all).
_RESERVED = frozenset({"format", "message", "isError", "system", "time", "why", "failure"})


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


#: Keys the JSON line has under its own name (or leaves out), besides log_*.
_HEADER = frozenset({"time", "level", "namespace", "message"}) | _RESERVED


def _rfc3339(when: float) -> str:
    """The time of a JSON log line: RFC 3339 UTC, always with milliseconds."""
    return rfc3339(when, always_millis=True)


def event_as_json(event: LogEvent) -> str:
    """One event as one line of JSON: ``time`` (RFC 3339 UTC), ``level``,
    ``namespace``, ``message`` (the formatted text), the event's own fields,
    and ``traceback`` for a logged failure."""
    when = event.get("log_time")
    items: list[tuple[str, Any]] = [
        ("time", None if when is None else _rfc3339(when)),
        ("level", getattr(event.get("log_level"), "name", "info")),
        ("namespace", event.get("log_namespace")),
        ("message", _message(event)),
    ]
    if event.get("log_system") is not None:
        items.append(("system", str(event["log_system"])))
    failure = event.get("log_failure")
    for key, value in event.items():
        if key.startswith("log_") or key in _HEADER:
            continue
        if failure is not None and key == "traceback":
            continue
        items.append((key, value))
    if failure is not None:
        try:
            traceback = failure.getTraceback()
        except Exception:
            traceback = repr(failure)
        items.append(("traceback", traceback))
    return object_json(items) + "\n"
