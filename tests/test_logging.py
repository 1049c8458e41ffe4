"""Logs: the registry change listener's structured events, the JSON-lines and
text observers with their level filter, the twistd hook, and the quiet Site."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
from typing import Any, cast

from twisted.application.service import Application, IServiceCollection
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    capturedLogs,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from skydns.audit import RegistryLog, _emit
from skydns.commands import AddCallback, Expire, Register, Renew, Unregister
from skydns.http.api import make_api
from skydns.http.site import QuietSite, make_site
from skydns.logformat import event_as_json
from skydns.logging import (
    LogWriter,
    RootService,
    json_observer,
    log_observer,
    parse_log_format,
    parse_log_level,
)
from skydns.names import Callback, Service
from skydns.registry import Registry
from skydns.testing import LocalCluster
from skydns.throttle import LogThrottle, address_text
from tests.test_api import START, APITestCase, service

FIELDS = ("uuid", "name", "environment", "region", "host", "port", "ttl")


def _service(uuid: str = "1001", ttl: int = 10) -> Service:
    return Service(uuid, "rails", "production", "east", "1.0.1", "10.0.0.1", 8080, ttl)


def collect(events: list[LogEvent]) -> ILogObserver:
    """An observer appending to ``events``."""
    return cast(ILogObserver, events.append)


def fields(event: LogEvent) -> tuple[Any, ...]:
    return tuple(event[k] for k in FIELDS)


class RegistryLogTests(SynchronousTestCase):
    """Each applied command gives the events an operator expects."""

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        self.registry = Registry()
        self.listener = RegistryLog(Logger(namespace="test", observer=collect(self.events)))

    def apply(self, command: Any, live: bool = True) -> None:
        self.listener.on_applied(command, self.registry.apply(command), live)

    def at(self, level: LogLevel) -> list[LogEvent]:
        return [e for e in self.events if e["log_level"] == level]

    def test_register_info_with_fields(self) -> None:
        """A registration is one info event with the instance's fields."""
        self.apply(Register(_service(), START))
        [event] = self.events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(event["change"], "register")
        self.assertEqual(
            fields(event), ("1001", "rails", "production", "east", "10.0.0.1", 8080, 10)
        )
        self.assertIs(event["live"], True)
        self.assertIn("registered 1001", event["log_format"].format(**event))

    def test_unregister_info_with_removed_instance(self) -> None:
        """A removal is one info event carrying the removed instance's fields."""
        self.apply(Register(_service(), START))
        del self.events[:]
        self.apply(Unregister("1001", START + 1), live=False)
        [event] = self.events
        self.assertEqual((event["log_level"], event["change"]), (LogLevel.info, "unregister"))
        self.assertEqual(fields(event)[:5], ("1001", "rails", "production", "east", "10.0.0.1"))
        self.assertIs(event["live"], False)

    def test_expire_one_event_per_instance(self) -> None:
        """An Expire that removes two instances logs two info events."""
        self.apply(Register(_service("a"), START))
        self.apply(Register(_service("b"), START))
        self.apply(Register(_service("c", ttl=100), START))
        del self.events[:]
        self.apply(Expire(("a", "b", "c"), START + 20))
        self.assertEqual(
            [(e["change"], e["uuid"]) for e in self.at(LogLevel.info)],
            [("expire", "a"), ("expire", "b")],
        )
        self.assertEqual(len(self.events), 2)

    def test_reregister_after_expiry_logs_both(self) -> None:
        """Registering over a lapsed instance logs its expiry, then the registration."""
        self.apply(Register(_service(ttl=5), START))
        del self.events[:]
        self.apply(Register(_service(), START + 10))
        self.assertEqual([e["change"] for e in self.events], ["expire", "register"])

    def test_renew_debug(self) -> None:
        """Renewals are at debug: too frequent for info."""
        self.apply(Register(_service(), START))
        del self.events[:]
        self.apply(Renew("1001", 30, START + 5))
        [event] = self.events
        self.assertEqual((event["log_level"], event["change"]), (LogLevel.debug, "renew"))
        self.assertEqual((event["uuid"], event["ttl"]), ("1001", 30))

    def test_no_change_debug(self) -> None:
        """A conflict or not_found changes nothing and is only a debug event."""
        self.apply(Register(_service(), START))
        del self.events[:]
        self.apply(Register(_service(), START + 1))
        self.apply(Unregister("nope", START))
        self.assertEqual(self.at(LogLevel.info), [])
        self.assertEqual([e["status"] for e in self.events], ["conflict", "not_found"])

    def test_callback_info(self) -> None:
        self.apply(Register(_service(), START))
        del self.events[:]
        cb = Callback("cb1", "rails", "production", "", "", "", "10.0.0.9", 5441)
        self.apply(AddCallback(cb, START))
        [event] = self.events
        self.assertEqual((event["log_level"], event["change"]), (LogLevel.info, "callback"))
        self.assertEqual((event["uuid"], event["reply"], event["port"]), ("cb1", "10.0.0.9", 5441))


