"""Raft over AMP: every message round-trips, big batches are chunked,
forwarded proposals answer or fail cleanly, and garbage drops a connection
without hurting the node."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Configuration,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from skydns.raft.net.interface import (
    BadProposal,
    IRaftHandler,
    IRaftTransport,
    NotLeaderHere,
    PeerUnavailable,
    ProposalTooLarge,
)
from skydns.raft.net.peers import AMPTransport
from skydns.raft.net.protocol import RaftProtocol
from skydns.raft.net.wire import MAX_CHUNKS, command_for
from skydns.throttle import LogThrottle, address_text

SAMPLES: list[Message] = [
    RequestVote("a", "b", 3, 10, 2, prevote=True, transfer=False),
    RequestVote("a", "b", 4, 10, 2, prevote=False, transfer=True),
    RequestVoteResponse("b", "a", 4, True, prevote=False),
    AppendEntries(
        "a", "b", 5, 9, 4,
        (Entry(5, 10, EntryKind.NOOP), Entry(5, 11, EntryKind.NORMAL, b"\x00\xffcmd")),
        8,
    ),  # fmt: skip
    AppendEntries("a", "b", 5, 11, 5, (), 11),
    AppendEntriesResponse("b", "a", 5, False, 11, hint_index=7, hint_term=3),
    AppendEntriesResponse("b", "a", 5, True, 11),
    Heartbeat("a", "b", 5, 11, None),
    Heartbeat("a", "b", 5, 11, b"ctx-1"),
    HeartbeatResponse("b", "a", 5, b"ctx-1"),
    HeartbeatResponse("b", "a", 5, None),
    ReadIndexRequest("b", "a", 5, b"read-7"),
    ReadIndexResponse("a", "b", 5, 11, b"read-7"),
    TimeoutNow("a", "b", 5),
    InstallSnapshot("a", "b", 5, SnapshotMeta(100, 4, None), b""),
    InstallSnapshot(
        "a", "b", 5,
        SnapshotMeta(100, 4, Configuration(frozenset({"a", "b"}), frozenset({"c"}))),
        b"x" * 200_000,
    ),  # fmt: skip
]


@implementer(IRaftHandler)
class Recorder:
    """A handler that records messages and answers proposals as told."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.proposals: list[bytes] = []
        self.refuse: Exception | None = None
        self.unreachable: list[str] = []

    def receive(self, message: Message) -> None:
        self.received.append(message)

    def peer_unreachable(self, peer_id: str) -> None:
        self.unreachable.append(peer_id)

    def accept_proposal(self, data: bytes) -> Deferred[tuple[int, int]]:
        if self.refuse is not None:
            return fail(self.refuse)
        self.proposals.append(data)
        return succeed((len(self.proposals) + 40, 7))

    def answer_leader_request(self, data: bytes) -> Deferred[bytes]:
        if self.refuse is not None:
            return fail(self.refuse)
        return succeed(data.upper())


def pair() -> tuple[RaftProtocol, Recorder, RaftProtocol, Recorder, iosim.IOPump]:
    server_handler, client_handler = Recorder(), Recorder()
    client, server, pump = iosim.connectedServerAndClient(
        lambda: RaftProtocol(server_handler), lambda: RaftProtocol(client_handler)
    )
    return client, client_handler, server, server_handler, pump


