"""Simulated clients: concurrent writers, CAS-ers and readers with retries.

Each client runs one operation at a time.  A write or CAS is proposed with
the client's id and a sequence number; if no answer comes within
``timeout`` the same request (same sequence number) is retried at another
node, so the log may hold it twice and only the session table keeps it from
applying twice.  A read asks a node for a ReadIndex, waits for that node to
apply up to it, and reads its local state machine.  Every operation is
recorded for the linearizability checker; one never answered is recorded as
pending (it may or may not have happened).
"""

from __future__ import annotations

import functools
from typing import Any

from attrs import define, field

from skydns.raft.core.raft import NotLeader, ProposalDropped
from tests.linearizability import UNKNOWN, Operation
from tests.raft.kv import command
from tests.raft.sim import Sim


@define
class _Op:
    kind: str
    key: str
    input: Any
    seq: int
    call: int
    attempt: int = 0


@define(eq=False)
class Client:
    id: str
    hint: str | None = None
    #: Always talk to this node (to keep clients on a partitioned old leader).
    sticky: str | None = None
    seq: int = 0
    op: _Op | None = None
    history: list[Operation] = field(factory=list)


class Clients:
    def __init__(
        self,
        sim: Sim,
        count: int,
        keys: tuple[str, ...] = ("x", "y"),
        read_ratio: float = 0.4,
        cas_ratio: float = 0.2,
        timeout: int = 300,
        think: int = 30,
    ) -> None:
        self.sim = sim
        self.keys = keys
        self.read_ratio = read_ratio
        self.cas_ratio = cas_ratio
        self.timeout = timeout
        self.think = think
        self.stop_at = 0
        self.clients = [Client(f"c{i}") for i in range(1, count + 1)]
        self.values: dict[str, list[Any]] = {k: [None] for k in keys}
        self.completed = 0
        self.retries = 0
        #: (time, node, kind) of every answered operation.
        self.served: list[tuple[int, str, str]] = []
        #: Writes waiting for their node's `propose_many` this moment.
        self._batches: dict[str, list[tuple[bytes, Any, Any]]] = {}
        #: Writes that went into a log with others in one `propose_many`.
        self.batched = 0

    def start(self, until: int) -> None:
        """Issue operations until time ``until``."""
        self.stop_at = until
        for client in self.clients:
            delay = self.sim.rng.randrange(self.think)
            self.sim.at(self.sim.now + delay, functools.partial(self._next, client))

    def history(self) -> list[Operation]:
        """Every operation so far; those still unanswered as pending."""
        ops = [op for c in self.clients for op in c.history]
        for c in self.clients:
            if c.op is not None:
                op = c.op
                ops.append(Operation(c.id, op.key, op.kind, op.input, UNKNOWN, op.call, None))
        return ops

    def idle(self) -> bool:
        return all(c.op is None for c in self.clients)

    def _next(self, client: Client) -> None:
        rng = self.sim.rng
        if self.sim.now >= self.stop_at or client.op is not None:
            return
        client.seq += 1
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < self.read_ratio:
            op = _Op("read", key, None, client.seq, self.sim.now)
        elif roll < self.read_ratio + self.cas_ratio:
            old = rng.choice(self.values[key][-3:])
            op = _Op("cas", key, (old, f"{client.id}.{client.seq}"), client.seq, self.sim.now)
        else:
            value = f"{client.id}.{client.seq}"
            self.values[key].append(value)
            op = _Op("write", key, value, client.seq, self.sim.now)
        client.op = op
        self._attempt(client)

    def _attempt(self, client: Client) -> None:
        op = client.op
        assert op is not None
        op.attempt += 1
        attempt = op.attempt
        sim = self.sim
        up = [n for n in sim.ids if sim.nodes[n].up]
        target = client.hint if client.hint in up else (sim.rng.choice(up) if up else None)
        if client.sticky is not None:
            target = client.sticky if client.sticky in up else None
        sim.at(sim.now + self.timeout, lambda: self._timeout(client, attempt))
        if target is None:
            return
        node = sim.nodes[target]

        def done(output: Any) -> None:
            if client.op is op and op.attempt == attempt:
                assert target is not None
                self.served.append((sim.now, target, op.kind))
                self._finish(client, output)

        def retry(hint: str | None) -> None:
            if client.op is not op or op.attempt != attempt:
                return
            client.hint = hint if hint is not None and hint != target else sim.rng.choice(sim.ids)
            self.retries += 1
            sim.at(sim.now + 5 + sim.rng.randrange(10), lambda: self._again(client, attempt))

        if op.kind == "read":
            context = f"{client.id}:{op.seq}:{attempt}".encode()

            def read_at(index: int) -> None:
                node.apply_waiters.append((index, lambda: done(node.kv.data.get(op.key))))
                if node.kv.applied >= index:
                    node.apply_waiters.pop()
                    done(node.kv.data.get(op.key))

            def ask(core: Any) -> None:
                try:
                    core.read_index(context)
                    node.read_waiters[context] = read_at
                except NotLeader as e:
                    retry(e.leader)

            sim.input(node, ask)
        else:
            data = command(client.id, op.seq, op.kind, op.key, op.input)

            def proposed() -> None:
                node.write_waiters[(client.id, op.seq)] = done

            def refused(error: Exception) -> None:
                retry(error.leader if isinstance(error, NotLeader) else target)

            # As a node appends what it was given in one turn with one
            # `propose_many`: writes reaching a node at the same moment go
            # into its log together.
            batch = self._batches.setdefault(node.id, [])
            batch.append((data, proposed, refused))
            if len(batch) == 1:
                sim.at(sim.now, lambda: self._propose_batch(node))

    def _propose_batch(self, node: Any) -> None:
        batch = self._batches.pop(node.id, [])
        self.batched += len(batch) if len(batch) > 1 else 0

        def propose(core: Any) -> None:
            try:
                core.propose_many([data for data, _, _ in batch])
            except (NotLeader, ProposalDropped) as e:
                for _, _, refused in batch:
                    refused(e)
                return
            for _, proposed, _ in batch:
                proposed()

        self.sim.input(node, propose)

    def _again(self, client: Client, attempt: int) -> None:
        if client.op is not None and client.op.attempt == attempt:
            self._attempt(client)

    def _timeout(self, client: Client, attempt: int) -> None:
        if client.op is None or client.op.attempt != attempt:
            return
        self.retries += 1
        client.hint = self.sim.rng.choice(self.sim.ids)
        self._attempt(client)

    def _finish(self, client: Client, output: Any) -> None:
        op = client.op
        assert op is not None
        client.history.append(
            Operation(client.id, op.key, op.kind, op.input, output, op.call, self.sim.now)
        )
        client.op = None
        self.completed += 1
        delay = 1 + self.sim.rng.randrange(self.think)
        self.sim.at(self.sim.now + delay, lambda: self._next(client))
