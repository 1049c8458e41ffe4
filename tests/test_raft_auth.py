"""Cluster-key authentication of Raft connections (skydns.raft.net.auth): both
sides prove the key before any byte reaches the wrapped protocol; a wrong
key, no key, garbage, a reflected nonce or a slow handshake drops the
connection, is logged (rate-limited), and never builds a Raft protocol."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter, IOPump
from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.net.auth import (
    DEFAULT_TIMEOUT,
    AuthClientEndpoint,
    AuthenticationFailed,
    AuthServerEndpoint,
    HandshakeFactory,
    wrap_endpoints,
)
from skydns.raft.net.droplog import RateLimitedLog
from skydns.raft.net.handshake import MAGIC, hello, parse_hello, proof, transcript
from skydns.raft.net.keys import read_key_file
from skydns.raft.net.sealed import Sealer, session_keys

KEY = b"k" * 32
OTHER = b"o" * 32


class Recorder(Protocol):
    """Records what reaches the wrapped protocol."""

    def __init__(self, built: list[Recorder]) -> None:
        self.received = b""
        self.connected = False
        self.lost: Failure | None = None
        built.append(self)

    def connectionMade(self) -> None:
        self.connected = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.lost = reason


class Pair:
    """A listening and a connecting endpoint, each requiring its key, on a
    memory reactor; `connect` completes one connection."""

    def __init__(self, server_key: bytes, client_key: bytes) -> None:
        self.reactor = MemoryReactorClock()
        self.server_built: list[Recorder] = []
        self.client_built: list[Recorder] = []
        self.server_log = RateLimitedLog(self.reactor)
        self.client_log = RateLimitedLog(self.reactor)
        server = AuthServerEndpoint(
            TCP4ServerEndpoint(self.reactor, 4321), server_key, self.reactor,
            drop_log=self.server_log,
        )  # fmt: skip
        server.listen(Factory.forProtocol(lambda: Recorder(self.server_built)))
        self.client = AuthClientEndpoint(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", 4321), client_key, self.reactor,
            drop_log=self.client_log,
        )  # fmt: skip

    def connect(self) -> tuple[Deferred[Any], IOPump]:
        connecting = self.client.connect(Factory.forProtocol(lambda: Recorder(self.client_built)))
        pump = ConnectionCompleter(self.reactor).succeedOnce()
        assert pump is not None
        pump.flush()
        return connecting, pump


def raw_server(
    key: bytes = KEY, node_id: str = "n2"
) -> tuple[HandshakeFactory, StringTransport, list[Recorder]]:
    """A server-side handshake protocol on a StringTransport (we play the client)."""
    built: list[Recorder] = []
    clock = MemoryReactorClock()
    factory = HandshakeFactory(
        Factory.forProtocol(lambda: Recorder(built)), key, clock, is_client=False,
        node_id=node_id,
    )  # fmt: skip
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return factory, transport, built


class HandshakeTests(SynchronousTestCase):
    def test_same_key_connects_both_ways(self) -> None:
        """With the same key the client's Deferred fires with its wrapped
        protocol, both wrapped protocols are connected, and bytes then flow
        both ways untouched."""
        pair = Pair(KEY, KEY)
        connecting, pump = pair.connect()
        client = self.successResultOf(connecting)
        self.assertEqual(len(pair.client_built), 1)
        self.assertIs(client, pair.client_built[0])
        [server] = pair.server_built
        self.assertTrue(client.connected and server.connected)
        client.transport.write(b"hello server")  # type: ignore[union-attr]
        server.transport.write(b"hello client")  # type: ignore[union-attr]
        pump.flush()
        self.assertEqual(server.received, b"hello server")
        self.assertEqual(client.received, b"hello client")
        self.assertEqual(pair.server_log.dropped, {})
        client.transport.loseConnection()  # type: ignore[union-attr]
        pump.flush()
        self.assertIsNotNone(server.lost)

    def test_wrong_key_builds_nothing(self) -> None:
        """Different keys: neither side builds a wrapped protocol, the
        connection is dropped, and the client's Deferred fails."""
        pair = Pair(KEY, OTHER)
        with capturedLogs() as events:
            connecting, pump = pair.connect()
        self.failureResultOf(connecting, AuthenticationFailed)
        self.assertEqual(pair.server_built, [])
        self.assertEqual(pair.client_built, [])
        self.assertEqual(pair.server_log.dropped, {"wrong cluster key": 1})
        self.assertTrue(pump.serverIO.disconnected and pump.clientIO.disconnected)
        self.assertTrue(any("wrong cluster key" in str(e.get("reason")) for e in events))

    def test_no_handshake_is_dropped_at_once(self) -> None:
        """A client that speaks AMP straight away (no key configured) is
        dropped on its first byte; nothing reaches a Raft protocol."""
        factory, transport, built = raw_server()
        self.assertEqual(transport.value()[: len(MAGIC)], MAGIC)
        [protocol] = factory.protocols
        protocol.dataReceived(b"\x00\x04_ask\x00\x011\x00\x00")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(built, [])
        self.assertEqual(factory.log.dropped, {"it did not start the cluster-key handshake": 1})

    def test_random_bytes_are_dropped(self) -> None:
        factory, transport, built = raw_server()
        [protocol] = factory.protocols
        protocol.dataReceived(os.urandom(4096).replace(b"S", b"x"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(built, [])

    def test_magic_then_garbage_proof(self) -> None:
        """A correct HELLO followed by a proof made without the key."""
        factory, transport, built = raw_server()
        [protocol] = factory.protocols
        protocol.dataReceived(MAGIC + b"n" * 32)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\x00" * 32 + b"AMP bytes the attacker hoped to slip in")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(built, [])

    def test_correct_proof_delivers_what_follows(self) -> None:
        """The frames after a correct proof, in the same read, reach the
        wrapped protocol once it is connected; the server's HELLO names it."""
        factory, transport, built = raw_server()
        [protocol] = factory.protocols
        parsed = parse_hello(transport.value())
        assert parsed is not None
        server_nonce, server_id, meant, used = parsed
        self.assertEqual((server_id, meant), ("n2", ""))
        client_nonce = b"c" * 32
        handshake = transcript(client_nonce, server_nonce, "n1", "n2")
        first = Sealer(session_keys(KEY, handshake)[0]).seal(b"first AMP bytes")
        protocol.dataReceived(
            hello(client_nonce, "n1", "n2") + proof(KEY, b"C", handshake) + first
        )
        self.assertEqual(transport.value()[used:], proof(KEY, b"S", handshake))
        [wrapped] = built
        self.assertTrue(wrapped.connected)
        self.assertEqual(wrapped.received, b"first AMP bytes")
        self.assertEqual(protocol.peer_id, "n1")

    def test_server_proof_cannot_pass_as_client_proof(self) -> None:
        """Sending the server's own kind of proof (role S) back is refused."""
        factory, transport, built = raw_server()
        [protocol] = factory.protocols
        parsed = parse_hello(transport.value())
        assert parsed is not None
        client_nonce = b"c" * 32
        handshake = transcript(client_nonce, parsed[0], "n1", "n2")
        protocol.dataReceived(hello(client_nonce, "n1", "n2") + proof(KEY, b"S", handshake))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(built, [])

    def test_reflected_nonce_is_refused(self) -> None:
        factory, transport, built = raw_server()
        [protocol] = factory.protocols
        protocol.dataReceived(transport.value())  # our own HELLO back
        self.assertTrue(transport.disconnecting)
        self.assertEqual(factory.log.dropped, {"it sent our own nonce back": 1})

    def test_slow_handshake_times_out(self) -> None:
        """Half a HELLO and then silence: dropped after the timeout, not before."""
        factory, transport, built = raw_server()
        [protocol] = factory.protocols
        protocol.dataReceived(MAGIC[:5])
        clock = factory.clock
        clock.advance(DEFAULT_TIMEOUT - 0.1)  # type: ignore[attr-defined]
        self.assertFalse(transport.disconnecting)
        clock.advance(0.2)  # type: ignore[attr-defined]
        self.assertTrue(transport.disconnecting)
        self.assertEqual(built, [])
        self.assertEqual(list(factory.log.dropped), ["no authentication within 5 seconds"])

    def test_timeout_is_cancelled_on_success(self) -> None:
        pair = Pair(KEY, KEY)
        connecting, pump = pair.connect()
        self.successResultOf(connecting)
        self.assertEqual(pair.reactor.getDelayedCalls(), [])

    def test_lost_while_authenticating_fails_the_client(self) -> None:
        """The server hangs up after its HELLO: the client's Deferred fails
        (so ClientService retries) and no client protocol is built."""
        built: list[Recorder] = []
        transport = StringTransport()
        handshakes: list[Any] = []

        class Endpoint:
            def connect(self, factory: Any) -> Deferred[Any]:
                protocol = factory.buildProtocol(None)
                protocol.makeConnection(transport)
                handshakes.append(protocol)
                return succeed(protocol)

        clock = MemoryReactorClock()
        connecting = AuthClientEndpoint(Endpoint(), KEY, clock).connect(  # type: ignore[arg-type]
            Factory.forProtocol(lambda: Recorder(built))
        )
        self.assertNoResult(connecting)
        [protocol] = handshakes
        protocol.dataReceived(MAGIC + b"s" * 32)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(connecting, AuthenticationFailed)
        self.assertEqual(built, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_too_many_pending_handshakes(self) -> None:
        """Beyond ``max_pending`` connections still authenticating, new ones
        are dropped at once (they cost no timer)."""
        clock = MemoryReactorClock()
        factory = HandshakeFactory(Factory.forProtocol(Protocol), KEY, clock, False,
                                   max_pending=2)  # fmt: skip
        transports = []
        for _ in range(3):
            transport = StringTransport()
            factory.buildProtocol(None).makeConnection(transport)
            transports.append(transport)
        self.assertEqual([t.disconnecting for t in transports], [False, False, True])
        self.assertEqual(len(clock.getDelayedCalls()), 2)


class LogTests(SynchronousTestCase):
    def test_one_line_per_reason_per_interval(self) -> None:
        clock = MemoryReactorClock()
        drops = RateLimitedLog(clock, interval=10.0)
        with capturedLogs() as events:
            for _ in range(100):
                drops.dropped_connection("wrong cluster key", "peer")
            drops.dropped_connection("garbage", "peer")
            clock.advance(10.0)
            drops.dropped_connection("wrong cluster key", "peer")
        lines = [(e["reason"], e["left_out"]) for e in events if "reason" in e]
        self.assertEqual(
            lines, [("wrong cluster key", 0), ("garbage", 0), ("wrong cluster key", 99)]
        )
        self.assertEqual(drops.dropped, {"wrong cluster key": 101, "garbage": 1})


class KeyFileTests(SynchronousTestCase):
    def write(self, data: bytes) -> str:
        fd, path = tempfile.mkstemp()
        os.write(fd, data)
        os.close(fd)
        self.addCleanup(os.unlink, path)
        return path

    def test_whitespace_is_stripped(self) -> None:
        self.assertEqual(read_key_file(self.write(b"  " + KEY + b"\n")), KEY)

    def test_short_key_is_refused(self) -> None:
        path = self.write(b"short\n")
        error = self.assertRaises(ValueError, read_key_file, path)
        self.assertIn(path, str(error))
        self.assertIn("at least 16 bytes", str(error))

    def test_missing_file(self) -> None:
        error = self.assertRaises(ValueError, read_key_file, "/nonexistent/key")
        self.assertIn("/nonexistent/key", str(error))

    def test_no_key_leaves_endpoints_alone(self) -> None:
        reactor = MemoryReactorClock()
        server = TCP4ServerEndpoint(reactor, 1)
        clients: dict[str, IStreamClientEndpoint] = {
            "b": TCP4ClientEndpoint(reactor, "127.0.0.1", 2)
        }
        self.assertEqual(wrap_endpoints(None, server, clients, reactor), (server, clients))
        wrapped_server, wrapped_clients = wrap_endpoints(KEY, server, clients, reactor)
        self.assertIsInstance(wrapped_server, AuthServerEndpoint)
        self.assertIsInstance(wrapped_clients["b"], AuthClientEndpoint)


class Relay:
    """A process between two members that passes the bytes of a connection
    meant for one of them along, and may add its own (issue 17's attack)."""

    def __init__(self, client_meant: str, server_id: str) -> None:
        self.client_built: list[Recorder] = []
        self.server_built: list[Recorder] = []
        clock = MemoryReactorClock()
        self.client_factory = HandshakeFactory(
            Factory.forProtocol(lambda: Recorder(self.client_built)), KEY, clock,
            is_client=True, node_id="n1", peer_id=client_meant,
        )  # fmt: skip
        self.server_factory = HandshakeFactory(
            Factory.forProtocol(lambda: Recorder(self.server_built)), KEY, clock,
            is_client=False, node_id=server_id,
        )  # fmt: skip
        self.client = self.client_factory.buildProtocol(None)
        self.server = self.server_factory.buildProtocol(None)
        self.to_client, self.to_server = StringTransport(), StringTransport()
        self.client.ready.addErrback(lambda _: None)  # a refusal is asserted on, not raised
        self.client.makeConnection(self.to_server)  # what the client writes goes server-wards
        self.server.makeConnection(self.to_client)

    def pump(self) -> None:
        """Pass everything each side wrote to the other, unchanged."""
        for _ in range(10):
            up, down = self.to_server.value(), self.to_client.value()
            self.to_server.clear()
            self.to_client.clear()
            if not up and not down:
                return
            if up and not self.server.failed:
                self.server.dataReceived(up)
            if down and not self.client.failed:
                self.client.dataReceived(down)


class RelayTests(SynchronousTestCase):
    def test_a_connection_meant_for_another_member_is_refused(self) -> None:
        """n1's connection meant for n2, relayed to n3: n3 refuses it (and
        n1 would refuse n3's answer), so nothing is built on either side."""
        relay = Relay(client_meant="n2", server_id="n3")
        relay.pump()
        self.assertEqual((relay.client_built, relay.server_built), ([], []))
        self.assertTrue(relay.to_client.disconnecting)
        self.assertIn("it meant to reach 'n2', not this node ('n3')",
                      relay.server_factory.log.dropped)  # fmt: skip

    def test_a_relay_cannot_add_bytes_of_its_own(self) -> None:
        """Relayed to the member it was meant for, the handshake succeeds, but
        a box the relay adds (or changes) fails the frame MAC: the member
        drops the connection and its Raft protocol never sees the box."""
        relay = Relay(client_meant="n2", server_id="n2")
        relay.pump()
        [client], [server] = relay.client_built, relay.server_built
        client.transport.write(b"honest box")  # type: ignore[union-attr]
        relay.pump()
        self.assertEqual(server.received, b"honest box")
        injected = b"\x00\x08_command\x00\x0fForwardProposal\x00\x00"
        relay.server.dataReceived(b"\x00\x00\x00\x1a" + injected + b"\x00" * 16)
        self.assertEqual(server.received, b"honest box")
        self.assertTrue(relay.to_client.disconnecting)
        self.assertIsNotNone(server.lost)
        self.assertEqual(list(relay.server_factory.log.dropped),
                         ["a frame failed its MAC (after the handshake)"])  # fmt: skip

    def test_a_replayed_frame_is_refused(self) -> None:
        """The same honest frame twice: the counter in its MAC has moved."""
        relay = Relay(client_meant="n2", server_id="n2")
        relay.pump()
        [client], [server] = relay.client_built, relay.server_built
        client.transport.write(b"once")  # type: ignore[union-attr]
        frame = relay.to_server.value()
        relay.pump()
        relay.server.dataReceived(frame)
        self.assertEqual(server.received, b"once")
        self.assertTrue(relay.to_client.disconnecting)