class MessageTests(SynchronousTestCase):
    def test_every_message_round_trips(self) -> None:
        """Each Raft message type crosses AMP and arrives equal to what was sent."""
        client, _, _, server_handler, pump = pair()
        for message in SAMPLES:
            client.send_message(message)
        pump.flush()
        self.assertEqual(server_handler.received, SAMPLES)
        kinds = {type(m) for m in SAMPLES}
        self.assertEqual(len(kinds), 10, "every message type is covered")

    def test_big_batches_are_chunked(self) -> None:
        """A batch of entries bigger than one AMP value (65,535 bytes), and a
        single entry bigger than that, arrive whole."""
        entries = tuple(Entry(2, i, EntryKind.NORMAL, bytes([i % 256]) * 30_000)
                        for i in range(1, 6))  # fmt: skip
        huge = (Entry(2, 6, EntryKind.NORMAL, b"z" * 150_000),)
        client, _, _, server_handler, pump = pair()
        client.send_message(AppendEntries("a", "b", 2, 0, 0, entries, 0))
        client.send_message(AppendEntries("a", "b", 2, 5, 2, huge, 0))
        pump.flush()
        self.assertEqual([m.entries for m in server_handler.received],  # type: ignore[union-attr]
                         [entries, huge])  # fmt: skip

    def test_oversized_value_is_refused_at_the_sender(self) -> None:
        """Data that would need more than MAX_CHUNKS AMP values is refused
        before anything is written."""
        client, _, _, server_handler, pump = pair()
        too_big = (Entry(2, 1, EntryKind.NORMAL, b"q" * (MAX_CHUNKS * 65_535)),)
        self.assertRaises(amp.TooLong, client.send_message,
                          AppendEntries("a", "b", 2, 0, 0, too_big, 0))  # fmt: skip
        client.send_message(TimeoutNow("a", "b", 3))
        pump.flush()
        self.assertEqual(server_handler.received, [TimeoutNow("a", "b", 3)])

    def test_command_names_are_distinct(self) -> None:
        """Each message type has its own AMP command."""
        names = {command_for(m)[0].commandName for m in SAMPLES}
        self.assertEqual(len(names), 10)


class ForwardTests(SynchronousTestCase):
    def test_forward_answers_index_and_term(self) -> None:
        """A forwarded proposal reaches the leader's handler; the follower
        learns where it was appended."""
        client, _, _, server_handler, pump = pair()
        d = client.forward(b"envelope")
        pump.flush()
        self.assertEqual(self.successResultOf(d), (41, 7))
        self.assertEqual(server_handler.proposals, [b"envelope"])

    def test_big_forward_is_chunked(self) -> None:
        """A forwarded proposal bigger than one AMP value still arrives whole."""
        client, _, _, server_handler, pump = pair()
        d = client.forward(b"p" * 100_000)
        pump.flush()
        self.successResultOf(d)
        self.assertEqual(server_handler.proposals, [b"p" * 100_000])

    def test_not_leader_names_the_leader(self) -> None:
        """NotLeaderHere is a declared error and carries the leader hint."""
        client, _, _, server_handler, pump = pair()
        server_handler.refuse = NotLeaderHere("node3")
        d = client.forward(b"x")
        pump.flush()
        error = self.failureResultOf(d, NotLeaderHere).value
        self.assertEqual(error.leader, "node3")
        server_handler.refuse = NotLeaderHere(None)
        d = client.forward(b"x")
        pump.flush()
        self.assertIsNone(self.failureResultOf(d, NotLeaderHere).value.leader)

    def test_declared_refusals(self) -> None:
        """A bad or too large proposal fails the call with BadProposal and
        keeps the connection."""
        client, _, server, server_handler, pump = pair()
        for refusal in (BadProposal("nope"), ProposalTooLarge(70_000)):
            server_handler.refuse = refusal
            d = client.forward(b"x")
            pump.flush()
            self.failureResultOf(d, BadProposal)
        server_handler.refuse = None
        d = client.forward(b"y")
        pump.flush()
        self.successResultOf(d)

    def test_forward_many_answers_each(self) -> None:
        """ForwardProposals answers every proposal on its own: a leader that
        refuses one (bad) still appends the others."""
        client, _, _, server_handler, pump = pair()

        class Picky(Recorder):
            def accept_proposal(self, data: bytes) -> Deferred[tuple[int, int]]:
                if data == b"bad":
                    return fail(BadProposal("not a command"))
                if data == b"elsewhere":
                    return fail(NotLeaderHere("c"))
                return super().accept_proposal(data)

        server = pump.server
        server.handler = Picky()  # type: ignore[attr-defined]
        d = client.forward_many([b"one", b"bad", b"two", b"elsewhere"])
        pump.flush()
        one, bad, two, elsewhere = self.successResultOf(d)
        self.assertEqual((one, two), ((41, 7), (42, 7)))
        self.assertIsInstance(bad, BadProposal)
        self.assertIsInstance(elsewhere, NotLeaderHere)
        self.assertEqual(elsewhere.leader, "c")  # type: ignore[union-attr]

    def test_dropped_connection_fails_in_flight_calls(self) -> None:
        """A call in flight when the connection drops errbacks PeerUnavailable."""
        client = RaftProtocol(Recorder())
        client.makeConnection(StringTransport())
        d = client.forward(b"x")
        self.assertNoResult(d)
        client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, PeerUnavailable)


