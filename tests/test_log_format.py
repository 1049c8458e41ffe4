"""The fast text formatter writes exactly what Twisted's classic text
observer would write, for every kind of event."""

from __future__ import annotations

from typing import cast

from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Register
from skydns.logging import RegistryLog, text_formatter
from skydns.names import Service
from skydns.registry import Applied

WHEN = 1_764_050_000.25


def _events() -> list[LogEvent]:
    events: list[LogEvent] = []
    log = Logger(namespace="skydns.registry", observer=cast(ILogObserver, events.append))
    service = Service(uuid="u1", name="web", environment="prod", region="east", version="1.0",
                      host="127.0.0.1", port=80, ttl=30, priority=0, weight=0,
                      no_expire=False)  # fmt: skip
    RegistryLog(log).on_applied(Register(service, 1.0), Applied("ok"), True)
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
