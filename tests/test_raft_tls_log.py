"""Logging of Raft connections dropped during the TLS handshake
(skydns.raft.net.tls): garbage, a stranger's certificate, no certificate or a
connection closed half way is logged once, with the peer and the reason,
rate limited like the cluster key's drops; a connection that completed the
handshake, or that the protocol above closed itself, is not a TLS drop."""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump, connect
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from skydns.raft.net.auth import (
    AuthClientEndpoint,
    AuthenticationFailed,
    HandshakeFactory,
    HandshakeProtocol,
)
from skydns.raft.net.droplog import LOG_INTERVAL, RateLimitedLog
from skydns.raft.net.tls import (
    HANDSHAKE_TIMEOUT,
    RaftTLS,
    TLSClientEndpoint,
    TLSHandshakeFailed,
    TLSServerEndpoint,
    load_tls,
    wrap_tls,
)
from tests.e2e.certs import issue

KEY = b"k" * 32
PEER = IPv4Address("TCP", "203.0.113.7", 40123)
PEER_TEXT = "203.0.113.7:40123"  # as the log shows it


@functools.cache
def identities() -> tuple[RaftTLS, RaftTLS, RaftTLS]:
    """A node's TLS (cluster CA), a second member's, and an impostor's
    (another CA), made once for the module."""
    directory = tempfile.mkdtemp(prefix="skydns-tls-log-")
    ca = issue(directory, "cluster-ca", ip=None)
    other_ca = issue(directory, "other-ca", ip=None)
    made = []
    for name, signer, trust in [("n1", ca, ca), ("n2", ca, ca), ("impostor", other_ca, ca)]:
        leaf = issue(directory, name, signer)
        made.append(load_tls(trust.cert_path, leaf.cert_path, leaf.key_path))
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)
    return made[0], made[1], made[2]


@implementer(IHandshakeListener)
class App(Protocol):
    """What the TLS layer carries; records what reaches it."""

    def __init__(self, built: list[App], abort_at_once: bool = False) -> None:
        self.abort_at_once = abort_at_once
        self.handshake = False
        self.received = b""
        self.lost: Failure | None = None
        built.append(self)

    def connectionMade(self) -> None:
        if self.abort_at_once:
            self.transport.abortConnection()  # type: ignore[union-attr]

    def handshakeCompleted(self) -> None:
        self.handshake = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.lost = reason


class Node:
    """A TLS Raft listener (``n1``'s certificate) on a memory reactor."""

    def __init__(self, drop_log: RateLimitedLog | None = None, abort_at_once: bool = False):
        self.reactor = MemoryReactorClock()
        self.built: list[App] = []
        node, _, _ = identities()
        self.endpoint = TLSServerEndpoint(
            TCP4ServerEndpoint(self.reactor, 4321), node.server_options(), self.reactor,
            drop_log,
        )  # fmt: skip
        self.app: IProtocolFactory = Factory.forProtocol(lambda: App(self.built, abort_at_once))
        self.endpoint.listen(self.wrap(self.app))
        self.factory: IProtocolFactory = self.reactor.tcpServers[0][1]

    def wrap(self, app: IProtocolFactory) -> IProtocolFactory:
        """What TLS carries: the application itself (see `KeyedNode`)."""
        return app

    def client_wrap(self, app: IProtocolFactory) -> IProtocolFactory:
        """What the test's TLS client carries."""
        return app

    @property
    def drop_log(self) -> RateLimitedLog:
        return self.endpoint.log

    def accept_raw(self) -> tuple[Any, StringTransport]:
        """A connection from `PEER` whose bytes the test writes itself."""
        protocol = self.factory.buildProtocol(PEER)
        assert protocol is not None
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def accept_tls(self, client: RaftTLS | None) -> tuple[IOPump, list[App]]:
        """A TLS client (with ``client``'s certificate, or none) from `PEER`,
        pumped until quiet; its application protocols (none, or one)."""
        node, _, _ = identities()
        if client is None:
            options = optionsForClientTLS("127.0.0.1", trustRoot=node.ca)
        else:
            options = client.client_options("127.0.0.1")
        client_built: list[App] = []
        client_app = self.client_wrap(Factory.forProtocol(lambda: App(client_built)))
        client_factory = TLSMemoryBIOFactory(options, True, client_app, self.reactor)
        server = self.factory.buildProtocol(PEER)
        dialler = client_factory.buildProtocol(None)
        pump = connect(
            server, FakeTransport(server, True, peerAddress=PEER),
            dialler, FakeTransport(dialler, False), clock=self.reactor,
        )  # fmt: skip
        return pump, client_built


