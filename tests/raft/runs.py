"""What a simulated scenario returns, and the steps every scenario ends with."""

from __future__ import annotations

from collections import Counter

from attrs import define, field

from tests.linearizability import RegisterModel, check
from tests.raft.clients import Clients
from tests.raft.invariants import SafetyViolation
from tests.raft.world import SIM_OPTIONS, World

ELECTION = SIM_OPTIONS.election_tick * SIM_OPTIONS.tick_interval


@define
class Run:
    events: int = 0
    faults: Counter[str] = field(factory=Counter)
    operations: int = 0

    @classmethod
    def of(cls, world: World, clients: Clients | None = None) -> Run:
        ops = len(clients.history()) if clients is not None else 0
        return cls(world.clock.events, Counter(world.faults), ops)


def linearizable(clients: Clients) -> None:
    result = check(clients.history(), RegisterModel())
    if result.violation:
        raise SafetyViolation(f"client history not linearizable: {result.detail}")
    assert not result.partial, result.detail


def wait_leader(world: World, within: float = 20 * ELECTION) -> str:
    world.run_for(within, lambda: world.leader() is not None)
    leader = world.leader()
    assert leader is not None, f"seed {world.seed}: no leader within {within}s: {world.statuses()}"
    return leader


def finish(world: World, clients: Clients, until: float, settle: float = 10.0) -> Run:
    world.run_until(until)
    world.settle(settle)
    world.run_for(1.0, clients.idle)
    linearizable(clients)
    assert clients.completed > 0, "no client operation completed"
    return Run.of(world, clients)


