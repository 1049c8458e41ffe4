"""The AMP transport: a listening port for peers' connections and one
outgoing connection per peer, re-established with exponential backoff.

Sends are best-effort (dropped while disconnected: the Raft core retries);
a forwarded proposal fails with `PeerUnavailable` when there is no
connection, when it drops mid-call, or when no answer comes in time.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, DeferredList, TimeoutError, fail
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.raft.core.messages import Message
from skydns.raft.net.interface import IRaftHandler, IRaftTransport, PeerUnavailable
from skydns.raft.net.protocol import RaftProtocol, local_error
from skydns.raft.net.tls import tls_error
from skydns.raft.net.wire import MAX_FORWARD_BATCH, ForwardResult
from skydns.throttle import LogThrottle, address_text

log = Logger()

#: Flush a batch of forwarded proposals at this many bytes.
MAX_BATCH_BYTES = 1024 * 1024


#: Seconds between two "cannot reach Raft peer" lines for one peer, and
#: between two "connected"/"lost the connection" lines for one peer (a peer
#: that takes the connection and drops it at once, e.g. one whose CA does not
#: trust our certificate, would otherwise log a pair every attempt).
UNREACHABLE_LOG_INTERVAL = 60.0


def why(reason: Failure) -> str:
    """A failed attempt or a lost connection in a few words."""
    words = tls_error(reason)
    if words is not None:
        return "TLS: " + words
    return reason.getErrorMessage() or type(reason.value).__name__


def _held(count: int) -> str:
    return f" ({count} more like it not logged)" if count else ""


@implementer(IStreamClientEndpoint)
class _NotingFailures:
    """A peer's endpoint that notes why its last attempt failed."""

    def __init__(self, endpoint: IStreamClientEndpoint, note: Callable[[str], None]) -> None:
        self.endpoint = endpoint
        self.note = note

    def connect(self, protocolFactory: Any) -> Deferred[Any]:  # noqa: N803 - Twisted's name
        def failed(reason: Failure) -> Failure:
            self.note(why(reason))
            return reason

        connecting: Deferred[Any] = self.endpoint.connect(protocolFactory)
        return connecting.addErrback(failed)


class _RaftFactory(Factory):
    """Raft connections' factory: no "Starting factory" lines; Twisted logs
    "Raft starting on 7070" as it listens."""

    noisy = False

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "Raft"


# --- peers --------------------------------------------------------------------


