"""The feed that keeps a DNS worker's registry equal to the node's, and the
node's supervision of worker processes (``--dns-workers``)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Command, Register, encode
from skydns.dns.workers import supervisor
from skydns.dns.workers.frames import COMMAND, SNAPSHOT, FrameError, FrameReader, frame
from skydns.dns.workers.replica import RegistryCopy
from skydns.dns.workers.supervisor import DNSWorkers
from skydns.registry import Registry
from tests.test_registry import commands, service


class FeedTests(SynchronousTestCase):
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(commands, max_size=15), st.lists(commands, max_size=15),
           st.lists(st.integers(1, 64), min_size=1, max_size=20))  # fmt: skip
    def test_copy_equals_the_node(self, before: list[Command], after: list[Command],
                                  cuts: list[int]) -> None:  # fmt: skip
        """A snapshot taken after ``before``, then ``after`` as commands, in
        chunks of any size: the copy holds what the node holds, version included."""
        node = Registry()
        for command in before:
            node.apply(command)
        stream = frame(SNAPSHOT, node.snapshot())
        for command in after:
            node.apply(command)
            stream += frame(COMMAND, encode(command))
        ready: list[bool] = []
        copy = RegistryCopy(Registry(), lambda: ready.append(True))
        at = 0
        while at < len(stream):
            step = cuts[at % len(cuts)]
            copy.data_received(stream[at:at + step])
            at += step
        self.assertEqual(ready, [True])
        self.assertEqual(copy.registry, node)
        self.assertEqual(copy.registry.version, node.version)

    def test_a_broken_stream_is_an_error(self) -> None:
        with self.assertRaises(FrameError):
            list(FrameReader().feed(b"\x00\x00\x00\x01X!"))
        with self.assertRaises(FrameError):
            list(FrameReader().feed(b"\xff\xff\xff\xffC"))

    def test_commands_wait_for_the_first_snapshot(self) -> None:
        """Nothing answers from an empty copy: `ready` only with the snapshot."""
        ready: list[bool] = []
        copy = RegistryCopy(Registry(), lambda: ready.append(True))
        copy.data_received(frame(COMMAND, encode(Register(service("early"), 0.0))))
        self.assertEqual((ready, len(copy.registry)), ([], 0))


class FakeTransport:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.signals: list[str] = []
        self.producer: Any = None
        self.pipes = {0: self}

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        self.producer = producer

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    @property
    def written(self) -> bytes:
        return b"".join(self.chunks)

    def signalProcess(self, name: str) -> None:  # noqa: N802
        self.signals.append(name)


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, list[str]]] = []

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], env: Any = None,
                     childFDs: Any = None) -> None:  # noqa: N802,N803  # fmt: skip
        protocol.makeConnection(FakeTransport())
        self.spawned.append((protocol, args))


def frames_of(data: bytes) -> list[tuple[bytes, bytes]]:
    return list(FrameReader().feed(data))


class SupervisorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.registry = Registry()
        self.registry.apply(Register(service("first"), 0.0))
        self.workers = DNSWorkers(2, ["--domain", "example.internal"], self.registry,
                                  self.reactor, lambda: "127.0.0.1:5353")  # fmt: skip
        self.workers.startService()

    def test_started_with_the_node_options_and_address(self) -> None:
        self.assertEqual(len(self.reactor.spawned), 2)
        args = self.reactor.spawned[0][1]
        self.assertEqual(args[1:3], ["-m", "skydns.dns.workers.main"])
        self.assertEqual(args[-4:], ["--domain", "example.internal", "--dns", "127.0.0.1:5353"])

    def test_fed_the_registry_then_every_command(self) -> None:
        command = Register(service("fed"), 1.0)
        applied = self.registry.apply(command)
        self.workers.on_applied(command, applied, True)
        self.registry.replace_with(Registry.restore(self.registry.snapshot()))
        for worker, _ in self.reactor.spawned:
            kinds = [kind for kind, _ in frames_of(worker.transport.written)]
            self.assertEqual(kinds, [SNAPSHOT, COMMAND, SNAPSHOT])

    def test_a_worker_that_does_not_read_is_started_anew(self) -> None:
        worker = self.reactor.spawned[0][0]
        worker.transport.producer.pauseProducing()
        data = frame(COMMAND, b"x" * (1 << 20))
        for _ in range(supervisor.MAX_BEHIND // len(data) + 1):
            worker.send(data)
        worker.send(data)  # killed: nothing more is sent, nor is it killed again
        self.assertEqual(worker.transport.signals, ["KILL"])
        worker.processEnded(Failure(Exception("killed")))
        self.reactor.advance(supervisor.RESTART_DELAY)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.assertEqual(set(self.workers.workers), {1, 2})

    def test_one_that_cannot_start_is_tried_less_and_less_often(self) -> None:
        """Ending at once again and again doubles the delay (to a minute);
        a worker that ran steadily is started again after a second."""
        delays = []
        for _ in range(8):
            before = len(self.reactor.spawned)
            self.reactor.spawned[-1][0].processEnded(Failure(Exception("exit 2")))
            waited = 0.0
            while len(self.reactor.spawned) == before:
                self.reactor.advance(0.5)
                waited += 0.5
            delays.append(waited)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0])
        self.reactor.advance(supervisor.STEADY)
        self.reactor.spawned[-1][0].processEnded(Failure(Exception("crashed")))
        self.reactor.advance(supervisor.RESTART_DELAY)
        self.assertEqual(self.reactor.spawned[-1][0].started, self.reactor.seconds())

    def test_stopped_with_the_node(self) -> None:
        stopping = self.workers.stopService()
        procs = [p for p, _ in self.reactor.spawned]
        self.assertEqual([p.transport.signals for p in procs], [["TERM"], ["TERM"]])
        procs[0].processEnded(Failure(Exception("ended")))
        self.reactor.advance(supervisor.STOP_TIMEOUT)
        self.assertEqual(procs[1].transport.signals, ["TERM", "KILL"])
        procs[1].processEnded(Failure(Exception("killed")))
        self.successResultOf(stopping)
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.spawned), 2)  # not started again


class CounterTests(SynchronousTestCase):
    """Workers' counters join the node's metrics."""

    def test_growth_is_added_once(self) -> None:
        from skydns.dns.workers.counters import Reported, report
        from skydns.metrics import Metrics

        worker, node = Metrics(), Metrics()
        worker.dns_queries.labels("A", "udp").inc(5)
        node.dns_queries.labels("A", "udp").inc(2)  # the node's own
        reported = Reported()
        reported.add(report(worker), node)
        reported.add(report(worker), node)  # nothing grew: nothing added
        worker.dns_queries.labels("A", "udp").inc(3)
        worker.dns_malformed.inc()
        reported.add(report(worker), node)
        self.assertEqual(node.dns_queries.labels("A", "udp")._value.get(), 10)
        self.assertEqual(node.dns_malformed._value.get(), 1)
        # A worker started again counts from zero: a new Reported.
        again = Metrics()
        again.dns_queries.labels("A", "udp").inc(1)
        Reported().add(report(again), node)
        self.assertEqual(node.dns_queries.labels("A", "udp")._value.get(), 11)

    def test_a_bad_report_adds_nothing(self) -> None:
        from skydns.dns.workers.counters import Reported
        from skydns.metrics import Metrics

        node = Metrics()
        for line in [b"not json", b'[["process_cpu", {}, 1]]', b'[["dns_malformed", [], 1]]',
                     b'[["dns_malformed", {}, 1], ["dns_queries", {}, "x"]]']:  # fmt: skip
            with self.assertRaises((ValueError, TypeError)):
                Reported().add(line, node)
        self.assertEqual(node.dns_malformed._value.get(), 0)

    def test_from_a_worker_process_output(self) -> None:
        from skydns.dns.workers.counters import report
        from skydns.metrics import Metrics

        node, worker = Metrics(), Metrics()
        reactor = FakeReactor()
        workers = DNSWorkers(1, [], Registry(), reactor, lambda: "127.0.0.1:53", node)
        workers.startService()
        process = reactor.spawned[0][0]
        worker.dns_responses.labels("NOERROR").inc(7)
        line = report(worker)
        process.childDataReceived(1, line[:10])
        process.childDataReceived(1, line[10:] + b"garbage\n")  # a bad line is only logged
        self.assertEqual(node.dns_responses.labels("NOERROR")._value.get(), 7)
        self.flushLoggedErrors()