class AskLeaderTests(SynchronousTestCase):
    def test_answer_and_declared_refusals(self) -> None:
        """A request passed to the leader comes back with its answer; a
        leader that no longer leads, or finds the bytes bad, says so in the
        transport's terms (the connection stays up)."""
        client, _, _, server_handler, pump = pair()
        d = client.ask(b"renew" * 20_000)  # bigger than one AMP value
        pump.flush()
        self.assertEqual(self.successResultOf(d), b"RENEW" * 20_000)
        for refusal, kind in [(NotLeaderHere("n3"), NotLeaderHere),
                              (BadProposal("renewals: no"), BadProposal)]:  # fmt: skip
            server_handler.refuse = refusal
            d = client.ask(b"x")
            pump.flush()
            self.failureResultOf(d, kind)
        server_handler.refuse = None
        d = client.ask(b"again")
        pump.flush()
        self.assertEqual(self.successResultOf(d), b"AGAIN")


class GarbageTests(SynchronousTestCase):
    """The wire is untrusted: a malformed box drops that connection only."""

    def connected(self) -> tuple[RaftProtocol, StringTransport, Recorder]:
        handler = Recorder()
        protocol = RaftProtocol(handler)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport, handler

    def box(self, **values: bytes) -> bytes:
        return amp.AmpBox({k.encode(): v for k, v in values.items()}).serialize()

    def assert_dropped(self, data: bytes) -> None:
        protocol, transport, handler = self.connected()
        with capturedLogs() as events:
            protocol.dataReceived(data)
            if transport.disconnecting:
                protocol.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(transport.disconnecting, f"not dropped after {data!r}")
        self.assertEqual(handler.received, [])
        # One warning naming the peer and why.
        [warning] = [e for e in events if e.get("what") == "dropped a Raft connection"]
        self.assertEqual(warning["peer"], address_text(transport.getPeer()))
        self.assertTrue(warning["reason"])
        # The node keeps serving: a fresh connection works.
        client, _, _, server_handler, pump = pair()
        client.send_message(TimeoutNow("a", "b", 1))
        pump.flush()
        self.assertEqual(server_handler.received, [TimeoutNow("a", "b", 1)])

    def test_key_too_long(self) -> None:
        self.assert_dropped(b"\x01\x00" + b"k" * 256)

    def test_box_without_command(self) -> None:
        self.assert_dropped(self.box(hello=b"world"))

    def test_answer_to_nothing(self) -> None:
        self.assert_dropped(self.box(_answer=b"99"))

    def test_negative_term(self) -> None:
        self.assert_dropped(self.box(_command=b"TimeoutNow", src=b"a", dst=b"b", term=b"-1"))

    def test_not_a_number(self) -> None:
        self.assert_dropped(self.box(_command=b"TimeoutNow", src=b"a", dst=b"b", term=b"x1"))

    def test_missing_argument(self) -> None:
        self.assert_dropped(self.box(_command=b"TimeoutNow", src=b"a", term=b"1"))

    def test_bad_entries(self) -> None:
        self.assert_dropped(self.box(
            _command=b"AppendEntries", src=b"a", dst=b"b", term=b"1", prev_log_index=b"0",
            prev_log_term=b"0", commit=b"0", entries=b"\x00\x00\x00\x30short",
        ))  # fmt: skip

    def test_unknown_entry_kind(self) -> None:
        entry = b"\x00" * 16 + b"\x09" + b"\x00\x00\x00\x00"
        self.assert_dropped(self.box(
            _command=b"AppendEntries", src=b"a", dst=b"b", term=b"1", prev_log_index=b"0",
            prev_log_term=b"0", commit=b"0", entries=b"\x00\x00\x00\x15" + entry,
        ))  # fmt: skip

    def test_truncated_proposal_list(self) -> None:
        self.assert_dropped(self.box(
            _command=b"ForwardProposals", _ask=b"1", proposals=b"\x00\x00\x00\x09abc",
        ))  # fmt: skip

    def test_bad_node_id(self) -> None:
        self.assert_dropped(self.box(_command=b"TimeoutNow", src=b"", dst=b"b", term=b"1"))
        self.assert_dropped(self.box(_command=b"TimeoutNow", src=b"\xff", dst=b"b", term=b"1"))

    def test_unknown_one_way_command_gets_an_error_answer(self) -> None:
        """An unknown command asked with _ask is answered with an error box
        (a newer peer's command, during a rolling upgrade) and logged."""
        protocol, transport, _ = self.connected()
        with capturedLogs() as events:
            protocol.dataReceived(self.box(_command=b"Nope", _ask=b"1"))
        self.assertIn(b"UNHANDLED", transport.value())
        self.assertEqual(
            [formatEvent(e) for e in events if e.get("what")],
            [f"ignored a Raft command from {address_text(transport.getPeer())}: "
             "unknown command 'Nope' (0 more like it not logged)"],
        )  # fmt: skip

    def test_drops_logged_once_per_reason_per_ten_seconds(self) -> None:
        """With the transport's throttle, a stranger reconnecting with junk
        is one line per reason every 10 s, then one with the count held."""
        clock = Clock()
        drops = LogThrottle(clock)
        with capturedLogs() as events:
            for _ in range(5):
                protocol = RaftProtocol(Recorder(), drops)
                protocol.makeConnection(StringTransport())
                protocol.dataReceived(b"\x01\x00" + b"k" * 256)
                protocol.connectionLost(Failure(ConnectionDone()))
            other = RaftProtocol(Recorder(), drops)  # another reason: not held back
            other.makeConnection(StringTransport())
            other.dataReceived(self.box(hello=b"world"))
            clock.advance(10)
            protocol = RaftProtocol(Recorder(), drops)
            protocol.makeConnection(StringTransport())
            protocol.dataReceived(b"\x01\x00" + b"k" * 256)
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            [(e["kind"], e["held"]) for e in events if e.get("what")],
            [("not AMP", 0), ("box", 0), ("not AMP", 4)],
        )