class _Peer:
    """The outgoing connection to one peer, re-established with backoff."""

    def __init__(
        self,
        peer_id: str,
        endpoint: IStreamClientEndpoint,
        factory: Callable[[], RaftProtocol],
        clock: IReactorTime,
        call_timeout: float,
        on_lost: Callable[[str], None] = lambda _: None,
    ) -> None:
        """``on_lost`` is told when an established connection breaks."""
        self.peer_id = peer_id
        self.on_lost = on_lost
        self.clock = clock
        self.call_timeout = call_timeout
        self.protocol: RaftProtocol | None = None
        self._batch: list[tuple[bytes, Deferred[tuple[int, int]]]] = []
        self._batch_bytes = 0
        self._flush_call: IDelayedCall | None = None
        self._backoff = backoffPolicy(initialDelay=0.05, maxDelay=1.0, factor=2.0)
        self._unreachable = LogThrottle(clock, UNREACHABLE_LOG_INTERVAL)
        self._comings_and_goings = LogThrottle(clock, UNREACHABLE_LOG_INTERVAL)
        #: Why the last attempt to connect failed.
        self.last_failure = ""
        self.service = ClientService(
            _NotingFailures(endpoint, self._note_failure),
            _RaftFactory.forProtocol(factory),  # type: ignore[arg-type]
            retryPolicy=self._retry,
            clock=clock,
            prepareConnection=self._connected,  # type: ignore[arg-type]
        )

    def _retry(self, attempt: int) -> float:
        """The backoff before the next attempt; a peer that stays out of
        reach is logged once a minute (attempts come every second)."""
        if self._unreachable.allow(self.peer_id) is not None:
            log.info(
                "cannot reach Raft peer {peer} ({attempts} failed attempts in a row, "
                "the last: {reason}); retrying",
                peer=self.peer_id, attempts=attempt, reason=self.last_failure or "unknown",
            )  # fmt: skip
        return self._backoff(attempt)

    def _note_failure(self, reason: str) -> None:
        self.last_failure = reason

    def _connected(self, protocol: RaftProtocol) -> None:
        # ``protocol`` is ClientService's proxy, which forwards method calls
        # (but not attribute assignment) to our RaftProtocol.
        self.protocol = protocol
        protocol.watch_lost(lambda _: self._lost(protocol))
        held = self._comings_and_goings.allow("connected")
        if held is not None:
            log.info("connected to Raft peer {peer}" + _held(held), peer=self.peer_id)

    def _lost(self, protocol: RaftProtocol) -> None:
        if self.protocol is protocol:
            self.protocol = None
            if not self.service.running:
                return
            reason = protocol.lost_reason
            self.last_failure = "lost the connection" if reason is None else why(reason)
            self.on_lost(self.peer_id)
            held = self._comings_and_goings.allow("lost")
            if held is not None:
                log.info(
                    "lost the connection to Raft peer {peer}: {reason}" + _held(held),
                    peer=self.peer_id, reason="unknown" if reason is None else why(reason),
                )  # fmt: skip

    def send(self, message: Message) -> None:
        if self.protocol is None:
            return  # the core retries what is lost
        try:
            self.protocol.send_message(message)
        except Exception:
            log.failure("cannot send {kind} to {peer}", kind=type(message).__name__,
                        peer=self.peer_id)  # fmt: skip

    def forward(self, data: bytes) -> Deferred[tuple[int, int]]:
        """Queue ``data``: the proposals of one reactor turn go in one call."""
        if self.protocol is None:
            return fail(PeerUnavailable(f"not connected to {self.peer_id}"))
        d: Deferred[tuple[int, int]] = Deferred()
        self._batch.append((data, d))
        self._batch_bytes += len(data)
        if len(self._batch) >= MAX_FORWARD_BATCH or self._batch_bytes >= MAX_BATCH_BYTES:
            self._flush()
        elif self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)
        return d

    def ask(self, data: bytes) -> Deferred[bytes]:
        if self.protocol is None:
            return fail(PeerUnavailable(f"not connected to {self.peer_id}"))
        return self.protocol.ask(data).addTimeout(10.0, self.clock)

    def change_member(
        self, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        if self.protocol is None:
            return fail(PeerUnavailable(f"not connected to {self.peer_id}"))
        call = self.protocol.change_member(op, member_id, address)
        return call.addTimeout(30.0, self.clock)

    def drop_batch(self) -> None:
        """Fail the proposals not yet sent (the transport is stopping)."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        for _, d in batch:
            d.errback(PeerUnavailable("the transport stopped"))

    def _flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if not batch:
            return
        if self.protocol is None:
            for _, d in batch:
                d.errback(PeerUnavailable(f"not connected to {self.peer_id}"))
            return
        call = self.protocol.forward_many([data for data, _ in batch])
        call.addTimeout(self.call_timeout, self.clock)

        def answered(results: list[ForwardResult]) -> None:
            for (_, d), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    d.errback(result)
                else:
                    d.callback(result)

        def failed(failure: Failure) -> None:
            error = local_error(failure).value
            for _, d in batch:
                d.errback(error)

        call.addCallbacks(answered, failed)


@implementer(IRaftTransport)
class AMPTransport:
    """`IRaftTransport` over AMP: listens on ``endpoint`` for peers'
    connections and keeps one outgoing connection to each peer.

    A message to a node that is no peer goes back over the connection that
    node last sent one on: a leader of a configuration newer than any this
    node holds (it restarted with a stale log) must be answered to bring it
    up to date, though its address is not known here yet."""

    def __init__(
        self,
        endpoint: IStreamServerEndpoint | None,
        peers: dict[str, IStreamClientEndpoint],
        clock: IReactorTime,
        call_timeout: float = 2.0,
        listen_failed: Callable[[Failure], None] | None = None,
        connect: Callable[[str, str], IStreamClientEndpoint] | None = None,
    ) -> None:
        """``connect`` makes the endpoint of a member added at run time."""
        self.endpoint = endpoint
        self.connect = connect
        self.listen_failed = listen_failed
        self.clock = clock
        self.handler: IRaftHandler | None = None
        self.port: IListeningPort | None = None
        self.inbound: set[RaftProtocol] = set()
        #: The inbound connection each node last sent a message on.
        self._callers: dict[str, RaftProtocol] = {}
        self.call_timeout = call_timeout
        #: What every connection's protocol drops is logged through this.
        self._drops = LogThrottle(clock)
        self._started = False
        self._peers = {
            peer_id: self._peer(peer_id, ep) for peer_id, ep in peers.items()
        }
        self._listening: Deferred[Any] | None = None

    def _peer(self, peer_id: str, endpoint: IStreamClientEndpoint) -> _Peer:
        return _Peer(peer_id, endpoint, self._make_protocol, self.clock, self.call_timeout,
                     self._unreachable)  # fmt: skip

    def _unreachable(self, peer_id: str) -> None:
        if self.handler is not None and self._started:
            self.handler.peer_unreachable(peer_id)

    def _make_protocol(self) -> RaftProtocol:
        return RaftProtocol(self.handler, self._drops)

    def _accept(self) -> RaftProtocol:
        protocol = self._make_protocol()
        self.inbound.add(protocol)
        protocol.on_lost = self._inbound_lost
        protocol.on_message_from = self._callers.__setitem__
        return protocol

    def _inbound_lost(self, protocol: RaftProtocol) -> None:
        self.inbound.discard(protocol)
        for node_id in [n for n, p in self._callers.items() if p is protocol]:
            del self._callers[node_id]

    def start(self, handler: IRaftHandler) -> None:
        self.handler = handler
        if self.endpoint is not None:
            listening = self._listening = self.endpoint.listen(
                _RaftFactory.forProtocol(self._accept)  # type: ignore[arg-type]
            )
            listening.addCallbacks(self._listened, self._listen_failed)
        self._started = True
        for peer in self._peers.values():
            peer.service.startService()

    def add_peer(self, peer_id: str, address: str) -> None:
        """Keep a connection to a member added to the cluster."""
        if peer_id in self._peers:
            return
        if self.connect is None:
            raise ValueError("this transport cannot connect to new members")
        peer = self._peer(peer_id, self.connect(address, peer_id))
        self._peers[peer_id] = peer
        if self._started:
            peer.service.startService()

    def remove_peer(self, peer_id: str) -> None:
        """Drop the connection to a member removed from the cluster."""
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            peer.drop_batch()
            if peer.service.running:
                peer.service.stopService()

    def change_member(
        self, to: str, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        peer = self._peers.get(to)
        if peer is None:
            return fail(PeerUnavailable(f"{to} is not a peer"))
        return peer.change_member(op, member_id, address)

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        log.info("Raft listening on {address}", address=address_text(port.getHost()))

    def _listen_failed(self, failure: Failure) -> None:
        log.failure("cannot listen for Raft peers", failure)
        if self.listen_failed is not None:
            self.listen_failed(failure)

    def stop(self) -> Deferred[None]:
        self._started = False
        stopping: list[Deferred[Any]] = []
        for peer in self._peers.values():
            peer.drop_batch()
            if peer.service.running:
                stopping.append(peer.service.stopService())
        if self.port is not None:
            stopping.append(Deferred.fromCoroutine(_maybe(self.port.stopListening())))
            self.port = None
        for protocol in list(self.inbound):
            if protocol.transport is not None:
                protocol.transport.loseConnection()
        done: Deferred[Any] = DeferredList(stopping, consumeErrors=True)
        return done.addCallback(lambda _: None)

    def send(self, message: Message) -> None:
        peer = self._peers.get(message.dst)
        if peer is not None:
            peer.send(message)
            return
        caller = self._callers.get(message.dst)
        if caller is not None and caller.transport is not None:
            caller.send_message(message)

    def forward(self, to: str, data: bytes) -> Deferred[tuple[int, int]]:
        peer = self._peers.get(to)
        if peer is None:
            return fail(PeerUnavailable(f"{to} is not a peer"))
        return peer.forward(data)

    def ask(self, to: str, data: bytes) -> Deferred[bytes]:
        peer = self._peers.get(to)
        if peer is None:
            return fail(PeerUnavailable(f"{to} is not a peer"))
        return peer.ask(data).addErrback(_unavailable_on_timeout)

    def connected(self, peer_id: str) -> bool:
        peer = self._peers.get(peer_id)
        return peer is not None and peer.protocol is not None


def _unavailable_on_timeout(failure: Failure) -> Failure:
    if failure.check(CancelledError, TimeoutError):
        return Failure(PeerUnavailable("the leader did not answer in time"))
    return failure


async def _maybe(result: Any) -> None:
    if isinstance(result, Deferred):
        await result


__all__ = ["AMPTransport"]