class KeyedNode(Node):
    """A listener as ``twistd skydns`` builds one with both ``--raft-tls-*``
    and a cluster key: the key's handshake runs inside TLS, and its drops
    go to a log of their own."""

    def __init__(self, client_key: bytes = KEY) -> None:
        self.client_key = client_key
        self.key_log: RateLimitedLog | None = None
        #: The test client's key handshakes (they fire, or fail).
        self.client_ready: list[Deferred[Any]] = []
        super().__init__()

    def wrap(self, app: IProtocolFactory) -> IProtocolFactory:
        self.key_log = RateLimitedLog(self.reactor)
        return HandshakeFactory(app, KEY, self.reactor, is_client=False, drop_log=self.key_log)

    def client_wrap(self, app: IProtocolFactory) -> IProtocolFactory:
        factory = HandshakeFactory(app, self.client_key, self.reactor, is_client=True)
        build = factory.buildProtocol

        def built(addr: Any) -> HandshakeProtocol:
            protocol = build(addr)
            self.client_ready.append(protocol.ready)
            return protocol

        factory.buildProtocol = built  # type: ignore[method-assign]
        return factory


class CapturedWarnings:
    """The drop warnings logged while in use."""

    def __init__(self) -> None:
        self._capturing = capturedLogs()
        self.events: list[LogEvent] = []

    def __enter__(self) -> list[LogEvent]:
        self._all = self._capturing.__enter__()
        return self.events

    def __exit__(self, *exc: object) -> None:
        self._capturing.__exit__(None, None, None)
        self.events[:] = [e for e in self._all if "left_out" in e]