class EmitTests(SynchronousTestCase):
    def test_same_event_as_logger_emit(self) -> None:
        """The registry log's shortcut gives the event Logger.emit gives
        (keys, their order and values), but for the time stamp."""
        events: list[LogEvent] = []
        log = Logger(namespace="skydns.registry", source=self, observer=collect(events))
        log.emit(LogLevel.info, "registered {uuid}", change="register", uuid="1")
        _emit(log, LogLevel.info, "registered {uuid}", {"change": "register", "uuid": "1"})
        twisted, ours = events
        self.assertEqual(list(twisted), list(ours))
        twisted.pop("log_time")
        self.assertLess(abs(ours.pop("log_time") - __import__("time").time()), 60)
        self.assertEqual(twisted, ours)


class APILogTests(APITestCase):
    def test_one_info_line_per_change_none_per_read(self) -> None:
        """Through the API: a PUT and a DELETE log one info event each; GETs,
        queries and a PATCH log nothing at info."""
        events: list[LogEvent] = []
        self.cluster.add_apply_listener(RegistryLog(Logger(observer=collect(events))).on_applied)
        self.register("1001")
        self.call("GET", "/skydns/services/1001")
        self.call("GET", "/skydns/services/?query=rails")
        self.call("PATCH", "/skydns/services/1001", {"TTL": 30})
        self.call("PUT", "/skydns/services/1001", service())
        self.call("DELETE", "/skydns/services/1001")
        info = [e["change"] for e in events if e["log_level"] >= LogLevel.info]
        self.assertEqual(info, ["register", "unregister"])


def _event(**extra: Any) -> LogEvent:
    event: LogEvent = {
        "log_format": "registered {uuid} at {host}",
        "log_level": LogLevel.info,
        "log_namespace": "skydns.registry",
        "log_time": 1_764_050_000.25,
        "log_source": None,
        "log_logger": object(),
    }
    event.update(extra)
    return event


class JSONTests(SynchronousTestCase):
    def test_event_as_one_json_line(self) -> None:
        """An event becomes one line of JSON: time, level, namespace, the
        formatted message and its own fields; no log_ internals."""
        line = event_as_json(_event(uuid="1001", host="10.0.0.1", port=80, live=True))
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        record = json.loads(line)
        self.assertEqual(
            record,
            {
                "time": "2025-11-25T05:53:20.250Z",
                "level": "info",
                "namespace": "skydns.registry",
                "message": "registered 1001 at 10.0.0.1",
                "uuid": "1001",
                "host": "10.0.0.1",
                "port": 80,
                "live": True,
            },
        )

    def test_unserialisable_values_and_newlines(self) -> None:
        """Values JSON cannot carry are written as their repr; a newline in
        a value stays inside the one line."""
        record = json.loads(
            event_as_json(_event(uuid="a\nb", host=b"raw", extra={1, 2}))
        )
        self.assertEqual(record["uuid"], "a\nb")
        self.assertEqual(record["host"], "b'raw'")
        self.assertEqual(record["extra"], "{1, 2}")

    def test_failure_traceback(self) -> None:
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            failure = Failure()
        record = json.loads(event_as_json(_event(log_failure=failure, uuid="x", host="y")))
        self.assertIn("ZeroDivisionError", record["traceback"])

    def test_fields_cannot_shadow_header(self) -> None:
        """A field named like a header key does not replace it."""
        record = json.loads(event_as_json(_event(uuid="u", host="h", level="fake")))
        self.assertEqual(record["level"], "info")


