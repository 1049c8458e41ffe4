"""The named fault scenarios, each a function of a seed.

Each returns a `Run` (steps taken, faults injected) or raises: a
`SafetyViolation` when a Raft invariant breaks or a history is not
linearizable, an ``AssertionError`` when the cluster failed to make the
progress the scenario expects.  ``tests/raft/test_scenarios.py`` runs each on
a fixed set of seeds; ``bench/raft_seeds.py`` runs thousands.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Callable

from attrs import define, field

from skydns.raft.core.messages import (
    AppendEntries,
    Heartbeat,
    HeartbeatResponse,
    RequestVoteResponse,
)
from skydns.raft.core.raft import RaftCore, Role
from tests.linearizability import RegisterModel, check
from tests.raft.clients import Clients
from tests.raft.invariants import SafetyViolation
from tests.raft.kv import command
from tests.raft.nemesis import Nemesis
from tests.raft.script import Scripted
from tests.raft.sim import Sim, SimConfig, SimNode

TICK = SimConfig().tick_interval
ELECTION = SimConfig().election_tick * TICK


@define
class Run:
    steps: int = 0
    faults: Counter[str] = field(factory=Counter)
    operations: int = 0
    #: Writes a node appended together with others (one `propose_many`).
    batched: int = 0

    @classmethod
    def of(cls, sim: Sim, clients: Clients | None = None) -> Run:
        if clients is None:
            return cls(sim.steps, Counter(sim.faults))
        return cls(sim.steps, Counter(sim.faults), len(clients.history()), clients.batched)


def linearizable(clients: Clients) -> None:
    result = check(clients.history(), RegisterModel())
    if result.violation:
        raise SafetyViolation(f"client history not linearizable: {result.detail}")
    assert not result.partial, result.detail


def settle(sim: Sim, within: int = 4000) -> None:
    assert sim.settle(within), f"no convergence within {within} after healing: {statuses(sim)}"


def statuses(sim: Sim) -> list[object]:
    return [n.core.status() if n.core else f"{n.id} down" for n in sim.nodes.values()]


def wait_leader(sim: Sim, within: int = 20 * ELECTION) -> str:
    sim.run_until(sim.now + within, lambda: sim.leader() is not None)
    leader = sim.leader()
    assert leader is not None, f"no leader within {within}: {statuses(sim)}"
    return leader


def split_votes(seed: int) -> Run:
    """Every survivor of a leader crash campaigns at once: the term splits, a later one wins."""
    sim = Sim(seed, SimConfig(nodes=5, pre_vote=False, delay_min=2, delay_max=12))
    splits = 0
    for _ in range(4):
        leader = wait_leader(sim)
        sim.crash(leader)
        up = [sim.nodes[n] for n in sim.ids if sim.nodes[n].up]
        # Campaign only when no node is in the middle of an fsync (its
        # campaign would be queued behind it) and all are in the same term.
        sim.run_until(sim.now + ELECTION, functools.partial(_in_step, up))
        terms = {n.core.term for n in up if n.core is not None}
        simultaneous = _in_step(up)
        for node in up:
            sim.input(node, lambda c: c.campaign(prevote=False))
        wait_leader(sim)
        if simultaneous:
            # Each candidate voted for itself: nobody can win that term.
            split_term = terms.pop() + 1
            assert split_term not in sim.invariants.leaders, f"term {split_term} had a leader"
            splits += 1
        sim.restart(leader)
    assert splits > 0, "no simultaneous campaign happened"
    settle(sim)
    return Run.of(sim)


def _in_step(nodes: list[SimNode]) -> bool:
    """No node is syncing and all are in the same term."""
    terms = {n.core.term for n in nodes if n.core is not None}
    return len(terms) == 1 and all(n.syncing is None for n in nodes)


def leader_crash_mid_replication(seed: int) -> Run:
    """The leader crashes while it holds entries no follower has acknowledged."""
    sim = Sim(seed, SimConfig(nodes=5, long_delay=0.02))
    clients = Clients(sim, 5, think=10)
    clients.start(8000)
    while sim.now < 8000:
        sim.run_until(sim.now + sim.rng.randint(200, 500))
        leader = sim.leader()
        if leader is not None and sim.run_until(
            sim.now + 200, functools.partial(_uncommitted, sim, leader)
        ):
            sim.faults["leader crash mid-replication"] += 1
            sim.crash(leader)
            sim.at(sim.now + sim.rng.randint(50, 400), functools.partial(sim.restart, leader))
    assert sim.faults["leader crash mid-replication"] > 0
    sim.run_until(sim.now + 1000)
    settle(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def _not_leader(sim: Sim, node_id: str) -> bool:
    return sim.core(node_id).role is not Role.LEADER


def _uncommitted(sim: Sim, node_id: str) -> bool:
    core = sim.nodes[node_id].core
    return core is not None and core.log.last_index() > core.log.committed


def _is_leader(sim: Sim, node_id: str) -> bool:
    return sim.leader() == node_id


def partitioned_old_leader(seed: int) -> Run:
    """An old leader cut off with a minority commits nothing and serves no read.

    CheckQuorum is off so the old leader keeps believing it leads: only the
    commit rule and ReadIndex's heartbeat round protect its clients.
    """
    sim = Sim(seed, SimConfig(nodes=5, check_quorum=False))
    clients = Clients(sim, 6, read_ratio=0.5, think=10)
    clients.start(5000)
    sim.run_until(800)
    old = wait_leader(sim)
    old_core = sim.core(old)
    term, last = old_core.term, old_core.log.last_index()
    buddy = sim.rng.choice([n for n in sim.ids if n != old])
    sim.partition([old, buddy], [n for n in sim.ids if n not in (old, buddy)])
    for client in clients.clients[:3]:
        client.sticky = old
    start = sim.now
    sim.run_until(start + 3000)
    assert sim.core(old).role is Role.LEADER, "old leader should still think it leads"
    served = [s for s in clients.served if s[1] == old and start + 2 * TICK < s[0] <= sim.now]
    assert not served, f"the partitioned old leader answered clients: {served[:3]}"
    assert sim.core(old).log.last_index() > last, "the old leader took no writes"
    for client in clients.clients[:3]:
        client.sticky = None
    settle(sim)
    stale = [e for i, e in sim.invariants.committed.items() if e.term == term and i > last]
    assert not stale, f"the old leader's writes were committed: {stale[:3]}"
    linearizable(clients)
    return Run.of(sim, clients)


def figure8_scripted(seed: int) -> Run:
    """Raft Figure 8: an old-term entry on a majority is not yet committed."""
    _figure8(seed, survive=False)
    _figure8(seed, survive=True)
    return Run(steps=0)


def _figure8(seed: int, survive: bool) -> None:
    ids = ["s1", "s2", "s3", "s4", "s5"]
    c = Scripted(ids, seed, max_size_per_msg=1, check_quorum=False)
    c.elect("s1", {"s2", "s3"})
    c.deliver()  # the no-op at index 1 commits everywhere
    c.do("s1", lambda core: core.tick())
    c.deliver()
    assert all(c.core(i).log.committed == 1 for i in ids)
    write = command("c", 1, "write", "x", "A")
    c.do("s1", lambda core: core.propose(write))  # index 2, replicated nowhere
    c.deliver(lambda m: False)
    c.crash("s1")
    c.elect("s5", {"s3", "s4"})  # index 2 of s5's term: its no-op
    c.deliver(lambda m: False)
    c.crash("s5")
    c.restart("s1")
    s1 = c.elect("s1", {"s2", "s3"})
    # s1 carries index 2 (its old term) to s2 and s3, but not yet its no-op.
    c.do("s1", lambda core: core.tick())
    # (A follower lacking index 2 may see the no-op: it rejects it.)
    c.deliver(
        lambda m: "s4" not in (m.src, m.dst) and not (_carries(m, 3) and _term_at(c, m.dst, 2) == 1)
    )
    assert [c.core(i).log.term(2) for i in ("s1", "s2", "s3")] == [1, 1, 1]
    assert s1.log.committed == 1, "an old-term entry was committed by counting replicas"
    if survive:
        # (e): its no-op reaches a majority: index 2 commits with it and stays.
        c.do("s1", lambda core: core.tick())
        c.deliver(lambda m: "s4" not in (m.src, m.dst))
        assert s1.log.committed == 3
        c.crash("s1")
        c.restart("s5")
        c.do("s5", lambda core: core.campaign(prevote=False))
        c.deliver(lambda m: "s1" not in (m.src, m.dst))
        assert c.core("s5").role is not Role.LEADER
        c.restart("s1")
        c.do("s1", lambda core: core.campaign(prevote=False))
        for _ in range(3):
            c.deliver()
            for i in ids:
                c.do(i, lambda core: core.tick())
        c.deliver()
    else:
        # (d): s1 crashes; s5 wins and overwrites index 2 everywhere.
        c.crash("s1")
        c.restart("s5")
        c.elect("s5", {"s2", "s3", "s4"})
        c.do("s5", lambda core: core.tick())
        c.deliver()
        c.restart("s1")
        for _ in range(3):
            c.do("s5", lambda core: core.tick())
            c.deliver()
        assert c.core("s1").log.term(2) == c.core("s5").log.term(2) == 2
    terms = {c.core(i).log.term(2) for i in ids}
    assert len(terms) == 1, terms


def stale_leader_messages(seed: int) -> Run:
    """An AppendEntries from a deposed leader arrives late; it must not
    replace entries the new leader has already replicated (and committed)."""
    c = Scripted(["s1", "s2", "s3"], seed, check_quorum=False)
    c.elect("s1", {"s2", "s3"})
    c.deliver()
    write = command("c", 1, "write", "x", "old")
    c.do("s1", lambda core: core.propose(write))  # index 2, term 1
    held = [m for m in c.queue if isinstance(m, AppendEntries) and m.dst == "s3"]
    c.deliver(lambda m: False)
    c.crash("s1")
    c.elect("s2", {"s3"})  # its no-op is index 2, term 2
    # s3 takes the no-op (so index 2 commits on s2) but hears nothing more.
    c.deliver(lambda m: isinstance(m, AppendEntries) and bool(m.entries) or m.dst == "s2")
    assert c.core("s2").log.committed == 2 and c.core("s3").log.committed == 1
    c.queue.extend(held)  # the old leader's message finally arrives
    c.deliver(lambda m: m in held)
    assert c.core("s3").log.term(2) == 2, "a stale AppendEntries replaced a committed entry"
    for _ in range(3):
        c.do("s2", lambda core: core.tick())
        c.deliver()
    c.restart("s1")
    for _ in range(3):
        c.do("s2", lambda core: core.tick())
        c.deliver()
    assert {c.core(i).log.term(2) for i in c.ids} == {2}
    return Run(steps=0)


def reads_across_leader_change(seed: int) -> Run:
    """A new leader serves no read before it knows the commit index: a write
    acknowledged by the old leader is visible to every later read."""
    c = Scripted(["s1", "s2", "s3"], seed, check_quorum=False)
    c.elect("s1", {"s2", "s3"})
    c.deliver()
    c.do("s1", lambda core: core.tick())
    c.deliver()
    write = command("c", 1, "write", "x", "acknowledged")
    c.do("s1", lambda core: core.propose(write))  # index 2
    # Followers store it; only s1 learns that it committed (and answers the client).
    c.deliver(lambda m: not (isinstance(m, (AppendEntries, Heartbeat)) and m.commit >= 2))
    assert c.nodes["s1"].kv.data.get("x") == "acknowledged"
    c.crash("s1")
    new = c.elect("s2", {"s3"})
    assert new.log.committed < 2
    c.do("s2", lambda core: core.read_index(b"after-the-write"))
    for _ in range(2):
        c.do("s2", lambda core: core.tick())
        c.deliver(lambda m: isinstance(m, (Heartbeat, HeartbeatResponse)), keep=lambda m: True)
    for state in c.read_states["s2"]:
        assert state.index >= 2, f"read at {state.index} misses the acknowledged write at 2"
    c.deliver()
    c.do("s2", lambda core: core.tick())
    c.deliver()
    assert [s.context for s in c.read_states["s2"]] == [b"after-the-write"]
    assert c.nodes["s2"].kv.data.get("x") == "acknowledged"
    return Run(steps=0)


def _term_at(c: Scripted, node_id: str, index: int) -> int | None:
    core = c.nodes[node_id].core
    return None if core is None else core.log.term(index)


def _carries(m: object, index: int) -> bool:
    return isinstance(m, AppendEntries) and any(e.index == index for e in m.entries)


def figure8_randomized(seed: int) -> Run:
    """Leaders crash or are cut off soon after taking writes, over a slow,
    reordering network, so that logs diverge at the same indexes in many
    terms (the setting of Figure 8).  CheckQuorum is off so a cut-off leader
    keeps taking writes; one-entry messages make followers acknowledge old
    entries apart from the new leader's no-op."""
    config = SimConfig(
        nodes=5,
        check_quorum=False,
        delay_max=10,
        reorder=0.3,
        long_delay=0.1,
        long_delay_max=300,
        max_size_per_msg=1,
    )
    sim = Sim(seed, config)
    clients = Clients(sim, 4, think=10, timeout=500)
    clients.start(15000)
    while sim.now < 15000:
        sim.run_until(sim.now + 2000, lambda: sim.leader() is not None)
        leader = sim.leader()
        short = sim.rng.random() < 0.8
        sim.run_until(sim.now + (sim.rng.randint(1, 40) if short else sim.rng.randint(100, 800)))
        if sim.rng.random() < 0.5:
            sim.heal()
        if leader is not None and sim.rng.random() < 0.8:
            if sim.rng.random() < 0.5:
                sim.crash(leader)
            else:
                sim.isolate(leader)
        down = [n for n in sim.ids if not sim.nodes[n].up]
        if down and (len(sim.ids) - len(down) < 3 or sim.rng.random() < 0.5):
            sim.restart(sim.rng.choice(down))
    settle(sim, 6000)
    linearizable(clients)
    return Run.of(sim, clients)


