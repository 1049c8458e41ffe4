"""A hand-driven cluster of pure cores for scripted scenarios (the paper's
Figure 8 and a few others), one message at a time.

Messages wait in one list until the script delivers or drops them; each
core's "disk" (hard state and log) is written and synced at once; election
safety, log matching and state machine safety are checked after every step.
The seeded simulation of the real node is ``tests.raft.world``.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from attrs import define, field

from skydns.raft.core.messages import Entry, EntryKind, HardState, Message
from skydns.raft.core.raft import RaftCore, RestoredState, Role
from skydns.raft.core.ready import ReadState
from tests.raft.invariants import SafetyViolation


def command(kind: str, key: str, value: Any) -> bytes:
    return json.dumps({"op": kind, "k": key, "v": value}).encode()


@define(eq=False)
class _Server:
    id: str
    hard_state: HardState = HardState()
    log: list[Entry] = field(factory=list)
    core: RaftCore | None = None
    data: dict[str, Any] = field(factory=dict)


class Scripted:
    def __init__(self, ids: list[str], seed: int = 0, **options: Any) -> None:
        self.ids = ids
        self.options = options
        self.rng = random.Random(seed)
        self.nodes = {i: _Server(i) for i in ids}
        self.queue: list[Message] = []
        self.read_states: dict[str, list[ReadState]] = {i: [] for i in ids}
        self.leaders: dict[int, str] = {}
        self.shape: dict[tuple[int, int], bytes] = {}
        self.applied: dict[int, Entry] = {}
        for server in self.nodes.values():
            self._boot(server)

    def _boot(self, server: _Server) -> None:
        restored = RestoredState(server.hard_state, tuple(server.log))
        server.core = RaftCore(server.id, self.ids, restored, random.Random(self.rng.random()),
                               **self.options)  # fmt: skip
        server.data = {}

    def core(self, node_id: str) -> RaftCore:
        core = self.nodes[node_id].core
        assert core is not None, f"{node_id} is down"
        return core

    def process(self, node_id: str) -> None:
        server = self.nodes[node_id]
        core = server.core
        while core is not None and core.has_ready():
            rd = core.ready()
            if rd.hard_state is not None:
                server.hard_state = rd.hard_state
            if rd.entries:
                del server.log[rd.entries[0].index - 1 :]
                server.log.extend(rd.entries)
                for e in rd.entries:
                    if self.shape.setdefault((e.index, e.term), e.data) != e.data:
                        raise SafetyViolation(f"log matching at {e.index}/{e.term}")
            self.queue.extend(rd.messages)
            self.read_states[node_id].extend(rd.read_states)
            for entry in rd.committed_entries:
                if self.applied.setdefault(entry.index, entry) != entry:
                    raise SafetyViolation(f"{node_id} applied a different entry at {entry.index}")
                if entry.kind is EntryKind.NORMAL:
                    body = json.loads(entry.data)
                    server.data[body["k"]] = body["v"]
            core.advance(rd)
            if core.role is Role.LEADER and self.leaders.setdefault(core.term, node_id) != node_id:
                raise SafetyViolation(f"two leaders in term {core.term}")

    def do(self, node_id: str, action: Callable[[RaftCore], object]) -> None:
        action(self.core(node_id))
        self.process(node_id)

    def deliver(
        self,
        allow: Callable[[Message], bool] = lambda m: True,
        keep: Callable[[Message], bool] = lambda m: False,
    ) -> int:
        """Deliver allowed messages (and what they cause) until none is left.

        Queued messages that are not allowed are dropped, unless ``keep``
        says to leave them queued.  Returns how many were delivered.
        """
        delivered = 0
        while True:
            index = next((i for i, m in enumerate(self.queue) if allow(m)), None)
            if index is None:
                break
            m = self.queue.pop(index)
            core = self.nodes[m.dst].core
            if core is None:
                continue
            core.step(m)
            delivered += 1
            self.process(m.dst)
        self.queue = [m for m in self.queue if keep(m)]
        return delivered

    def crash(self, node_id: str) -> None:
        self.nodes[node_id].core = None

    def restart(self, node_id: str) -> None:
        self._boot(self.nodes[node_id])
        self.process(node_id)

    def elect(self, node_id: str, voters: set[str]) -> RaftCore:
        """Campaign (without PreVote) until ``node_id`` wins with ``voters``."""
        for _ in range(5):
            self.do(node_id, lambda c: c.campaign(prevote=False))
            self.deliver(
                lambda m: {m.src, m.dst} <= voters | {node_id} and _is_vote(m),
                keep=lambda m: not _is_vote(m),
            )
            if self.core(node_id).role is Role.LEADER:
                return self.core(node_id)
        raise AssertionError(f"{node_id} could not win an election with {voters}")


def _is_vote(m: Message) -> bool:
    return type(m).__name__ in ("RequestVote", "RequestVoteResponse")