class ObserverTests(SynchronousTestCase):
    def emit(self, observer: Any) -> None:
        log = Logger(namespace="skydns.test", observer=observer)
        log.debug("renewed {uuid}", uuid="d")
        log.info("registered {uuid}", uuid="i")
        log.warn("callback {uuid} failed", uuid="w")

    def test_json_lines_at_info(self) -> None:
        """--log-format json --log-level info: one JSON object per line,
        debug events left out."""
        out = io.StringIO()
        self.emit(log_observer("json", "info", out=out))
        lines = out.getvalue().splitlines()
        self.assertEqual([json.loads(x)["uuid"] for x in lines], ["i", "w"])
        self.assertEqual([json.loads(x)["level"] for x in lines], ["info", "warn"])

    def test_debug_level(self) -> None:
        out = io.StringIO()
        self.emit(log_observer("json", "debug", out=out))
        self.assertEqual(len(out.getvalue().splitlines()), 3)

    def test_twisted_connection_chatter_only_at_debug(self) -> None:
        """Twisted's "Starting factory" and "Scheduling retry" info lines
        (once per connection attempt) are left out at info, kept at debug;
        their warnings always show."""
        for level, expected in (("info", ["warn"]), ("debug", ["info", "warn"])):
            out = io.StringIO()
            observer = log_observer("json", level, out=out)
            for namespace in ("twisted.internet.protocol.Factory",
                              "twisted.application._client_service.ClientService"):  # fmt: skip
                log = Logger(namespace=namespace, observer=observer)
                log.info("Starting factory {f}", f="x")
                log.warn("something is wrong")
            lines = [json.loads(x) for x in out.getvalue().splitlines()]
            self.assertEqual(sorted({r["level"] for r in lines}), expected)
            self.assertEqual(len(lines), 2 * len(expected))

    def test_text(self) -> None:
        """The text format is Twisted's readable one, level-filtered too."""
        out = io.StringIO()
        self.emit(log_observer("text", LogLevel.warn, out=out))
        [line] = out.getvalue().splitlines()
        self.assertIn("[skydns.test#warn] callback w failed", line)

    def test_destination_follows_twistd(self) -> None:
        """-n without --logfile, or --logfile -, writes to stdout; --logfile
        PATH to that file; --syslog or --logger keep twistd's own choice."""
        self.assertIsNone(log_observer("json", twistd={"syslog": True, "nodaemon": True}))
        self.assertIsNone(log_observer("json", twistd={"logger": "x.y", "nodaemon": True}))
        path = os.path.join(tempfile.mkdtemp(), "skydns.log")
        observer = log_observer("json", twistd={"logfile": path, "nodaemon": True})
        assert observer is not None
        Logger(namespace="n", observer=observer).info("hello {who}", who="file")
        with open(path) as f:
            self.assertEqual(json.loads(f.read())["who"], "file")
        stdout = log_observer("text", twistd={"logfile": "-", "nodaemon": True})
        self.assertIs(stdout.out, sys.stdout)  # type: ignore[union-attr]
        stdout = log_observer("text", twistd={"logfile": "", "nodaemon": True})
        self.assertIs(stdout.out, sys.stdout)  # type: ignore[union-attr]

    def test_rotated_logfile_collects_per_turn(self) -> None:
        """--logfile PATH with a running reactor: twistd's rotating LogFile
        gets a turn's lines in one write, and keeps rotating."""
        directory = tempfile.mkdtemp()
        path = os.path.join(directory, "skydns.log")
        reactor = MemoryReactorClock()
        reactor.running = True
        observer = log_observer("text", twistd={"logfile": path, "nodaemon": True}, reactor=reactor)
        assert isinstance(observer, LogWriter)
        observer.in_reactor_thread = lambda: True
        observer.out.rotateLength = 200  # type: ignore[attr-defined]
        log = Logger(namespace="n", observer=observer)
        for i in range(3):
            log.info("line {i} " + "x" * 80, i=i)
        self.assertEqual(os.path.getsize(path), 0)
        reactor.advance(0)
        log.info("after the turn")
        reactor.advance(0)
        with open(path + ".1") as f:
            self.assertEqual(len(f.read().splitlines()), 3)
        with open(path) as f:
            self.assertIn("after the turn", f.read())
        observer.out.close()  # type: ignore[attr-defined]

    def test_rotated_files_are_bounded(self) -> None:
        """A log file is rotated at the size given and only the newest
        ``keep`` rotated files stay: a busy node does not fill its disk."""
        directory = tempfile.mkdtemp()
        path = os.path.join(directory, "skydns.log")
        observer = log_observer("text", twistd={"logfile": path}, rotate_size=1000, keep=3)
        assert isinstance(observer, LogWriter)
        log = Logger(namespace="n", observer=observer)
        for i in range(200):
            log.info("registered {i} " + "x" * 80, i=i)
        observer.out.close()  # type: ignore[attr-defined]
        expected = ["skydns.log", "skydns.log.1", "skydns.log.2", "skydns.log.3"]
        self.assertEqual(sorted(os.listdir(directory)), expected)
        with open(path + ".1") as f:
            newest_rotated = f.read()
        self.assertLessEqual(len(newest_rotated), 1000 + 200)
        self.assertIn("registered 1", newest_rotated)

    def test_json_observer_factory(self) -> None:
        """The zero-argument factory for twistd --logger gives a JSON observer."""
        self.assertTrue(ILogObserver.providedBy(json_observer()))

    def test_parse(self) -> None:
        self.assertEqual(parse_log_format(" JSON "), "json")
        self.assertEqual(parse_log_level("Warn"), LogLevel.warn)
        self.assertRaises(ValueError, parse_log_format, "xml")
        self.assertRaises(ValueError, parse_log_level, "verbose")
        self.assertRaises(ValueError, log_observer, "xml", out=io.StringIO())


