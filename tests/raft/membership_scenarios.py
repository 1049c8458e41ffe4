"""Scenarios for snapshots and membership changes (issue 6), each a
function of a seed, run under the same invariants and linearizability check
as ``tests.raft.scenarios``.  ``tests/raft/test_membership_scenarios.py``
runs them on fixed seeds."""

from __future__ import annotations

from typing import Callable

from skydns.raft.core.messages import InstallSnapshot, Message
from tests.raft.clients import Clients
from tests.raft.nemesis import Nemesis
from tests.raft.scenarios import ELECTION, Run, linearizable, statuses, wait_leader
from tests.raft.sim import SimConfig
from tests.raft.snapsim import SnapSim, voters


def _settle(sim: SnapSim, within: int = 5000) -> None:
    sim.heal()
    for node_id in sim.ids:
        sim.restart(node_id)
    assert sim.run_until(sim.now + within, sim.converged), f"no convergence: {statuses(sim)}"


def _same_state(sim: SnapSim) -> None:
    leader = sim.leader()
    assert leader is not None
    lead = sim.core(leader)
    want = sim.nodes[leader].kv
    for node_id in lead.config.voters | lead.config.learners:
        kv = sim.nodes[node_id].kv
        assert kv.data == want.data, f"{node_id} state differs from the leader's"
        assert kv.sessions.snapshot() == want.sessions.snapshot(), f"{node_id} sessions differ"


