"""Simulated clients of the real nodes: writers, compare-and-setters and
linearizable readers.

Each client runs one operation at a time against a node it picks (or is
stuck to): a write or CAS is the node's own `RaftNode.propose`, so the
node's forwarding to the leader, its retries and its session de-duplication
are what is exercised; a read is `RaftNode.read_barrier` and then the node's
local state.  Every operation is recorded for the linearizability checker.
One that fails after the node may have submitted it, or that is never
answered (its node crashed), is recorded with an unknown outcome: it may or
may not have happened.  An operation a node refused outright is dropped.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from attrs import define, field
from twisted.python.failure import Failure

from skydns.raft.node.errors import Unavailable
from tests.linearizability import UNKNOWN, Operation
from tests.raft.kv import command
from tests.raft.world import World


@define
class _Op:
    kind: str
    key: str
    input: Any
    call: float
    node: str = ""
    number: int = 0


@define(eq=False)
class Client:
    id: str
    #: Always talk to this node (to keep clients on a partitioned old leader).
    sticky: str | None = None
    op: _Op | None = None
    ops: int = 0
    history: list[Operation] = field(factory=list)
    #: Operations whose outcome is unknown (recorded pending).
    unknown: list[Operation] = field(factory=list)


class Clients:
    def __init__(
        self,
        world: World,
        count: int,
        keys: tuple[str, ...] = ("x", "y"),
        read_ratio: float = 0.4,
        cas_ratio: float = 0.2,
        timeout: float = 1.2,
        think: float = 0.03,
        sticky: dict[int, str] | None = None,
        on_done: Callable[[str, str], None] | None = None,
        prefer_leader: float = 0.0,
    ) -> None:
        """``on_done(node, kind)`` is told of each operation a node answered;
        with ``prefer_leader`` an operation goes to the leader that often."""
        self.world = world
        self.on_done = on_done
        self.prefer_leader = prefer_leader
        self.keys = keys
        self.read_ratio = read_ratio
        self.cas_ratio = cas_ratio
        self.timeout = timeout
        self.think = think
        self.stop_at = 0.0
        self.clients = [Client(f"c{i}") for i in range(1, count + 1)]
        for number, node in (sticky or {}).items():
            self.clients[number].sticky = node
        self.values: dict[str, list[Any]] = {k: [None] for k in keys}
        self.completed = 0
        self.refused = 0
        self._number = 0

    def start(self, until: float) -> None:
        """Issue operations until time ``until``."""
        self.stop_at = until
        for client in self.clients:
            delay = self.world.rng.uniform(0, self.think)
            self.world.clock.callLater(delay, functools.partial(self._next, client))

    def history(self) -> list[Operation]:
        """Every operation so far; those unanswered or unknown as pending."""
        ops = [op for c in self.clients for op in c.history + c.unknown]
        for c in self.clients:
            if c.op is not None:
                op = c.op
                ops.append(Operation(c.id, op.key, op.kind, op.input, UNKNOWN, op.call, None))
        return ops

    def idle(self) -> bool:
        return all(c.op is None for c in self.clients)

    def _next(self, client: Client) -> None:
        world = self.world
        rng = world.rng
        if world.now >= self.stop_at or client.op is not None:
            return
        client.ops += 1
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < self.read_ratio:
            op = _Op("read", key, None, world.now)
        elif roll < self.read_ratio + self.cas_ratio:
            old = rng.choice(self.values[key][-3:])
            op = _Op("cas", key, (old, f"{client.id}.{client.ops}"), world.now)
        else:
            value = f"{client.id}.{client.ops}"
            self.values[key].append(value)
            op = _Op("write", key, value, world.now)
        self._number += 1
        op.number = self._number
        up = [h.id for h in world.up() if h.handler.condition.refusal() is None]
        target = client.sticky if client.sticky is not None else (rng.choice(up) if up else None)
        if client.sticky is None and self.prefer_leader and rng.random() < self.prefer_leader:
            target = world.leader() or target
        if target is None or not world.hosts[target].up:
            self._later(client)
            return
        client.op = op
        op.node = target
        node = world.node(target)
        if op.kind == "read":
            d = node.read_barrier()
            d.addCallback(lambda _: self._read(client, op, target))
        else:
            d = node.propose(command(op.kind, op.key, op.input))
            if d.called:  # refused outright, never submitted: it did not happen
                d.addErrback(lambda f: None)
                client.op = None
                self.refused += 1
                self._later(client)
                return
        d.addCallbacks(lambda result: self._done(client, op, result),
                       lambda failure: self._failed(client, op, failure))  # fmt: skip
        world.clock.callLater(self.timeout, self._timed_out, client, op)

    def _read(self, client: Client, op: _Op, target: str) -> Any:
        host = self.world.hosts[target]
        if host.machine is None:
            raise Unavailable("crashed")
        return host.machine.data.get(op.key)

    def _done(self, client: Client, op: _Op, output: Any) -> None:
        if client.op is not op:
            return
        if op.kind == "write":
            output = None
        client.history.append(
            Operation(client.id, op.key, op.kind, op.input, output, op.call, self.world.now)
        )
        self.completed += 1
        if self.on_done is not None:
            self.on_done(op.node, op.kind)
        client.op = None
        self._later(client)

    def _failed(self, client: Client, op: _Op, failure: Failure) -> None:
        if client.op is not op:
            return
        client.op = None
        if op.kind == "read":
            self.refused += 1  # a failed read returned nothing: it is not in the history
        else:
            client.unknown.append(Operation(client.id, op.key, op.kind, op.input, UNKNOWN,
                                            op.call, None))  # fmt: skip
        self._later(client)

    def _timed_out(self, client: Client, op: _Op) -> None:
        if client.op is op:
            self._failed(client, op, Failure(TimeoutError("no answer")))

    def _later(self, client: Client) -> None:
        delay = self.world.rng.uniform(0.001, self.think)
        self.world.clock.callLater(delay, functools.partial(self._next, client))