class LogWriterTests(SynchronousTestCase):
    """With a running reactor, lines are written once per reactor turn."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.running = True
        self.out = io.StringIO()
        self.writes: list[str] = []
        write = self.out.write

        def counting(text: str) -> int:
            self.writes.append(text)
            return write(text)

        self.out.write = counting  # type: ignore[method-assign]
        self.in_reactor = True
        self.writer = LogWriter(
            self.out, lambda e: e["log_format"] + "\n", LogLevelFilterPredicate(LogLevel.info),
            self.reactor, in_reactor_thread=lambda: self.in_reactor,
        )  # fmt: skip
        self.log = Logger(namespace="skydns.test", observer=self.writer)

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def test_written_once_per_turn(self) -> None:
        """Info lines wait for the end of the reactor turn, then go out in one write."""
        self.log.info("one")
        self.log.info("two")
        self.assertEqual(self.lines(), [])
        self.reactor.advance(0)
        self.assertEqual(self.lines(), ["one", "two"])
        self.assertEqual(self.writes, ["one\ntwo\n"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_warn_and_above_at_once_in_order(self) -> None:
        """A warning, error or critical line is written at once, after the
        lines collected before it."""
        for level in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            self.log.info("before " + level.name)
            self.log.emit(level, level.name + "!")
        self.log.info("later")
        self.assertEqual(
            self.lines(),
            ["before warn", "warn!", "before error", "error!", "before critical", "critical!"],
        )
        self.reactor.advance(0)
        self.assertEqual(self.lines()[-1], "later")

    def test_flush_on_shutdown(self) -> None:
        """flush (the after-shutdown trigger) writes what was collected and
        leaves no pending call."""
        self.log.info("stopping")
        self.writer.flush()
        self.assertEqual(self.lines(), ["stopping"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.writer.flush()
        self.assertEqual(len(self.writes), 1)

    def test_reactor_not_running(self) -> None:
        """Before the reactor runs and after it stopped, every line is
        written at once (with the lines still collected first); so is every
        line when no reactor is given."""
        self.log.info("collected")
        self.reactor.running = False
        self.log.info("stopped")
        self.assertEqual(self.lines(), ["collected", "stopped"])
        out = io.StringIO()
        writer = LogWriter(out, lambda e: "x\n", LogLevelFilterPredicate(LogLevel.info))
        Logger(namespace="n", observer=writer).info("x")
        self.assertEqual(out.getvalue(), "x\n")

    def test_other_threads_written_at_once(self) -> None:
        """A line from another thread is written at once, after the
        reactor thread's collected lines."""
        self.log.info("reactor")
        self.in_reactor = False
        self.log.info("thread")
        self.assertEqual(self.lines(), ["reactor", "thread"])

    def test_threads_lose_no_lines(self) -> None:
        """Lines logged from several threads at once are all written, whole."""
        main_thread = threading.main_thread()
        self.writer.in_reactor_thread = lambda: threading.current_thread() is main_thread

        def spam(name: str) -> None:
            for i in range(300):
                self.log.info(f"{name} {i}")

        threads = [threading.Thread(target=spam, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        spam("main")
        for thread in threads:
            thread.join()
        self.writer.flush()
        lines = self.lines()
        self.assertEqual(len(lines), 5 * 300)
        names = ("t0", "t1", "t2", "t3", "main")
        self.assertEqual(set(lines), {f"{name} {i}" for name in names for i in range(300)})
        main = [line for line in lines if line.startswith("main ")]
        self.assertEqual(main, [f"main {i}" for i in range(300)])

    def test_burst_written_without_waiting(self) -> None:
        """A turn that logs more than max_lines writes them as it goes."""
        for i in range(LogWriter.max_lines):
            self.log.info(f"{i}")
        self.assertEqual(len(self.lines()), LogWriter.max_lines)
        self.log.info("next")
        self.assertEqual(len(self.lines()), LogWriter.max_lines)
        self.reactor.advance(0)
        self.assertEqual(self.lines()[-1], "next")

    def test_level_filter_as_twisted(self) -> None:
        """The writer keeps exactly the events Twisted's level filter keeps,
        by namespace (with per-namespace levels), level, and events with no
        level or namespace."""
        predicate = LogLevelFilterPredicate(LogLevel.info)
        predicate.setLogLevelForNamespace("twisted.internet.protocol", LogLevel.warn)
        predicate.setLogLevelForNamespace("skydns.raft", LogLevel.debug)
        ours: list[str] = []
        writer = LogWriter(io.StringIO(), lambda e: ours.append(e["log_format"]) or None, predicate)
        theirs: list[str] = []
        filtering = FilteringLogObserver(
            cast(ILogObserver, lambda e: theirs.append(e["log_format"])), [predicate]
        )
        namespaces = ("skydns", "skydns.raft", "skydns.raft.node.driver",
                      "twisted.internet.protocol", "twisted.internet.protocol.Factory", "twisted",
                      "", None)  # fmt: skip
        events: list[LogEvent] = []
        for namespace in namespaces:
            for level in (*LogLevel.iterconstants(), None):
                events.append({"log_format": f"{namespace} {level}", "log_namespace": namespace,
                               "log_level": level})  # fmt: skip
        events.append({"log_format": "bare"})
        for event in events * 2:
            writer(dict(event))
            filtering(dict(event))
        self.assertEqual(ours, theirs)
        self.assertIn(f"skydns.raft.node.driver {LogLevel.debug}", ours)
        self.assertNotIn(f"twisted.internet.protocol.Factory {LogLevel.info}", ours)


class RootServiceTests(SynchronousTestCase):
    def test_gives_twistd_the_observer(self) -> None:
        """Attached to twistd's Application, the root service sets it as the
        application's ILogObserver, which twistd uses when not given --logger."""
        observer = log_observer("json", out=io.StringIO())
        application = Application("skydns")
        root = RootService(observer)
        root.setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), observer)
        self.assertIn(root, list(IServiceCollection(application)))

    def test_no_observer_leaves_twistd_alone(self) -> None:
        application = Application("skydns")
        RootService(None).setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))


