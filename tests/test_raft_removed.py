"""A node removed from a running cluster finds out and stops: from a
committed configuration without it (a), or from a member's "removed" notice
in answer to its messages (b); over AMP the notice is the ``Removed`` command."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from skydns.cluster import NotLeader
from skydns.commands import Register
from skydns.raft.core.messages import AppendEntries, EntryKind, Message, RequestVote
from skydns.raft.net.interface import IRaftHandler, NotLeaderHere
from skydns.raft.net.protocol import RaftProtocol
from tests.raftnodes import Cluster, MemoryNetwork, NodeUnderTest, service
from tests.test_raft_snapshots import contents

REMOVED = "this node was removed from the cluster at index"


class NoticeNetwork(MemoryNetwork):
    """Like `MemoryNetwork`, and sends a receiver's "removed" answer back to
    the sender, as the AMP transport does on the same connection."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.notices: list[tuple[str, str, int]] = []

    def _arrive(self, message: Message) -> None:
        if not self.up(message.src, message.dst):
            return
        removed = self.handlers[message.dst].receive(message)
        if removed is not None:
            self.notices.append((message.dst, message.src, removed))
            self.clock.callLater(0, self._notice, message.dst, message.src, removed)

    def _notice(self, src: str, dst: str, index: int) -> None:
        if self.up(src, dst):
            self.handlers[dst].removed_notice(src, dst, index)


class NoticeCluster(Cluster):
    def start(self, node_id: str, *args: Any, **options: Any) -> NodeUnderTest:
        if not isinstance(self.network, NoticeNetwork):
            self.network = NoticeNetwork(self.clock)
        return super().start(node_id, *args, **options)


class RemovedNodeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = NoticeCluster()
        self.leader = self.cluster.elect()
        self.cluster.run(0.2)
        self.gone = self.cluster.follower()
        self.other = next(
            n for n in self.cluster.nodes.values() if n not in (self.leader, self.gone)
        )
        self.network: NoticeNetwork = self.cluster.network  # type: ignore[assignment]

    def remove(self) -> int:
        removing = self.leader.remove_member(self.gone.id)
        index = self.leader.core.config_index
        self.assertEqual(self.leader.core.log.entry(index).kind, EntryKind.CONFIG)
        self.cluster.run(0.2)
        self.successResultOf(removing)
        return index

    def assert_stopped(self, node: NodeUnderTest, index: int) -> None:
        self.assertEqual(node.removed, index)
        status = node.status()
        self.assertEqual(status["role"], "removed")
        self.assertEqual({m["id"]: m["role"] for m in status["members"]}[node.id], "removed")
        self.assertFalse(node.is_ready())
        # Writes and consistent reads fail at once, saying why.
        write = self.failureResultOf(node.propose(Register(service("late"), 0.0)), NotLeader)
        self.assertIn(f"{REMOVED} {index}", str(write.value))
        self.failureResultOf(node.read_barrier(), NotLeader)
        self.failureResultOf(node.inbox.accept_proposal(b"x"), NotLeaderHere)
        # It no longer campaigns, nor sends anything at all.
        term = node.core.term
        self.network.sent.clear()
        self.cluster.run(5.0)
        self.assertEqual([m for m in self.network.sent if m.src == node.id], [])
        self.assertEqual(node.core.term, term)

    def test_notice_in_answer_to_its_prevotes(self) -> None:
        """(b) The leader stops replicating to a member as soon as it appends
        its removal, so the member never sees it: once it times out and asks
        for votes, the members answer that it was removed."""
        write = self.leader.propose(Register(service("before"), 0.0))
        self.cluster.run(0.2)
        self.successResultOf(write)
        index = self.remove()
        self.assertIsNone(self.gone.removed)
        self.assertIn(self.gone.id, self.gone.core.config.voters)  # never got the entry
        kept = contents(self.gone.registry)
        with capturedLogs() as events:
            self.cluster.run(3.0)
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertIn((self.other.id, self.gone.id, index), self.network.notices)
        self.assert_stopped(self.gone, index)
        self.assertEqual(
            [w for w in warnings if "removed from the cluster" in w],
            [f"{REMOVED} {index}; stop it, or wipe its data dir and start it with "
             "--join to come back"],
        )  # fmt: skip
        # The others go on without it.
        done = self.leader.propose(Register(service("after"), 0.0))
        self.cluster.run(0.2)
        self.assertEqual(self.successResultOf(done).status, "ok")
        # It keeps its last state (which DNS answers from), unchanged since.
        self.assertEqual(contents(self.gone.registry), kept)
        self.assertNotEqual(contents(self.leader.registry), kept)

    def test_no_notice_while_the_removal_may_be_undone(self) -> None:
        """A member answers "removed" only once the removal is committed."""
        self.cluster.network.isolate(self.other.id, list(self.cluster.nodes))
        removing = self.leader.remove_member(self.gone.id)
        index = self.leader.core.config_index
        self.cluster.run(0.2)  # less than an election timeout
        self.assertNoResult(removing)
        self.assertNotIn(self.gone.id, self.leader.addresses)
        prevote = RequestVote(self.gone.id, self.leader.id, self.leader.core.term + 1,
                              index - 1, self.leader.core.term, prevote=True)  # fmt: skip
        self.assertIsNone(self.leader.inbox.receive(prevote))
        self.assertEqual(self.network.notices, [])
        self.cluster.network.heal()
        self.cluster.run(0.2)
        self.successResultOf(removing)
        self.assertEqual(self.leader.inbox.receive(prevote), index)

    def see_own_removal(self) -> int:
        for node in self.cluster.nodes:
            self.network.blocked.add((self.gone.id, node))  # no answer, so no notice
        index = self.remove()
        entry = self.leader.core.log.entry(index)
        core = self.leader.core
        self.gone.inbox.receive(
            AppendEntries(self.leader.id, self.gone.id, core.term, index - 1,
                          core.log.term(index - 1) or 0, (entry,), index)  # fmt: skip
        )
        self.cluster.clock.advance(0)
        return index

    def test_member_that_sees_its_own_removal_committed(self) -> None:
        """(a) A member whose log gets the committed configuration that
        removes it stops by itself, without any notice."""
        index = self.see_own_removal()
        self.assert_stopped(self.gone, index)
        self.assertEqual(self.network.notices, [])

    def test_leader_that_removes_itself(self) -> None:
        """(a) A leader that removes itself hands over, then is removed."""
        removing = self.leader.remove_member(self.leader.id)
        index = self.leader.core.config_index
        self.cluster.run(2.0)
        self.successResultOf(removing)
        self.assert_stopped(self.leader, index)
        new = self.cluster.leader()
        assert new is not None and new is not self.leader

    def test_restarted_after_its_removal(self) -> None:
        """A node whose log holds its committed removal is removed at start-up."""
        index = self.see_own_removal()
        self.cluster.crash(self.gone.id)
        again = self.cluster.start(self.gone.id)
        self.assertEqual(again.removed, index)
        self.assertEqual(again.status()["role"], "removed")
        self.assert_stopped(again, index)
        self.assertEqual(self.network.notices, [])

    def test_notice_from_a_stranger_is_ignored(self) -> None:
        self.gone.inbox.removed_notice("zz", self.gone.id, 5)
        self.gone.inbox.removed_notice(self.leader.id, "zz", 5)
        self.assertIsNone(self.gone.removed)
        self.assertNotEqual(self.gone.status()["role"], "removed")

    def test_unknown_sender_that_was_never_a_member_gets_no_notice(self) -> None:
        prevote = RequestVote("zz", self.leader.id, 99, 0, 0, prevote=True)
        answer = self.leader.inbox.receive(prevote)
        self.assertIsNone(answer)


