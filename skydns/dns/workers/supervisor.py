"""The node's side of ``--dns-workers``: it starts the worker processes once
its own DNS sockets are bound, feeds each one the registry and then every
command it applies (`frames`), relays their log lines into its own log,
adds their counters to its metrics (`counters`), starts again one that
ends, and stops them with the node.

A worker that does not read its feed is not allowed to hold the node's
memory: once `MAX_BEHIND` bytes wait for it, it is killed and started anew
(it starts from a fresh snapshot, so it loses nothing)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.commands import Command, encode
from skydns.dns.workers.counters import Reported
from skydns.dns.workers.frames import COMMAND, SNAPSHOT, frame
from skydns.registry import Registry

log = Logger()

#: Bytes of feed a worker may leave unread before it is started anew.
MAX_BEHIND = 64 << 20
#: Longest line kept from a worker's output (a longer one is cut).
MAX_LINE = 1 << 20
#: Seconds before a worker that ended is started again; doubled each time
#: one ends within `STEADY` seconds of its start (a worker that cannot
#: start, say a key file it may not read), up to `MAX_RESTART_DELAY`.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
STEADY = 10.0
#: Seconds a worker has to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0


@implementer(IPushProducer)
class WorkerProcess(ProcessProtocol):
    """One worker: its feed goes to its standard input, its output to our log."""

    def __init__(self, number: int, supervisor: DNSWorkers) -> None:
        self.number = number
        self.supervisor = supervisor
        self.paused = False
        self.killed = False
        #: Bytes written while its pipe was full.
        self.behind = 0
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.started = supervisor.reactor.seconds()
        self._lines = {1: b"", 2: b""}
        #: Its counters as last reported (standard output, `counters`).
        self.counters = Reported()

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        pipe = getattr(self.transport, "pipes", {}).get(0)
        if pipe is not None:
            pipe.registerProducer(self, True)
        self.send(frame(SNAPSHOT, self.supervisor.registry.snapshot()))

    def send(self, data: bytes) -> None:
        if self.transport is None or self.killed:
            return
        if self.paused:
            self.behind += len(data)
            if self.behind > MAX_BEHIND:
                log.warn("DNS worker {n} is {behind} bytes behind its feed: starting it anew",
                         n=self.number, behind=self.behind)  # fmt: skip
                self.killed = True  # nothing more is sent; it starts again once ended
                self.signal("KILL")
                return
        self.transport.write(data)

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's name
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted's name
        self.paused = False
        self.behind = 0

    def stopProducing(self) -> None:  # noqa: N802 - Twisted's name
        self.paused = True

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        lines = (self._lines.get(fd, b"") + data).split(b"\n")
        self._lines[fd] = lines.pop()[-MAX_LINE:]
        for line in lines:
            if fd == 1:
                self.supervisor.counted(self, line)
            elif line.strip():
                log.info("DNS worker {n}: {line}", n=self.number,
                         line=line.decode("utf-8", "replace").strip())  # fmt: skip

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)  # type: ignore[union-attr]
        except Exception:
            pass  # already gone

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 - Twisted's name
        self.supervisor.ended(self, reason)
        self.ended.callback(None)


class DNSWorkers(Service):
    """Runs ``count`` worker processes of ``argv`` (the node's own options)
    answering DNS at ``address()`` (the node's bound HOST:PORT)."""

    def __init__(self, count: int, argv: Sequence[str], registry: Registry, reactor: Any,
                 address: Callable[[], str], metrics: Any = None) -> None:  # fmt: skip
        self.count = count
        #: The node's `skydns.metrics.Metrics`, which the workers' counters join.
        self.metrics = metrics
        self.argv = list(argv)
        self.registry = registry
        self.reactor = reactor
        self.address = address
        self.workers: dict[int, WorkerProcess] = {}
        #: The delay before each worker (by number) is started again.
        self.delays: dict[int, float] = {}
        self._stopping = False
        registry.add_change_listener(self._changed)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "skydns.dns.workers.main", *self.argv,
                "--dns", self.address()]  # fmt: skip

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self._stopping = False
        for number in range(1, self.count + 1):
            self._start(number)

    def _start(self, number: int) -> None:
        if self._stopping or not self.running:
            return
        worker = WorkerProcess(number, self)
        self.workers[number] = worker
        command = self.command()
        self.reactor.spawnProcess(worker, command[0], command, env=None,
                                  childFDs={0: "w", 1: "r", 2: "r"})  # fmt: skip
        log.info("DNS worker {n} started", n=number)

    def counted(self, worker: WorkerProcess, line: bytes) -> None:
        """A worker's counter report: into the node's metrics."""
        if self.metrics is None:
            return
        try:
            worker.counters.add(line, self.metrics)
        except (ValueError, TypeError, AttributeError) as e:
            log.warn("DNS worker {n} sent a report that is not one: {error}",
                     n=worker.number, error=str(e)[:200])  # fmt: skip

    def ended(self, worker: WorkerProcess, reason: Failure) -> None:
        if self.workers.get(worker.number) is worker:
            del self.workers[worker.number]
        if self._stopping:
            return
        steady = self.reactor.seconds() - worker.started >= STEADY
        previous = self.delays.get(worker.number)
        delay = RESTART_DELAY if steady or previous is None else min(
            previous * 2, MAX_RESTART_DELAY)  # fmt: skip
        self.delays[worker.number] = delay
        log.warn("DNS worker {n} ended ({reason}): starting it again in {delay:.0f} s",
                 n=worker.number, reason=reason.getErrorMessage(), delay=delay)  # fmt: skip
        self.reactor.callLater(delay, self._start, worker.number)

    def on_applied(self, command: Command, applied: Any, live: bool) -> None:
        """Apply listener: every worker gets the command, in order."""
        if self.workers:
            self._send_all(frame(COMMAND, encode(command)))

    def _changed(self, touched: Optional[tuple[Any, ...]]) -> None:
        if touched is None and self.workers:  # a snapshot installed: the whole registry
            self._send_all(frame(SNAPSHOT, self.registry.snapshot()))

    def _send_all(self, data: bytes) -> None:
        for worker in list(self.workers.values()):
            worker.send(data)

    def stopService(self) -> defer.Deferred[Any]:  # noqa: N802 - Twisted's name
        super().stopService()
        self._stopping = True
        workers = list(self.workers.values())
        for worker in workers:
            worker.signal("TERM")

        def kill_all() -> None:
            for worker in workers:
                worker.signal("KILL")

        kill = self.reactor.callLater(STOP_TIMEOUT, kill_all)
        done = defer.gatherResults([w.ended for w in workers], consumeErrors=True)

        def stopped(result: Any) -> Any:
            if kill.active():
                kill.cancel()
            return result

        return done.addBoth(stopped)