class SiteTests(SynchronousTestCase):
    def api(self) -> Any:
        return make_api(LocalCluster(Registry(), clock=Clock()), Clock(), "skydns.local")

    def test_quiet_by_default(self) -> None:
        """The default site writes no access log line for a request."""
        site = make_site(self.api().resource())
        self.assertIsInstance(site, QuietSite)
        self.assertFalse(site.displayTracebacks)
        with capturedLogs() as events:
            site.startFactory()
            try:
                request = DummyRequest([b"health"])
                request.uri = b"/health"
                request.code = 200  # type: ignore[attr-defined]
                request.sentLength = 3  # type: ignore[attr-defined]
                site.log(request)  # type: ignore[arg-type]
            finally:
                site.stopFactory()
        self.assertEqual(list(events), [])

    def test_access_log_file(self) -> None:
        """--access-log PATH writes one combined-format line per request there."""
        path = os.path.join(tempfile.mkdtemp(), "access.log")
        site = make_site(self.api().resource(), access_log=path)
        site.startFactory()
        try:
            request = DummyRequest([b"health"])
            request.uri = b"/health"
            request.code = 200  # type: ignore[attr-defined]
            request.sentLength = 3  # type: ignore[attr-defined]
            site.log(request)  # type: ignore[arg-type]
        finally:
            site.stopFactory()
        with open(path) as f:
            [line] = f.read().splitlines()
        self.assertIn('"GET /health', line)