class DropLogTests(SynchronousTestCase):
    def test_garbage_is_logged_with_peer_and_reason(self) -> None:
        """Random bytes instead of a ClientHello: the connection is closed,
        nothing reaches the protocol above, and one warning names the peer
        and OpenSSL's reason."""
        node = Node()
        with CapturedWarnings() as events:
            protocol, transport = node.accept_raw()
            protocol.dataReceived(b"\x16\x03\x01\x00\x05garbage" + b"\x00" * 64)
            self.assertTrue(transport.disconnecting)
            protocol.connectionLost(Failure(ConnectionDone()))
        [app] = node.built
        self.assertEqual(app.received, b"")
        self.assertFalse(app.handshake)
        [event] = events
        self.assertEqual(event["peer"], PEER_TEXT)
        self.assertTrue(event["reason"].startswith("TLS handshake failed: "), event["reason"])
        text = formatEvent(event)
        self.assertIn("203.0.113.7", text)
        self.assertIn("TLS handshake failed", text)
        self.assertEqual(sum(node.drop_log.dropped.values()), 1)

    def test_plain_text_client(self) -> None:
        """A client speaking the cluster key's handshake in clear (no TLS)
        is a failed TLS handshake, logged as such."""
        node = Node()
        with CapturedWarnings() as events:
            protocol, _ = node.accept_raw()
            protocol.dataReceived(b"SKYDNS-RAFTAUTH1" + b"\x01" * 32)
            protocol.connectionLost(Failure(ConnectionDone()))
        [event] = events
        self.assertIn("TLS handshake failed: ", event["reason"])

    def test_closed_before_handshake_finished(self) -> None:
        """A peer that connects and hangs up without finishing the handshake
        is logged as such."""
        node = Node()
        with CapturedWarnings() as events:
            protocol, _ = node.accept_raw()
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            [(e["reason"], e["peer"]) for e in events],
            [("closed before the TLS handshake finished", PEER_TEXT)],
        )

    def test_silent_client_dropped_after_the_handshake_timeout(self) -> None:
        """A peer that connects and never finishes the handshake holds the
        connection for HANDSHAKE_TIMEOUT seconds, then is dropped and logged;
        one that finished in time keeps its connection."""
        node = Node()
        with CapturedWarnings() as events:
            protocol, transport = node.accept_raw()
            node.reactor.advance(HANDSHAKE_TIMEOUT - 0.1)
            self.assertFalse(transport.disconnecting)
            node.reactor.advance(0.1)
            self.assertTrue(transport.disconnecting)
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            [(e["reason"], e["peer"]) for e in events],
            [(f"TLS handshake not finished within {HANDSHAKE_TIMEOUT:g} s", PEER_TEXT)],
        )
        _, member, _ = identities()
        with CapturedWarnings() as events:
            pump, [client] = node.accept_tls(member)
            node.reactor.advance(HANDSHAKE_TIMEOUT * 2)
            pump.flush()
        self.assertEqual(events, [])
        self.assertIsNone(client.lost)

    def test_good_handshake_then_clean_close_is_not_a_drop(self) -> None:
        """A member's certificate completes the handshake, data flows both
        ways through the listener's protocol, and closing afterwards (from
        either side) logs nothing."""
        _, member, _ = identities()
        for closer in ("client", "server"):
            node = Node()
            with CapturedWarnings() as events:
                pump, [client] = node.accept_tls(member)
                [server] = node.built
                self.assertTrue(server.handshake)  # forwarded to the protocol above
                client.transport.write(b"ping")  # type: ignore[union-attr]
                server.transport.write(b"pong")  # type: ignore[union-attr]
                pump.flush()
                self.assertEqual((server.received, client.received), (b"ping", b"pong"))
                closing = client if closer == "client" else server
                closing.transport.loseConnection()  # type: ignore[union-attr]
                pump.flush()
            self.assertIsNotNone(server.lost)
            self.assertEqual(events, [])
            self.assertEqual(node.drop_log.dropped, {})

    def test_stranger_certificate_is_logged(self) -> None:
        """A client certificate from another CA fails the handshake on the
        listener: the protocol above never sees the handshake complete, and
        the warning gives OpenSSL's reason."""
        _, _, impostor = identities()
        node = Node()
        with CapturedWarnings() as events:
            pump, _ = node.accept_tls(impostor)
            pump.flush()
        [server] = node.built
        self.assertFalse(server.handshake)
        self.assertIsNotNone(server.lost)
        [event] = events
        self.assertEqual(event["peer"], PEER_TEXT)
        self.assertIn("certificate", event["reason"])
        self.assertTrue(event["reason"].startswith("TLS handshake failed: "))

    def test_no_client_certificate_is_logged(self) -> None:
        node = Node()
        with CapturedWarnings() as events:
            pump, _ = node.accept_tls(None)
            pump.flush()
        [event] = events
        self.assertIn("certificate", event["reason"])
        self.assertTrue(event["reason"].startswith("TLS handshake failed: "))

    def test_drop_by_the_protocol_above_is_not_logged_twice(self) -> None:
        """When the protocol TLS carries (the cluster key's handshake) drops
        the connection itself, it logs that; the TLS layer stays quiet."""
        node = Node(abort_at_once=True)
        with CapturedWarnings() as events:
            protocol, transport = node.accept_raw()
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(events, [])
        self.assertEqual(node.drop_log.dropped, {})

    def test_rate_limited_like_the_cluster_key(self) -> None:
        """One line per reason per `LOG_INTERVAL`, then one saying how many
        were left out; every drop is counted."""
        node = Node()
        with CapturedWarnings() as events:
            for _ in range(5):
                protocol, _ = node.accept_raw()
                protocol.connectionLost(Failure(ConnectionDone()))
            node.reactor.advance(LOG_INTERVAL)
            protocol, _ = node.accept_raw()
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([e["left_out"] for e in events], [0, 4])
        self.assertEqual(node.drop_log.dropped, {"closed before the TLS handshake finished": 6})

    def test_wrap_tls_paces_with_the_clock(self) -> None:
        """`wrap_tls` given the reactor rate-limits on it; without one every
        drop is logged (nothing is silently swallowed)."""
        node, _, _ = identities()
        reactor = MemoryReactorClock()
        server = TCP4ServerEndpoint(reactor, 1)
        paced, _ = wrap_tls(node, server, {}, {}, reactor)
        assert isinstance(paced, TLSServerEndpoint)
        self.assertIs(paced.log.clock, reactor)
        self.assertEqual(paced.log.interval, LOG_INTERVAL)
        unpaced, _ = wrap_tls(node, server, {}, {})
        assert isinstance(unpaced, TLSServerEndpoint)
        with CapturedWarnings() as events:
            for _ in range(3):
                unpaced.log.dropped_connection("closed before the TLS handshake finished", PEER)
        self.assertEqual(len(events), 3)


class WithClusterKeyTests(SynchronousTestCase):
    def test_key_inside_tls_connects_and_closes_quietly(self) -> None:
        """With the cluster key inside TLS (whose wrapper copies its
        transport's interfaces) a member gets through both, bytes flow, and
        a clean close is a drop for neither log."""
        _, member, _ = identities()
        node = KeyedNode()
        with CapturedWarnings() as events:
            pump, [client] = node.accept_tls(member)
            [server] = node.built
            client.transport.write(b"append entries")  # type: ignore[union-attr]
            pump.flush()
            self.assertEqual(server.received, b"append entries")
            client.transport.loseConnection()  # type: ignore[union-attr]
            pump.flush()
        self.assertIsNotNone(server.lost)
        self.assertEqual(events, [])
        assert node.key_log is not None
        self.assertEqual((node.drop_log.dropped, node.key_log.dropped), ({}, {}))

    def test_wrong_key_inside_tls_is_logged_once(self) -> None:
        """A member's certificate with the wrong key passes TLS and is
        dropped by the key's handshake: one line, from the key's log."""
        _, member, _ = identities()
        node = KeyedNode(client_key=b"w" * 32)
        with CapturedWarnings() as events:
            pump, client = node.accept_tls(member)
            pump.flush()
        self.assertEqual((node.built, client), ([], []))
        [ready] = node.client_ready
        self.failureResultOf(ready, AuthenticationFailed)
        self.assertEqual([e["reason"] for e in events], ["wrong cluster key"])
        self.assertEqual(node.drop_log.dropped, {})