def restart_no_double_vote(seed: int) -> Run:
    """Voters crash and restart in the middle of elections; none votes twice."""
    # Scripted: n2 votes for n1, crashes, restarts, and is asked again by n3.
    c = Scripted(["n1", "n2", "n3"], seed, pre_vote=False)
    c.elect("n1", {"n2"})
    c.crash("n2")
    c.restart("n2")
    c.do("n3", lambda core: core.campaign(prevote=False))
    c.deliver(lambda m: "n1" not in (m.src, m.dst))
    answers = [m for m in c.queue if isinstance(m, RequestVoteResponse)]
    assert c.core("n3").role is not Role.LEADER and not answers
    # Randomized: crashes every few ticks, no PreVote to slow elections down.
    config = SimConfig(nodes=3, pre_vote=False, check_quorum=False, drop=0.1, fsync_delay=2)
    sim = Sim(seed, config)
    nemesis = Nemesis(sim, ("crash", "crash", "crash_leader", "heal"), (10, 80), (5, 60))
    nemesis.start(6000)
    sim.run_until(6000)
    terms_with_leaders = len(sim.invariants.leaders)
    assert terms_with_leaders > 3, "too few elections to prove anything"
    sim.config.drop = 0.0
    settle(sim)
    return Run.of(sim)


