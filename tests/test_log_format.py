"""The fast formatters write exactly what the plain way would: the text one
what Twisted's classic text observer writes, the JSON one what json.dumps
of the line as a dict writes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from skydns.audit import RegistryLog
from skydns.commands import Register
from skydns.logformat import _RESERVED, _rfc3339, event_as_json, text_formatter
from skydns.names import Service
from skydns.registry import Applied, Outcome

WHEN = 1_764_050_000.25


def _events() -> list[LogEvent]:
    events: list[LogEvent] = []
    log = Logger(namespace="skydns.registry", observer=cast(ILogObserver, events.append))
    service = Service(uuid="u1", name="web", environment="prod", region="east", version="1.0",
                      host="127.0.0.1", port=80, ttl=30, priority=0, weight=0,
                      no_expire=False)  # fmt: skip
    RegistryLog(log).on_applied(Register(service, 1.0), Applied(Outcome.OK), True)
    log.info("two\nlines {x!r} {y:>5}", x="a", y=3)
    log.info("call {f()}", f=lambda: 42)
    log.info("no such key {nope}")
    log.info("{a.real} {b[0]}", a=3, b=["x"])
    log.warn(None)
    log.info("with a system", log_system="pool-1")
    log.info("no namespace", log_namespace=None)
    log.failure("boom", Failure(ValueError("x")))
    for event in events:
        event["log_time"] = WHEN
    events.append({"log_format": "no time, no level"})
    return events


class TextFormatterTests(SynchronousTestCase):
    def test_same_text_as_twisted(self) -> None:
        ours = text_formatter()
        for event in _events():
            expected = formatEventAsClassicLogText(event, formatTime=formatTime)
            self.assertEqual(ours(event), expected, event.get("log_format"))

    def test_timestamp_follows_the_second(self) -> None:
        """The per-second cache never shows a stale second."""
        ours = text_formatter()
        for when in (WHEN, WHEN + 0.5, WHEN + 0.8, WHEN + 3600.1, WHEN):
            event: LogEvent = {"log_format": "x", "log_time": when, "log_level": LogLevel.info}
            line = ours(event)
            assert line is not None
            self.assertTrue(line.startswith(formatTime(when) + " "), line)


def _reference_time(when: float) -> str:
    stamp = datetime.fromtimestamp(when, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reference_json(event: LogEvent) -> str:
    """event_as_json as a dict through json.dumps (as it was written first)."""
    when, level = event.get("log_time"), event.get("log_level")
    line: dict[str, Any] = {
        "time": None if when is None else _reference_time(when),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    if event.get("log_system") is not None:
        line["system"] = str(event["log_system"])
    for key, value in event.items():
        if key.startswith("log_") or key in _RESERVED or key in line:
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        line[key] = value
    if event.get("log_failure") is not None:
        line.pop("traceback", None)
        line["traceback"] = event["log_failure"].getTraceback()
    return json.dumps(line, separators=(",", ":")) + "\n"


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.binary(max_size=4) | st.sets(st.integers(), max_size=2),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)  # fmt: skip
_keys = st.sampled_from(["uuid", "port", "time", "level", "system", "message", "traceback",
                         "log_extra", "ünïcode", "a\nb"]) | st.text(max_size=6)  # fmt: skip


class JSONFormatTests(SynchronousTestCase):
    @given(st.floats(min_value=-2e9, max_value=4e9))
    @example(1_764_050_000.9995)
    @example(1_764_050_000.9999996)
    @example(-0.0000004)
    @example(1_764_050_000.25)
    def test_time_as_datetime_gives_it(self, when: float) -> None:
        """The per-second cached RFC 3339 time is datetime's, rounding included."""
        self.assertEqual(_rfc3339(when), _reference_time(when))

    @given(st.dictionaries(_keys, _values, max_size=8),
           st.sampled_from(list(LogLevel.iterconstants())),
           st.none() | st.floats(min_value=0, max_value=4e9), st.none() | st.text(max_size=5),
           st.booleans())  # fmt: skip
    @example({"uuid": "1", "port": 80, "ttl": 1.5, "live": True, "x": None}, LogLevel.info,
             WHEN, None, False)  # fmt: skip
    @example({"v": math.nan, "w": [math.inf]}, LogLevel.warn, WHEN, "pool-1", False)
    def test_same_json_as_dumps(
        self,
        fields: dict[str, Any],
        level: LogLevel,
        when: float | None,
        system: str | None,
        failed: bool,
    ) -> None:
        """Written piece by piece, the line is the text json.dumps gives for
        the line as a dict: every key, in order, every kind of value."""
        event: LogEvent = dict(fields)
        event.update(log_format="x {uuid!r}", log_level=level, log_namespace="skydns.t",
                     log_time=when)  # fmt: skip
        if system is not None:
            event["log_system"] = system
        if failed:
            event["log_failure"] = Failure(ValueError("boom"))
        ours = event_as_json(event)
        self.assertEqual(ours, _reference_json(event))
        self.assertEqual(ours.count("\n"), 1)
