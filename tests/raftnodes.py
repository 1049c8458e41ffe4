"""Real Raft nodes in one process, for unit tests: an in-memory network on a
`Clock`, in-memory storage, the registry as the state machine.

Each node is wrapped as the `ICluster` the API sees (`NodeUnderTest`), which also
lets a test reach the node's own attributes (``core``, ``status()``...).
The seeded fault simulation lives in ``tests/raft/``; this is for scripted
tests of one behaviour at a time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.commands import Command
from skydns.metrics import Metrics
from skydns.names import Service
from skydns.raft.core.messages import Entry, HardState, Message
from skydns.raft.net.interface import IRaftHandler, IRaftTransport, PeerUnavailable
from skydns.raft.node.driver import RaftNode
from skydns.raft.node.options import NodeOptions
from skydns.raft.storage.errors import StorageFailure
from skydns.raft.storage.memory import MemoryStorage
from skydns.registry import Applied, Registry
from skydns.store.machine import RegistryMachine
from skydns.store.raft import RaftCluster

STEP = 0.01


def service(uuid: str, host: str = "10.0.0.1") -> Service:
    return Service(uuid, "rails", "production", "east", "1.0", host, 8080, 30)


class MemoryNetwork:
    """Delivers messages and forwarded proposals between nodes on a clock.

    Every delivery takes one ``callLater(0)``; ``cut`` links lose traffic.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.handlers: dict[str, IRaftHandler] = {}
        self.cut: set[frozenset[str]] = set()
        #: (src, dst) pairs whose Raft messages (not forwards) are lost.
        self.blocked: set[tuple[str, str]] = set()
        self.lose_forward_answers = 0
        self.sent: list[Message] = []

    def up(self, a: str, b: str) -> bool:
        return a in self.handlers and b in self.handlers and frozenset((a, b)) not in self.cut

    def isolate(self, node: str, others: Sequence[str]) -> None:
        for other in others:
            if other != node:
                self.cut.add(frozenset((node, other)))

    def heal(self) -> None:
        self.cut.clear()

    def deliver(self, message: Message) -> None:
        self.sent.append(message)
        if self.up(message.src, message.dst) and (message.src, message.dst) not in self.blocked:
            self.clock.callLater(0, self._arrive, message)

    def _arrive(self, message: Message) -> None:
        if self.up(message.src, message.dst):
            removed = self.handlers[message.dst].receive(message)
            if removed is not None and message.src in self.handlers:
                self.handlers[message.src].removed_notice(message.dst, message.src, removed)

    def call(self, src: str, to: str, make: Any) -> Deferred[Any]:
        """``make(handler)`` on ``to``'s side, answered back over the network."""
        if not self.up(src, to):
            return fail(PeerUnavailable(to))
        d: Deferred[Any] = Deferred()

        def arrive() -> None:
            if not self.up(src, to):
                d.errback(PeerUnavailable(to))
                return

            def answer(result: object) -> None:
                if isinstance(result, Failure):
                    self.clock.callLater(0, d.errback, result)
                elif self.lose_forward_answers:
                    self.lose_forward_answers -= 1
                    self.clock.callLater(0, d.errback, PeerUnavailable("answer lost"))
                else:
                    self.clock.callLater(0, d.callback, result)

            make(self.handlers[to]).addBoth(answer)

        self.clock.callLater(0, arrive)
        return d