def unsynced_writes_lost(seed: int, unsafe: bool = False) -> Run:
    """Crashes land inside fsyncs: whatever was not synced is lost, safely."""
    config = SimConfig(
        nodes=3, fsync_delay=4, crash_in_fsync=0.02, unsafe_send_before_sync=unsafe, pre_vote=False
    )
    sim = Sim(seed, config)
    clients = Clients(sim, 4, think=10)
    clients.start(6000)
    nemesis = Nemesis(sim, ("crash", "crash_leader"), (100, 400), (10, 100))
    nemesis.start(6000)
    sim.run_until(6000)
    assert sim.faults["unsynced writes lost"] > 0
    sim.config.crash_in_fsync = 0.0
    settle(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def unreliable_network(seed: int) -> Run:
    """Heavy loss, duplication and reordering; once it calms down, all converge."""
    config = SimConfig(
        nodes=5,
        drop=0.2,
        duplicate=0.2,
        reorder=0.3,
        delay_max=10,
        long_delay=0.1,
        long_delay_max=200,
    )
    sim = Sim(seed, config)
    clients = Clients(sim, 4, timeout=400, think=20)
    clients.start(6000)
    sim.run_until(6000)
    sim.config.drop = sim.config.duplicate = sim.config.long_delay = sim.config.reorder = 0.0
    sim.run_until(sim.now + 1000)
    settle(sim, 3000)
    assert clients.completed > 20, "almost no operation completed"
    linearizable(clients)
    return Run.of(sim, clients)


def lagging_and_divergent(seed: int) -> Run:
    """A follower misses much of the log; an isolated old leader grows a
    divergent one.  After healing both converge, the divergent one in a few
    round trips thanks to the conflict hint."""
    sim = Sim(seed, SimConfig(nodes=5, check_quorum=False, max_size_per_msg=256))
    clients = Clients(sim, 5, think=5, timeout=60)
    clients.start(6000)
    leader = wait_leader(sim)
    lagging = sim.rng.choice([n for n in sim.ids if n != leader])
    sim.run_until(sim.now + 500)
    sim.partition([lagging], [n for n in sim.ids if n != lagging])
    sim.run_until(sim.now + 1500)
    leader = wait_leader(sim)
    committed = sim.core(leader).log.committed
    sim.partition([lagging], [leader], [n for n in sim.ids if n not in (lagging, leader)])
    for client in clients.clients[:2]:
        client.sticky = leader
    sim.run_until(sim.now + 3000)
    divergent = sim.core(leader).log.last_index() - committed
    assert divergent > 20, f"only {divergent} divergent entries"
    # A new leader of the majority starts probing both from the far end of
    # its long log: only the conflict hint makes them converge quickly.
    majority = [n for n in sim.ids if n not in (lagging, leader)]
    current = wait_leader(sim)
    successor = sim.rng.choice([n for n in majority if n != current])
    sim.input(sim.nodes[current], functools.partial(RaftCore.transfer_leadership, to=successor))
    sim.run_until(sim.now + ELECTION, functools.partial(_is_leader, sim, successor))
    assert sim.leader() == successor, "the transfer inside the majority failed"
    for client in clients.clients:
        client.sticky = None
    before = sim.rejections[leader] + sim.rejections[lagging]
    settle(sim)
    hops = sim.rejections[leader] + sim.rejections[lagging] - before
    assert hops <= 8, f"{hops} rejections to back up over {divergent} divergent entries"
    linearizable(clients)
    return Run.of(sim, clients)


def prevote_check_quorum(seed: int) -> Run:
    """Asymmetric partitions: a node cut off from the leader cannot depose
    it; a leader that loses its quorum steps down within an election timeout."""
    sim = Sim(seed, SimConfig(nodes=5))
    clients = Clients(sim, 3)
    clients.start(1000)
    sim.run_until(1000)
    # No writes while nodes are cut off, so the cut-off node's log stays up
    # to date: only leader stickiness keeps it from winning an election.
    for phase in ("two-way", "one-way-in", "deaf"):
        leader = wait_leader(sim)
        term = sim.core(leader).term
        other = sim.rng.choice([n for n in sim.ids if n != leader])
        if phase == "two-way":
            sim.cut(leader, other)
            sim.cut(other, leader)
        elif phase == "one-way-in":
            sim.cut(leader, other)  # it stops hearing the leader, still talks to all
        else:
            for n in sim.ids:
                if n != other:
                    sim.cut(n, other)  # it hears nobody, everyone hears it
        history = len(sim.leader_history)
        sim.run_until(sim.now + 10 * ELECTION)
        assert len(sim.leader_history) == history, f"{phase}: leader deposed: {sim.leader_history}"
        assert sim.core(other).term == term, f"{phase}: the cut-off node raised its term"
        sim.heal()
    for phase in ("isolated", "cannot-hear"):
        leader = wait_leader(sim)
        if phase == "isolated":
            sim.isolate(leader)
        else:
            for n in sim.ids:
                if n != leader:
                    sim.cut(n, leader)  # it still sends heartbeats, hears no answer
        cut_at = sim.now
        stepped = sim.run_until(sim.now + 3 * ELECTION, functools.partial(_not_leader, sim, leader))
        assert stepped, f"{phase}: the leader kept leading without a quorum"
        assert sim.now - cut_at <= ELECTION + 2 * TICK, f"{phase}: stepped down late"
        new = wait_leader(sim)
        assert new != leader
        history = len(sim.leader_history)
        sim.run_until(sim.now + 10 * ELECTION)
        assert len(sim.leader_history) == history, f"{phase}: the cut-off old leader disrupted"
        sim.heal()
    clients.start(sim.now + 2000)
    sim.run_until(sim.now + 2000)
    settle(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def transfer_under_load(seed: int) -> Run:
    """Leadership moves every few hundred units while clients write and read."""
    sim = Sim(seed, SimConfig(nodes=5))
    clients = Clients(sim, 5, think=5)
    clients.start(8000)
    done = attempts = 0
    while sim.now < 8000:
        leader = wait_leader(sim)
        target = sim.rng.choice([n for n in sim.ids if n != leader])
        sim.input(sim.nodes[leader], functools.partial(RaftCore.transfer_leadership, to=target))
        attempts += 1
        if sim.run_until(sim.now + ELECTION, functools.partial(_is_leader, sim, target)):
            done += 1
        sim.run_until(sim.now + sim.rng.randint(100, 400))
    sim.faults["transfers"] += attempts
    assert done >= attempts * 0.8, f"only {done} of {attempts} transfers completed"
    settle(sim)
    linearizable(clients)
    return Run.of(sim, clients)


def nemesis(seed: int) -> Run:
    """Everything at once: partitions, one-way cuts, crashes (some inside
    fsyncs), transfers, loss, duplication, reordering; then linearizability."""
    config = SimConfig(
        nodes=5,
        drop=0.05,
        duplicate=0.05,
        reorder=0.1,
        long_delay=0.02,
        crash_in_fsync=0.005,
        fsync_delay=2,
    )
    sim = Sim(seed, config)
    clients = Clients(sim, 5, keys=("x", "y", "z"), think=10)
    clients.start(8000)
    Nemesis(sim).start(8000)
    sim.run_until(8000)
    sim.config.drop = sim.config.duplicate = sim.config.crash_in_fsync = 0.0
    sim.run_until(sim.now + 1000)
    settle(sim, 6000)
    linearizable(clients)
    return Run.of(sim, clients)


SCENARIOS: dict[str, Callable[[int], Run]] = {
    "split_votes": split_votes,
    "leader_crash_mid_replication": leader_crash_mid_replication,
    "partitioned_old_leader": partitioned_old_leader,
    "figure8_scripted": figure8_scripted,
    "figure8_randomized": figure8_randomized,
    "stale_leader_messages": stale_leader_messages,
    "reads_across_leader_change": reads_across_leader_change,
    "restart_no_double_vote": restart_no_double_vote,
    "unsynced_writes_lost": unsynced_writes_lost,
    "unreliable_network": unreliable_network,
    "lagging_and_divergent": lagging_and_divergent,
    "prevote_check_quorum": prevote_check_quorum,
    "transfer_under_load": transfer_under_load,
    "nemesis": nemesis,
}