class LogThrottleTests(SynchronousTestCase):
    def test_one_line_per_key_per_interval(self) -> None:
        """Within the interval a key is held back (counted); after it, the
        next line carries the count; keys are independent."""
        clock = Clock()
        throttle = LogThrottle(clock, interval=10.0)
        self.assertEqual(throttle.allow("a"), 0)
        self.assertIsNone(throttle.allow("a"))
        self.assertIsNone(throttle.allow("a"))
        self.assertEqual(throttle.allow("b"), 0)
        clock.advance(9.9)
        self.assertIsNone(throttle.allow("a"))
        clock.advance(0.1)
        self.assertEqual(throttle.allow("a"), 3)
        self.assertIsNone(throttle.allow("a"))


class AddressTextTests(SynchronousTestCase):
    def test_host_and_port(self) -> None:
        """Peers read as host:port in log lines and JSON fields, IPv6 in brackets."""
        from twisted.internet.address import IPv4Address, IPv6Address

        self.assertEqual(address_text(IPv4Address("TCP", "203.0.113.7", 40123)),
                         "203.0.113.7:40123")  # fmt: skip
        self.assertEqual(address_text(IPv6Address("TCP", "2001:db8::1", 53)), "[2001:db8::1]:53")
        self.assertEqual(address_text(None), "None")


class LogFileOptionsTests(SynchronousTestCase):
    def test_defaults_and_bad_values(self) -> None:
        """``--log-rotate-size`` and ``--log-keep``: bounded by default, and
        nonsense is refused with the flag's name."""
        from twisted.python import usage

        from skydns.tap import Options

        options = Options()
        options.parseOptions([])
        self.assertEqual((options["log-rotate-size"], options["log-keep"]), (10_000_000, 10))
        options = Options()
        options.parseOptions(["--log-rotate-size", "50000", "--log-keep", "2"])
        self.assertEqual((options["log-rotate-size"], options["log-keep"]), (50_000, 2))
        for flag, value in [("--log-rotate-size", "10MB"), ("--log-rotate-size", "999"),
                            ("--log-keep", "0"), ("--log-keep", "-1")]:  # fmt: skip
            with self.assertRaises(usage.UsageError) as raised:
                Options().parseOptions([flag, value])
            self.assertIn(flag, str(raised.exception))
