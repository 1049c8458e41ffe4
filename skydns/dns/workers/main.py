"""A DNS worker's process (``python -m skydns.dns.workers.main OPTIONS``,
started by the node with its own options): the node's DNS side over a copy
of the registry that the node's feed on standard input keeps current.  It
binds the node's DNS address (SO_REUSEPORT) only once the first snapshot is
in, logs to standard error (the node relays it), reports its counters on
standard output (`counters`), and ends when the feed
ends (the node is gone) or breaks, or on SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Optional

from twisted.internet.protocol import Protocol
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure

log = Logger()

#: Seconds between two reports of the worker's counters to the node.
REPORT_INTERVAL = 1.0


class Feed(Protocol):
    """Standard input: the node's frames, into a `RegistryCopy`."""

    def __init__(self, copy: Any, reactor: Any) -> None:
        self.copy = copy
        self.reactor = reactor
        self.status = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        try:
            self.copy.data_received(data)
        except Exception as e:
            log.error("the node's feed is broken, stopping: {error}", error=str(e))
            self.status = 1
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # noqa: N802
        if self.reactor.running:
            self.reactor.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
    from skydns.options import Options

    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        sys.stderr.write(f"skydns dns worker: {e}\n")
        return 2
    from twisted.internet import reactor, stdio
    from twisted.internet.task import LoopingCall

    from skydns.dns.assemble import build_dns
    from skydns.dns.workers.counters import report
    from skydns.dns.workers.replica import RegistryCopy
    from skydns.gctune import tune_gc
    from skydns.metrics import Metrics
    from skydns.registry import Registry

    level = LogLevelFilterPredicate(LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr, timeFormat=""), [level])],
        redirectStandardIO=False,
    )
    tune_gc()
    registry = Registry()
    metrics = Metrics()
    service = build_dns(options, registry, reactor, metrics, reuse_port=True, tls=False)
    failed = []

    def ready() -> None:
        try:
            service.startService()
        except Exception as e:
            log.error("cannot listen for DNS: {error}", error=str(e))
            failed.append(e)
            reactor.stop()
            return
        log.info("answering DNS on {address} from {count} instances",
                 address=str(options["dns"]), count=len(registry))  # fmt: skip

    feed = Feed(RegistryCopy(registry, ready), reactor)
    stdio.StandardIO(feed, reactor=reactor)

    def send_counters() -> None:
        service.factory.stats.flush()
        if feed.transport is not None:
            feed.transport.write(report(metrics))

    LoopingCall(send_counters).start(REPORT_INTERVAL, now=False)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: service.stopService() if service.running else None)
    reactor.run()
    return 1 if failed or feed.status else 0


if __name__ == "__main__":
    raise SystemExit(main())