@implementer(IRaftTransport)
class MemoryTransport:
    def __init__(self, network: MemoryNetwork, node_id: str) -> None:
        self.network = network
        self.node_id = node_id
        self.peers: dict[str, str] = {}

    def start(self, handler: IRaftHandler) -> None:
        self.network.handlers[self.node_id] = handler

    def stop(self) -> Deferred[None]:
        self.network.handlers.pop(self.node_id, None)
        return succeed(None)

    def send(self, message: Message) -> None:
        self.network.deliver(message)

    def forward(self, to: str, data: bytes) -> Deferred[tuple[int, int]]:
        return self.network.call(self.node_id, to, lambda h: h.accept_proposal(data))

    def ask(self, to: str, data: bytes) -> Deferred[bytes]:
        return self.network.call(self.node_id, to, lambda h: h.answer_leader_request(data))

    def change_member(
        self, to: str, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        return self.network.call(
            self.node_id, to, lambda h: h.change_member(op, member_id, address)
        )

    def add_peer(self, peer_id: str, address: str) -> None:
        self.peers[peer_id] = address

    def remove_peer(self, peer_id: str) -> None:
        self.peers.pop(peer_id, None)


class FailingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        if self.broken:
            raise StorageFailure("fdatasync failed: EIO")
        super().save(hard_state, entries)


class NodeUnderTest(RaftCluster):
    """A node as the API sees it (`ICluster`), and the node's own attributes."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)  # zope's and Python's own, not the node's
        return getattr(self.node, name)

    @property
    def sessions(self) -> Any:
        return self.node.applier.sessions

    def add_member(self, member_id: str, address: str) -> Deferred[dict[str, str | None]]:
        return self.node.change_member("add", member_id, address)

    def remove_member(self, member_id: str) -> Deferred[dict[str, str | None]]:
        return self.node.change_member("remove", member_id, None)


class Cluster:
    """A few RaftNodes sharing one clock and one network."""

    def __init__(
        self,
        ids: Sequence[str] = ("a", "b", "c"),
        seed: int = 1,
        save_delay: float | None = None,
        options: NodeOptions | None = None,
        thread_delay: float | None = None,
    ) -> None:
        #: With a delay, saves complete later, as they do in a thread.
        self.save_delay = save_delay
        #: With a delay, snapshots are written and decoded "in a thread" that
        #: takes that long.
        self.thread_delay = thread_delay
        self.options = options or NodeOptions()
        self.clock = Clock()
        self.network = MemoryNetwork(self.clock)
        self.ids = list(ids)
        self.storages: dict[str, MemoryStorage] = {i: FailingStorage() for i in ids}
        self.nodes: dict[str, NodeUnderTest] = {}
        self.applied: dict[str, list[tuple[Command, Applied, bool]]] = {}
        self.stopped: list[str] = []
        self.seed = seed
        for node_id in ids:
            self.start(node_id)

    def addresses(self) -> dict[str, str | None]:
        return {i: f"127.0.0.1:{7000 + n}" for n, i in enumerate(self.ids)}

    def start(
        self, node_id: str, peers: dict[str, str | None] | None = None, **options: Any
    ) -> NodeUnderTest:
        """Start (or restart) ``node_id``: a member of the cluster's initial
        configuration, or with ``peers`` (and ``joining=True``) a new node."""
        machine = RegistryMachine(Registry())
        node = RaftNode(
            node_id,
            peers if peers is not None else self.addresses(),
            self.storages.setdefault(node_id, FailingStorage()),
            MemoryTransport(self.network, node_id),
            machine,
            self.clock,
            options=attrs.evolve(self.options, **options),
            rng=random.Random(f"{self.seed}-{node_id}-{len(self.applied)}"),
            metrics=Metrics(),
            fail_stop=self.stopped.append,
            in_thread=None if self.save_delay is None and self.thread_delay is None
            else self._in_thread,
        )
        wrapped = NodeUnderTest(node, machine, self.clock, monotonic=self.clock.seconds)
        log = self.applied[node_id] = []
        wrapped.add_apply_listener(lambda c, a, live: log.append((c, a, live)))
        node.startService()
        self.nodes[node_id] = wrapped
        return wrapped

    def _in_thread(self, call: Any, *args: Any) -> Deferred[Any]:
        """Run ``call`` at once; its Deferred fires after the save delay (a
        save) or the thread delay (anything else)."""
        saving = getattr(call, "__name__", "") == "save"
        try:
            result = call(*args)
        except StorageFailure:
            return fail()
        d: Deferred[Any] = Deferred()
        delay = self.save_delay if saving else self.thread_delay
        self.clock.callLater(delay or 0.0, d.callback, result)
        return d

    def crash(self, node_id: str) -> None:
        """Like kill -9: nothing more is written (MemoryStorage keeps what was saved)."""
        node = self.nodes.pop(node_id).node
        node.condition.running = False
        node._halt("crashed")
        self.network.handlers.pop(node_id, None)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / STEP)):
            self.clock.advance(STEP)

    def leader(self) -> NodeUnderTest | None:
        leaders = [n for n in self.nodes.values() if n.is_leader()]
        assert len(leaders) <= 1 or len({n.core.term for n in leaders}) == len(leaders)
        return max(leaders, key=lambda n: n.core.term) if leaders else None

    def elect(self, timeout: float = 5.0) -> NodeUnderTest:
        for _ in range(round(timeout / STEP)):
            self.clock.advance(STEP)
            leader = self.leader()
            if leader is not None and all(n.is_ready() for n in self.nodes.values()):
                return leader
        raise AssertionError("no leader elected")

    def follower(self) -> NodeUnderTest:
        return next(n for n in self.nodes.values() if not n.is_leader())