class _DialNode:
    """A client endpoint that reaches a `Node` in memory."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pumps: list[IOPump] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        server = self.node.factory.buildProtocol(PEER)
        dialler = factory.buildProtocol(None)
        self.pumps.append(connect(
            server, FakeTransport(server, True, peerAddress=PEER),
            dialler, FakeTransport(dialler, False), clock=self.node.reactor,
        ))  # fmt: skip
        return succeed(dialler)


class _DialNowhere:
    """A client endpoint whose connection never says a word back."""

    def __init__(self) -> None:
        self.transports: list[StringTransport] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.transports.append(transport)
        return succeed(protocol)


class ClientEndpointTests(SynchronousTestCase):
    """`TLSClientEndpoint`: connecting to a peer counts once TLS is done."""

    def dial(self, options: Any) -> tuple[_DialNode, Deferred[Any], list[App]]:
        dialler = _DialNode(Node())
        built: list[App] = []
        endpoint = TLSClientEndpoint(dialler, options, dialler.node.reactor)
        connecting = endpoint.connect(Factory.forProtocol(lambda: App(built)))
        for pump in dialler.pumps:
            pump.flush()
        return dialler, connecting, built

    def test_connected_once_the_handshake_is_done(self) -> None:
        """A peer with the cluster's certificate: the protocol above is made
        after the handshake, and bytes flow both ways."""
        _, member, _ = identities()
        dialler, connecting, built = self.dial(member.client_options("127.0.0.1"))
        [client] = built
        self.assertIs(self.successResultOf(connecting), client)
        self.assertTrue(client.handshake)
        [server] = dialler.node.built
        client.transport.write(b"vote for me")  # type: ignore[union-attr]
        server.transport.write(b"granted")  # type: ignore[union-attr]
        dialler.pumps[0].flush()
        self.assertEqual((server.received, client.received), (b"vote for me", b"granted"))

    def test_peer_the_ca_did_not_sign_is_a_failed_attempt(self) -> None:
        """The peer's certificate is not signed by the CA we trust: the
        attempt fails with OpenSSL's reason, and no connection was ever
        handed to the protocol above (so nothing was "connected", then "lost")."""
        _, _, impostor = identities()
        options = optionsForClientTLS("127.0.0.1", trustRoot=impostor.identity,
                                      clientCertificate=impostor.identity)  # fmt: skip
        _, connecting, built = self.dial(options)
        failure = self.failureResultOf(connecting, TLSHandshakeFailed)
        self.assertIn("certificate verify failed", str(failure.value))
        self.assertEqual(built, [])

    def test_silent_peer_times_out(self) -> None:
        """A peer that never answers the ClientHello: the attempt fails after
        `HANDSHAKE_TIMEOUT` and the connection is aborted."""
        _, member, _ = identities()
        clock = MemoryReactorClock()
        nowhere = _DialNowhere()
        endpoint = TLSClientEndpoint(nowhere, member.client_options("127.0.0.1"), clock)
        built: list[App] = []
        connecting = endpoint.connect(Factory.forProtocol(lambda: App(built)))
        clock.advance(HANDSHAKE_TIMEOUT - 0.1)
        self.assertNoResult(connecting)
        clock.advance(0.2)
        failure = self.failureResultOf(connecting, TLSHandshakeFailed)
        self.assertIn(f"not finished within {HANDSHAKE_TIMEOUT:g} s", str(failure.value))
        self.assertTrue(nowhere.transports[0].disconnecting)
        self.assertEqual(built, [])

    def test_cluster_key_inside_tls(self) -> None:
        """As ``twistd skydns`` connects with both: the key's handshake runs
        once TLS is done, and the connection is made once both are."""
        _, member, _ = identities()
        dialler = _DialNode(KeyedNode())
        tls = TLSClientEndpoint(dialler, member.client_options("127.0.0.1"), dialler.node.reactor)
        endpoint = AuthClientEndpoint(tls, KEY, dialler.node.reactor)
        built: list[App] = []
        connecting = endpoint.connect(Factory.forProtocol(lambda: App(built)))
        for pump in dialler.pumps:
            pump.flush()
        [client] = built
        self.assertIs(self.successResultOf(connecting), client)
        [server] = dialler.node.built
        client.transport.write(b"heartbeat")  # type: ignore[union-attr]
        dialler.pumps[0].flush()
        self.assertEqual(server.received, b"heartbeat")