class _PairEndpoint:
    """A client endpoint that connects, in memory, to a server protocol."""

    def __init__(self, server_handler: IRaftHandler) -> None:
        self.server_handler = server_handler
        self.pumps: list[iosim.IOPump] = []
        self.refuse = False

    def connect(self, factory: IProtocolFactory) -> Deferred[Protocol]:
        if self.refuse:
            from twisted.internet.error import ConnectionRefusedError

            return fail(ConnectionRefusedError())
        client = factory.buildProtocol(None)  # type: ignore[arg-type]
        server = RaftProtocol(self.server_handler)
        self.pumps.append(iosim.connect(server, iosim.makeFakeServer(server),
                                        client, iosim.makeFakeClient(client)))  # fmt: skip
        return succeed(client)  # type: ignore[arg-type]

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()


class TransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.remote = Recorder()
        self.endpoint = _PairEndpoint(self.remote)
        self.transport = AMPTransport(None, {"b": self.endpoint}, self.clock)  # type: ignore
        self.local = Recorder()
        self.transport.start(self.local)

    def tearDown(self) -> None:
        self.transport.stop()

    def test_provides_interface(self) -> None:
        verifyObject(IRaftTransport, self.transport)

    def test_send_and_forward(self) -> None:
        """Messages go to the addressed peer; unknown peers are ignored."""
        self.transport.send(TimeoutNow("a", "b", 2))
        self.transport.send(TimeoutNow("a", "zz", 2))
        d = self.transport.forward("b", b"cmd")
        self.clock.advance(0)
        self.endpoint.flush()
        self.assertEqual(self.remote.received, [TimeoutNow("a", "b", 2)])
        self.assertEqual(self.successResultOf(d), (41, 7))
        self.failureResultOf(self.transport.forward("zz", b"cmd"), PeerUnavailable)

    def test_reconnects_with_backoff(self) -> None:
        """After the connection drops, sends are dropped (not queued) and a
        forward fails at once; the peer reconnects after a backoff delay."""
        self.assertTrue(self.transport.connected("b"))
        self.endpoint.refuse = True
        self.endpoint.pumps[0].client.transport.loseConnection()  # type: ignore[attr-defined]
        self.endpoint.flush()
        self.assertFalse(self.transport.connected("b"))
        self.transport.send(TimeoutNow("a", "b", 9))
        self.failureResultOf(self.transport.forward("b", b"x"), PeerUnavailable)
        self.clock.advance(0.2)
        self.assertFalse(self.transport.connected("b"))
        self.endpoint.refuse = False
        self.clock.advance(2.0)
        self.assertTrue(self.transport.connected("b"))
        self.transport.send(TimeoutNow("a", "b", 10))
        self.endpoint.flush()
        self.assertEqual(self.remote.received, [TimeoutNow("a", "b", 10)])

    def test_peer_trouble_logged_once_a_minute(self) -> None:
        """A lost connection is one line; a peer that stays out of reach
        (an attempt every 1-2 s) is one line a minute, not one per attempt;
        coming back is one line."""
        with capturedLogs() as events:
            self.endpoint.refuse = True
            self.endpoint.pumps[0].client.transport.loseConnection()  # type: ignore[attr-defined]
            self.endpoint.flush()
            for _ in range(150):
                self.clock.advance(1.0)
            self.endpoint.refuse = False
            self.clock.advance(2.1)  # the longest backoff: 1 s and up to 1 s of jitter
        self.assertTrue(self.transport.connected("b"))
        lines = [formatEvent(e) for e in events
                 if e.get("log_namespace") == "skydns.raft.net.peers"]  # fmt: skip
        self.assertEqual(lines[0], "lost the connection to Raft peer b: "
                                   "Connection was closed cleanly: Connection done.")  # fmt: skip
        unreachable = [line for line in lines if line.startswith("cannot reach Raft peer b")]
        self.assertEqual(len(unreachable), 3)  # at 0, 60 and 120 s
        self.assertIn("the last: Connection was closed cleanly", unreachable[0])
        for line in unreachable[1:]:
            self.assertIn("the last: Connection was refused by other side", line)
        self.assertEqual(lines[-1], "connected to Raft peer b")
        self.assertEqual(len(lines), 5)

    def test_peer_that_drops_every_connection_logged_once_a_minute(self) -> None:
        """A peer that takes each connection and drops it at once (say, its
        CA does not trust our certificate) is not a "connected"/"lost" pair
        per attempt: one of each a minute, with a count of those left out,
        and the reason it was lost."""
        with capturedLogs() as events:
            for _ in range(150):
                for pump in self.endpoint.pumps:
                    server = pump.server
                    if server.transport is not None and not server.transport.disconnecting:
                        server.transport.loseConnection()
                self.endpoint.flush()
                self.clock.advance(1.0)
        lines = [formatEvent(e) for e in events
                 if e.get("log_namespace") == "skydns.raft.net.peers"]  # fmt: skip
        connected = [line for line in lines if line.startswith("connected to Raft peer b")]
        lost = [line for line in lines if line.startswith("lost the connection to Raft peer b")]
        self.assertGreater(len(self.endpoint.pumps), 60, "it did reconnect, every time")
        self.assertLessEqual(len(connected), 3)
        self.assertIn(len(lost), (2, 3))  # at 0, 60 and maybe 120 s
        self.assertIn("Connection was closed cleanly", lost[0])
        self.assertRegex(lost[1], r"\((\d+) more like it not logged\)$")

    def test_proposals_of_one_turn_share_a_call(self) -> None:
        """Forwards made in one reactor turn travel in one ForwardProposals
        call and each gets its own answer, refusals included."""
        boxes: list[bytes] = []
        protocol = self.endpoint.pumps[0].client
        original = protocol.transport.write  # type: ignore[attr-defined]

        def write(data: bytes) -> None:
            boxes.append(data)
            original(data)

        protocol.transport.write = write  # type: ignore[attr-defined]
        answers = [self.transport.forward("b", b"p%d" % i) for i in range(5)]
        self.clock.advance(0)
        self.endpoint.flush()
        self.assertEqual(sum(b.count(b"ForwardProposals") for b in boxes), 1)
        self.assertEqual([self.successResultOf(d) for d in answers],
                         [(41, 7), (42, 7), (43, 7), (44, 7), (45, 7)])  # fmt: skip
        self.assertEqual(self.remote.proposals, [b"p0", b"p1", b"p2", b"p3", b"p4"])
        self.remote.refuse = NotLeaderHere("c")
        refused = self.transport.forward("b", b"late")
        self.clock.advance(0)
        self.endpoint.flush()
        self.assertEqual(self.failureResultOf(refused, NotLeaderHere).value.leader, "c")

    def test_stop_fails_unsent_forwards(self) -> None:
        """Stopping leaves no timer behind and fails what was not sent yet."""
        d = self.transport.forward("b", b"x")
        self.transport.stop()
        self.failureResultOf(d, PeerUnavailable)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_forward_times_out(self) -> None:
        """A call that gets no answer fails with PeerUnavailable after the
        call timeout."""
        d = self.transport.forward("b", b"x")  # never pumped: no answer
        self.clock.advance(0)
        self.clock.advance(2.1)
        self.failureResultOf(d, PeerUnavailable)

    def test_messages_from_the_peer_reach_the_local_handler(self) -> None:
        """A peer may send over the connection we opened; it is delivered."""
        self.endpoint.pumps[0].server.send_message(TimeoutNow("b", "a", 4))  # type: ignore
        self.endpoint.flush()
        self.assertEqual(self.local.received, [TimeoutNow("b", "a", 4)])