def snapshot_catch_up(seed: int) -> Run:
    """A follower down while the others compact past its log catches up by
    snapshot; its session table (exactly-once) comes with the snapshot."""
    sim = SnapSim(seed, SimConfig(nodes=3))
    clients = Clients(sim, 3, timeout=300)
    clients.start(4000)
    wait_leader(sim)
    down = sim.rng.choice([n for n in sim.ids if n != sim.leader()])
    sim.crash(down)
    sim.run_until(2500)
    lead = sim.leader()
    assert lead is not None
    assert sim.core(lead).log.snapshot.index > 1, "the leader never compacted"
    sim.restart(down)
    sim.run_until(4000)
    _settle(sim)
    assert sim.installs >= 1, "no snapshot was installed"
    _same_state(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def snapshot_leader_change(seed: int) -> Run:
    """The leader is cut off right after it starts sending a snapshot: the new
    leader's snapshot (or entries) bring the follower up; nothing breaks."""
    sim = SnapSim(seed, SimConfig(nodes=3))
    clients = Clients(sim, 3, timeout=300)
    clients.start(4000)
    wait_leader(sim)
    down = sim.rng.choice([n for n in sim.ids if n != sim.leader()])
    sim.crash(down)
    sim.run_until(2000)
    cut_once: list[str] = []
    original: Callable[[Message], None] = sim.send

    def send(m: Message) -> None:
        original(m)
        if isinstance(m, InstallSnapshot) and not cut_once:
            cut_once.append(m.src)
            sim.at(sim.now + 1, lambda: sim.isolate(m.src))
            sim.at(sim.now + 6 * ELECTION, sim.heal)

    sim.send = send  # type: ignore[method-assign]
    sim.restart(down)
    sim.run_until(4000)
    _settle(sim)
    assert cut_once, "no snapshot was sent"
    _same_state(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def learner_promotion(seed: int) -> Run:
    """Grow 3 -> 5 under load: each new node joins as a learner, catches up
    (by snapshot: the log was compacted) and is promoted."""
    sim = SnapSim(seed, SimConfig(nodes=5), members=3)
    clients = Clients(sim, 3, timeout=300)
    clients.start(6000)
    wait_leader(sim)
    sim.run_until(1500)
    current = {"n1", "n2", "n3"}
    for new in ("n4", "n5"):
        sim.change_until(voters(*current, learners=(new,)), 2000)
        sim.run_until(sim.now + 3000, lambda n=new: sim.caught_up(n))  # type: ignore[misc]
        assert sim.caught_up(new), f"{new} never caught up: {statuses(sim)}"
        current.add(new)
        sim.change_until(voters(*current), 2000)
    sim.run_until(6000)
    _settle(sim)
    lead = sim.core(sim.leader() or "")
    assert lead.config == voters(*current), lead.config
    assert sim.installs >= 1, "the learners caught up without a snapshot"
    _same_state(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def learner_in_minority(seed: int) -> Run:
    """A voter cut off with a learner has no quorum: learners never vote, so
    it cannot be elected, and the majority side keeps serving."""
    sim = SnapSim(seed, SimConfig(nodes=4), members=3)
    clients = Clients(sim, 3, timeout=300)
    clients.start(5000)
    wait_leader(sim)
    voters_now = sorted(sim.members)
    sim.change_until(voters(*voters_now, learners=("n4",)), 2000)
    sim.run_until(sim.now + 2000, lambda: sim.caught_up("n4"))
    lonely = sim.rng.choice([n for n in voters_now if n != sim.leader()])
    others = [n for n in voters_now if n != lonely]
    sim.partition([lonely, "n4"], others)
    term_before = sim.core(lonely).term
    sim.run_until(sim.now + 30 * ELECTION)
    assert sim.core(lonely).role.value != "leader", "a voter won with a learner's vote"
    assert sim.leader() in others, f"the majority lost its leader: {statuses(sim)}"
    assert sim.core(lonely).term == term_before, "PreVote should keep the term"
    sim.run_until(5000)
    _settle(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def leader_removal(seed: int) -> Run:
    """The leader removes itself under load: it hands over and steps down."""
    sim = SnapSim(seed, SimConfig(nodes=3))
    clients = Clients(sim, 3, timeout=300)
    clients.start(4000)
    old = wait_leader(sim)
    sim.run_until(1000)
    others = [n for n in sim.ids if n != old]
    sim.change_until(voters(*others), 3000)
    sim.run_until(sim.now + 3 * ELECTION, lambda: sim.leader() in others)
    assert sim.leader() in others, f"no new leader: {statuses(sim)}"
    sim.run_until(4000)
    _settle(sim)
    assert sim.leader() in others
    assert sim.core(old).role.value != "leader"
    linearizable(clients)
    return Run.of(sim, clients)


def remove_partitioned(seed: int) -> Run:
    """A partitioned node is removed; the rest go on; when it comes back it
    does not disrupt them."""
    sim = SnapSim(seed, SimConfig(nodes=5))
    clients = Clients(sim, 3, timeout=300)
    clients.start(5000)
    leader = wait_leader(sim)
    gone = sim.rng.choice([n for n in sim.ids if n != leader])
    sim.isolate(gone)
    rest = [n for n in sim.ids if n != gone]
    sim.change_until(voters(*rest), 3000)
    sim.run_until(3000)
    term = sim.core(sim.leader() or rest[0]).term
    sim.heal()
    sim.run_until(5000)
    _settle(sim)
    assert sim.leader() in rest
    assert sim.core(sim.leader() or "").term <= term + 2, "the removed node disrupted the rest"
    linearizable(clients)
    return Run.of(sim, clients)


def changes_during_partitions(seed: int) -> Run:
    """Add and remove members (3 -> 5 -> 3) while a nemesis partitions,
    crashes and transfers leadership."""
    sim = SnapSim(seed, SimConfig(nodes=5), members=3)
    clients = Clients(sim, 3, timeout=400)
    clients.start(12000)
    nemesis = Nemesis(sim, kinds=("partition", "isolate_leader", "heal", "crash", "transfer"))
    nemesis.start(8000)
    wait_leader(sim)
    plan = [
        voters("n1", "n2", "n3", learners=("n4",)),
        voters("n1", "n2", "n3", "n4"),
        voters("n1", "n2", "n3", "n4", learners=("n5",)),
        voters("n1", "n2", "n3", "n4", "n5"),
        voters("n2", "n3", "n4", "n5"),
        voters("n3", "n4", "n5"),
    ]
    done = 0
    for new in plan:
        deadline = sim.now + 3000
        while sim.now < deadline and sim.committed_config() != new:
            sim.change(new)
            sim.run_until(sim.now + 50)
        if sim.committed_config() == new:
            done += 1
    sim.run_until(12000)
    _settle(sim, 6000)
    assert done >= 2, f"only {done} membership changes committed"
    assert clients.completed > 20, "almost no operation completed"
    _same_state(sim)
    linearizable(clients)
    return Run.of(sim, clients)


SCENARIOS: dict[str, Callable[[int], Run]] = {
    "snapshot_catch_up": snapshot_catch_up,
    "snapshot_leader_change": snapshot_leader_change,
    "learner_promotion": learner_promotion,
    "learner_in_minority": learner_in_minority,
    "leader_removal": leader_removal,
    "remove_partitioned": remove_partitioned,
    "changes_during_partitions": changes_during_partitions,
}