@implementer(IRaftHandler)
class _Handler:
    def __init__(self, removed: int | None) -> None:
        self.answer = removed
        self.received: list[Message] = []
        self.notices: list[tuple[str, str, int]] = []

    def receive(self, message: Message) -> int | None:
        self.received.append(message)
        return self.answer

    def removed_notice(self, src: str, dst: str, index: int) -> None:
        self.notices.append((src, dst, index))

    def peer_unreachable(self, peer_id: str) -> None:
        pass

    def accept_proposal(self, data: bytes) -> Deferred[tuple[int, int]]:
        return fail(NotLeaderHere(None))

    def change_member(
        self, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        return fail(NotLeaderHere(None))


class AMPRemovedTests(SynchronousTestCase):
    def test_notice_goes_back_on_the_same_connection(self) -> None:
        member, gone = _Handler(17), _Handler(None)
        client, server, pump = iosim.connectedServerAndClient(
            lambda: RaftProtocol(member), lambda: RaftProtocol(gone)
        )
        client.send_message(RequestVote("d", "a", 4, 10, 3, prevote=True))
        pump.flush()
        self.assertEqual(len(member.received), 1)
        self.assertEqual(gone.notices, [("a", "d", 17)])

    def test_no_notice_for_a_member(self) -> None:
        member, other = _Handler(None), _Handler(None)
        client, server, pump = iosim.connectedServerAndClient(
            lambda: RaftProtocol(member), lambda: RaftProtocol(other)
        )
        client.send_message(RequestVote("b", "a", 4, 10, 3, prevote=True))
        pump.flush()
        self.assertEqual(len(member.received), 1)
        self.assertEqual(other.notices, [])