class AnswerCallersTests(SynchronousTestCase):
    def test_node_that_is_no_peer_is_answered_on_its_connection(self) -> None:
        """A leader this node has no address for (its configuration is
        newer than the node's log) is answered over the connection it sent
        on, until that connection is lost."""
        transport = AMPTransport(None, {}, Clock())
        local = Recorder()
        transport.start(local)
        leader = Recorder()
        client = RaftProtocol(leader)
        server = transport._accept()
        pump = iosim.connect(server, iosim.makeFakeServer(server),
                             client, iosim.makeFakeClient(client))  # fmt: skip
        client.send_message(Heartbeat("n9", "a", 3, 7, None))
        pump.flush()
        self.assertEqual(local.received, [Heartbeat("n9", "a", 3, 7, None)])
        transport.send(HeartbeatResponse("a", "n9", 3, None))
        transport.send(HeartbeatResponse("a", "n8", 3, None))  # never heard from: dropped
        pump.flush()
        self.assertEqual(leader.received, [HeartbeatResponse("a", "n9", 3, None)])
        client.transport.loseConnection()  # type: ignore[union-attr]
        pump.flush()
        transport.send(HeartbeatResponse("a", "n9", 3, b"late"))
        pump.flush()
        self.assertEqual(len(leader.received), 1)
        transport.stop()


class BoxSizeLimitTests(SynchronousTestCase):
    """A peer cannot make a node hold an endless unfinished AMP box."""

    def test_box_with_endless_keys_drops_the_connection(self) -> None:
        from twisted.internet.testing import StringTransport

        from skydns.raft.net.wire import MAX_BOX_BYTES

        protocol = RaftProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        value = b"x" * 60000
        sent = 0
        key = 0
        while sent <= MAX_BOX_BYTES + len(value) and not transport.disconnecting:
            name = b"k%d" % key
            protocol.dataReceived(
                len(name).to_bytes(2, "big") + name + len(value).to_bytes(2, "big") + value
            )
            sent += len(value) + len(name)
            key += 1
        self.assertTrue(transport.disconnecting)
        self.assertLess(protocol._box_bytes, MAX_BOX_BYTES + 2 * len(value))
