"""A node's renewals on their way to the leader (`RenewalBatcher`): those
that arrive within a few milliseconds go in one request, so a leader takes
thousands of heartbeats a second in a handful of calls."""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.clock import Scheduler
from skydns.cluster import NotLeader
from skydns.leases.renewal import (
    MAX_RENEWALS,
    Renewal,
    decode_answers,
    encode_renewals,
)

log = Logger()

#: Asks the leader: request bytes to answer bytes.
Ask = Callable[[bytes], "Deferred[bytes]"]


class RenewalBatcher:
    """Collects renewals for ``delay`` seconds (or `MAX_RENEWALS` of them)
    and asks the leader once for all."""

    def __init__(self, ask: Ask, clock: Scheduler, delay: float = 0.002) -> None:
        self.ask = ask
        self.clock = clock
        self.delay = delay
        self._pending: list[tuple[Renewal, Deferred[Optional[int]]]] = []
        self._call: Optional[IDelayedCall] = None

    def renew(self, renewal: Renewal) -> Deferred[Optional[int]]:
        """The leader's answer to ``renewal``; errbacks `NotLeader` when no
        leader takes it now."""
        d: Deferred[Optional[int]] = Deferred()
        self._pending.append((renewal, d))
        if len(self._pending) >= MAX_RENEWALS:
            self.flush()
        elif self._call is None:
            self._call = self.clock.callLater(self.delay, self.flush)
        return d

    def flush(self) -> None:
        """Send what is pending now."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        asked = self.ask(encode_renewals([renewal for renewal, _ in batch]))

        def answered(data: bytes) -> None:
            try:
                answers = decode_answers(data, len(batch))
            except ValueError as e:
                failed(Failure(NotLeader(f"the leader's answer is unreadable: {e}")))
                return
            for (_, d), answer in zip(batch, answers, strict=True):
                d.callback(answer)

        def failed(failure: Failure) -> None:
            reason = failure.getErrorMessage() or "no leader took the renewal"
            for _, d in batch:
                d.errback(NotLeader(reason))

        asked.addCallbacks(answered, failed).addErrback(
            lambda f: log.failure("answering renewals", f)
        )
