"""A hand-driven cluster for scripted scenarios (the paper's Figure 8).

Messages wait in one list until the script delivers or drops them; disks
sync at once; the same `Invariants` as the simulation are checked after
every delivery.
"""

from __future__ import annotations

import random
from typing import Callable

from skydns.raft.core.messages import Message
from skydns.raft.core.raft import RaftCore, RestoredState, Role
from skydns.raft.core.ready import ReadState
from tests.raft.invariants import Invariants
from tests.raft.kv import KV
from tests.raft.sim import SimNode


class Scripted:
    def __init__(self, ids: list[str], seed: int = 0, **options: object) -> None:
        self.ids = ids
        self.options = options
        self.rng = random.Random(seed)
        self.nodes = {i: SimNode(i, kv=KV()) for i in ids}
        self.invariants = Invariants()
        self.queue: list[Message] = []
        self.read_states: dict[str, list[ReadState]] = {i: [] for i in ids}
        for node in self.nodes.values():
            self._boot(node)

    def _boot(self, node: SimNode) -> None:
        restored = RestoredState(node.disk.hard_state, tuple(node.disk.entries))
        node.core = RaftCore(
            node.id,
            self.ids,
            restored,
            random.Random(self.rng.random()),
            **self.options,  # type: ignore[arg-type]
        )
        node.kv = KV()

    def core(self, node_id: str) -> RaftCore:
        core = self.nodes[node_id].core
        assert core is not None, f"{node_id} is down"
        return core

    def process(self, node_id: str) -> None:
        node = self.nodes[node_id]
        core = node.core
        while core is not None and core.has_ready():
            rd = core.ready()
            self.invariants.on_ready(node_id, core, rd)
            node.disk.write(rd.hard_state, rd.entries)
            node.disk.sync()
            self.queue.extend(rd.messages)
            self.read_states[node_id].extend(rd.read_states)
            for entry in rd.committed_entries:
                self.invariants.on_apply(node_id, entry)
                node.kv.apply(entry)
            core.advance(rd)
        self.invariants.check(self.nodes)

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
            node = self.nodes[m.dst]
            if node.core is None:
                continue
            node.core.step(m)
            delivered += 1
            self.process(m.dst)
        self.queue = [m for m in self.queue if keep(m)]
        return delivered

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.core = None
        node.incarnation += 1

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
