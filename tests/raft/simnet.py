"""The simulation's network, behind the node's `IRaftTransport` seam.

Messages take ``delay_min..delay_max`` seconds, sometimes up to
``long_delay_max``; links are FIFO (as AMP's TCP connections are) unless a
message overtakes (``reorder``); a message may be dropped or duplicated.
Partitions block directed links, so cuts may be one-way; a message on a
blocked link is lost.  Calls (forwarded proposals, membership changes) are
a request and an answer, each a message that may be lost: a lost one makes
the caller's Deferred fail with `PeerUnavailable` after ``call_timeout``,
as the AMP transport does.  When a process dies its peers' connections to
it break, and the transport tells their nodes (`peer_unreachable`); a
partition breaks nothing (TCP stays silent).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

from attrs import define
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.raft.core.messages import Message
from skydns.raft.net.interface import IRaftHandler, IRaftTransport, PeerUnavailable

if TYPE_CHECKING:
    from tests.raft.world import Host


@define
class NetConfig:
    delay_min: float = 0.0005
    delay_max: float = 0.002
    long_delay: float = 0.0
    long_delay_max: float = 0.05
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    call_timeout: float = 0.2


class SimNetwork:
    def __init__(self, rng: random.Random, config: NetConfig, faults: Counter[str]) -> None:
        self.rng = rng
        self.config = config
        self.faults = faults
        self.hosts: dict[str, Host] = {}
        self.blocked: set[tuple[str, str]] = set()
        self._link_clock: dict[tuple[str, str], float] = {}
        #: Observers of every message sent (tests may use it to cut links).
        self.observers: list[Callable[[Message], None]] = []
        #: A message for which one of these is true is lost as it is sent.
        self.filters: list[Callable[[Message], bool]] = []

    def _delay(self) -> float:
        c = self.config
        delay = self.rng.uniform(c.delay_min, c.delay_max)
        if c.long_delay and self.rng.random() < c.long_delay:
            self.faults["long delay"] += 1
            delay = self.rng.uniform(c.delay_max, c.long_delay_max)
        return delay

    def carry(self, src: str, dst: str, deliver: Callable[[], None], fifo: bool = True) -> bool:
        """Send one packet from ``src`` to ``dst``; False if it is lost at once."""
        c = self.config
        if c.drop and self.rng.random() < c.drop:
            self.faults["dropped"] += 1
            return False
        copies = 1
        if c.duplicate and self.rng.random() < c.duplicate:
            self.faults["duplicated"] += 1
            copies = 2
        source = self.hosts.get(src)
        now = source.clock.seconds() if source is not None else 0.0
        for _ in range(copies):
            when = now + self._delay()
            link = (src, dst)
            if c.reorder and self.rng.random() < c.reorder:
                self.faults["reordered"] += 1
            elif fifo:
                when = max(when, self._link_clock.get(link, 0.0))
                self._link_clock[link] = when
            target = self.hosts.get(dst)
            if target is None or not target.up:
                continue
            incarnation = target.incarnation

            def arrive(target: Host = target, incarnation: int = incarnation) -> None:
                if (src, dst) in self.blocked:
                    self.faults["partitioned"] += 1
                    return
                if target.incarnation == incarnation and target.up:
                    deliver()

            target.clock.io(when - now, arrive)
        return True

    def send(self, message: Message) -> None:
        for observer in self.observers:
            observer(message)
        if any(lose(message) for lose in self.filters):
            self.faults["lost on purpose"] += 1
            return

        def deliver() -> None:
            host = self.hosts[message.dst]
            if host.transport is not None:
                host.transport.callers.add(message.src)
            removed = host.handler.inbox.receive(message)
            if removed is not None:  # the answer goes back on the same connection
                self.carry(message.dst, message.src,
                           lambda: self._notice(message.src, message.dst, message.src, removed))

        if message.dst in self.hosts:
            self.carry(message.src, message.dst, deliver)

    def _notice(self, to: str, src: str, dst: str, index: int) -> None:
        self.hosts[to].handler.inbox.removed_notice(src, dst, index)

    def call(
        self, src: str, dst: str, make: Callable[[IRaftHandler], Deferred[Any]]
    ) -> Deferred[Any]:
        """A request from ``src`` to ``dst`` and its answer (or PeerUnavailable)."""
        source = self.hosts[src]
        target = self.hosts.get(dst)
        if target is None or not target.up or (src, dst) in self.blocked:
            return fail(PeerUnavailable(f"not connected to {dst}"))
        answer: Deferred[Any] = Deferred()
        incarnation = source.incarnation

        def reply(result: Any) -> None:
            if source.incarnation != incarnation or answer.called:
                return
            if isinstance(result, Failure):
                answer.errback(result)
            else:
                answer.callback(result)

        def request() -> None:
            d = maybeDeferred(make, self.hosts[dst].handler.inbox)
            d.addBoth(lambda result: self.carry(dst, src, lambda: reply(result)) and None)

        def timeout() -> None:
            if not answer.called:
                answer.errback(PeerUnavailable(f"no answer from {dst} in time"))

        self.carry(src, dst, request)
        source.clock.callLater(self.config.call_timeout, timeout)
        return answer

    @staticmethod
    def _unreachable(host: Host, peer: str) -> None:
        if host.up:
            host.handler.inbox.peer_unreachable(peer)

    def died(self, host_id: str) -> None:
        """``host_id``'s process is gone: its peers' connections to it break."""
        for other in self.hosts.values():
            if other.transport is not None:
                other.transport.callers.discard(host_id)
            if other.id != host_id and other.up and other.started:
                other.clock.io(self._delay(), self._unreachable, other, host_id)


@implementer(IRaftTransport)
class SimTransport:
    """A host's connections: like the AMP transport, it reaches only the
    peers it was given or told about (`add_peer`), and answers those that
    connected to it (`callers`: a leader of a configuration newer than any
    this host holds)."""

    def __init__(self, network: SimNetwork, host_id: str, peers: dict[str, str | None]) -> None:
        self.network = network
        self.host_id = host_id
        self.peers = {p: a for p, a in peers.items() if p != host_id and a}
        self.handler: IRaftHandler | None = None
        self.callers: set[str] = set()

    def start(self, handler: IRaftHandler) -> None:
        self.handler = handler
        self.network.hosts[self.host_id].transport = self

    def stop(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    def send(self, message: Message) -> None:
        if message.dst in self.peers or message.dst in self.callers:
            self.network.send(message)

    def forward(self, to: str, data: bytes) -> Deferred[tuple[int, int]]:
        if to not in self.peers:
            return fail(PeerUnavailable(f"{to} is not a peer"))
        return self.network.call(self.host_id, to, lambda h: h.accept_proposal(data))

    def ask(self, to: str, data: bytes) -> Deferred[bytes]:
        if to not in self.peers:
            return fail(PeerUnavailable(f"{to} is not a peer"))
        return self.network.call(self.host_id, to, lambda h: h.answer_leader_request(data))

    def change_member(
        self, to: str, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        if to not in self.peers:
            return fail(PeerUnavailable(f"{to} is not a peer"))
        return self.network.call(
            self.host_id, to, lambda h: h.change_member(op, member_id, address)
        )

    def add_peer(self, peer_id: str, address: str) -> None:
        self.peers[peer_id] = address

    def remove_peer(self, peer_id: str) -> None:
        self.peers.pop(peer_id, None)
