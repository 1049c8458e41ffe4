"""Scenarios that steer real nodes through the known traps of Raft step by
step (the paper's Figure 8, the single-server membership change erratum),
with the seed choosing who plays which part and the timings in between.

Elections happen only when the scenario calls them (long election
timeouts, no PreVote or CheckQuorum); messages are lost on purpose with
network filters.  A bug in the rule each trap tests shows up as a broken
invariant (`tests.raft.invariants`): an entry committed, then overwritten.
"""

from __future__ import annotations

from typing import Callable

import attrs

from skydns.raft.core.messages import AppendEntries, Configuration, Message
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import Role
from skydns.raft.node.configdata import config_data
from tests.linearizability import Operation, RegisterModel, check
from tests.raft.invariants import SafetyViolation
from tests.raft.kv import command
from tests.raft.runs import Run
from tests.raft.world import SIM_OPTIONS, World, WorldConfig

STEERED = attrs.evolve(SIM_OPTIONS, election_tick=1000, check_quorum=False, pre_vote=False,
                       max_size_per_msg=1)  # fmt: skip


def _elect(world: World, who: str, voters: list[str]) -> RaftCore:
    """Partition ``who`` with ``voters`` from the rest and have it campaign."""
    world.partition([who, *voters], [i for i in world.ids if i not in (who, *voters)])
    for _ in range(4):  # each campaign is a term higher than the last
        world.node(who).gate.run(lambda core: core.campaign(prevote=False))
        if world.run_for(0.05, lambda: world.node(who).core.role is Role.LEADER):
            break
    core = world.node(who).core
    assert core.role is Role.LEADER, f"{who} was not elected by {voters}: {world.statuses()}"
    return core


def _carrying(src: str, index: int, to: set[str] | None = None) -> Callable[[Message], bool]:
    def lose(m: Message) -> bool:
        return (isinstance(m, AppendEntries) and m.src == src
                and (to is None or m.dst in to)
                and any(e.index == index for e in m.entries))  # fmt: skip

    return lose


def _pause(world: World) -> None:
    world.run_for(world.rng.uniform(0.01, 0.05))


def figure8_steered(seed: int) -> Run:
    """Figure 8 of the paper on real nodes: an entry of an old term that a
    new leader carries to a majority is not committed by counting; the next
    leader may replace it."""
    world = World(seed, WorldConfig(members=5, hosts=5, options=STEERED, notify_deaths=False))
    s1, s2, s3, s4, s5 = world.rng.sample(world.ids, 5)
    first = _elect(world, s1, [s2, s3, s4, s5])
    world.heal()
    for n in range(world.rng.randint(1, 4)):
        world.node(s1).propose(command("write", "x", f"a{n}"))
    world.run_for(0.1)
    # (a) s1 takes X at index i, which only s2 receives; s1 crashes.
    i = first.log.last_index() + 1
    world.node(s1).propose(command("write", "x", "X"))
    world.network.filters.append(_carrying(s1, i, {s3, s4, s5}))
    _pause(world)
    world.crash(s1)
    world.network.filters.clear()
    # (b) s5 wins with s3 and s4; its no-op takes index i in its term; it crashes.
    _elect(world, s5, [s3, s4])
    world.network.filters.append(_carrying(s5, i))
    _pause(world)
    world.crash(s5)
    world.network.filters.clear()
    # (c) s1 comes back and wins with s2 and s3; it carries X to s3, a
    # majority, but its own term's no-op reaches no one.
    world.restart(s1)
    world.network.filters.append(
        lambda m: _carrying(s1, i + 1, {s3})(m) and world.node(s3).core.log.last_index() >= i
    )  # (s3 sees the no-op only while it lacks X, and rejects it)
    leader = _elect(world, s1, [s2, s3])
    world.run_for(0.05)
    world.faults["X on a majority, uncommitted"] += leader.log.committed < i <= min(
        world.node(s2).core.log.last_index(), world.node(s3).core.log.last_index())
    # (d) s1 crashes; s5 wins with s2, s3 and s4 and replaces X everywhere.
    world.crash(s1)
    world.network.filters.clear()
    world.restart(s5)
    _elect(world, s5, [s2, s3, s4])
    world.heal()
    world.run_for(0.2)
    world.restart(s1)
    world.settle(10.0)
    return Run.of(world)


def membership_erratum(seed: int) -> Run:
    """The single-server change erratum (Ongaro, 2015) on real nodes: a new
    leader that changes the membership before an entry of its term has
    committed can leave two configurations with disjoint majorities."""
    world = World(seed, WorldConfig(members=4, hosts=4, options=STEERED, notify_deaths=False))
    s1, s2, s3, s4 = world.rng.sample(world.ids, 4)
    _elect(world, s1, [s2, s3, s4])
    world.heal()
    for n in range(world.rng.randint(1, 3)):
        world.node(s1).propose(command("write", "x", f"a{n}"))
    world.run_for(0.1)
    # (a) s1 removes s4; the change reaches no one; s1 crashes.
    def remove_s4(core: RaftCore) -> None:
        new = Configuration(core.config.voters - {s4})
        core.change_config(new, config_data(new, world.node(s1).members.in_force(core)))

    i = world.node(s1).core.log.last_index() + 1
    world.network.filters.append(_carrying(s1, i))
    world.node(s1).gate.run(remove_s4)
    _pause(world)
    world.crash(s1)
    world.network.filters.clear()
    # (b) s2 wins with s3 and s4; its no-op (index i) and, at once, a change
    # removing s3 reach s4 only.
    leader = _elect(world, s2, [s3, s4])
    world.network.filters.append(lambda m: isinstance(m, AppendEntries) and m.src == s2
                                 and m.dst == s3 and bool(m.entries))  # fmt: skip

    def remove_s3(core: RaftCore) -> None:
        new = Configuration(core.config.voters - {s3})
        try:
            core.change_config(new, config_data(new, world.node(s2).members.in_force(core)))
        except Exception:
            world.faults["change refused before the term committed"] += 1

    world.node(s2).gate.run(remove_s3)
    world.run_for(0.05)
    # (c) s1 comes back and, under its own change, wins with s3.
    world.crash(s2)
    world.network.filters.clear()
    world.restart(s1)
    _elect(world, s1, [s3])
    world.heal()
    world.run_for(0.2)
    world.restart(s2)
    world.settle(10.0)
    assert leader is not None
    return Run.of(world)


def save_conflict_steered(seed: int) -> Run:
    """A follower with a slow disk is saving a deposed leader's entries when
    the new leader's first AppendEntries, which replaces them, arrives: it
    must wait for the save, or the entries written would not be the ones
    the follower acknowledges."""
    world = World(seed, WorldConfig(members=5, hosts=5, options=STEERED, notify_deaths=False))
    s1, s2, s3, s4, s5 = world.rng.sample(world.ids, 5)
    _elect(world, s1, [s2, s3, s4, s5])
    world.heal()
    for n in range(world.rng.randint(1, 3)):
        world.node(s1).propose(command("write", "x", f"a{n}"))
    world.run_for(0.1)
    # (a) s1, cut off with s2, sends s2 entries that cannot commit; s2's
    # disk takes 200 ms to save them.
    world.partition([s1, s2], [s3, s4, s5])
    world.hosts[s2].fsync_delay = 0.2
    for n in range(world.rng.randint(1, 4)):
        world.node(s1).propose(command("write", "x", f"lost{n}"))
    world.run_for(world.rng.uniform(0.005, 0.02))
    # (b) s3 wins with s4 and s5 and, while s2 is still saving, reaches s2:
    # its no-op replaces s1's first entry there.
    _elect(world, s3, [s4, s5])
    world.partition([s2, s3, s4, s5], [s1])
    world.run_for(0.4)
    world.hosts[s2].fsync_delay = None
    world.heal()
    world.settle(10.0)
    return Run.of(world)


def lost_vote_steered(seed: int) -> Run:
    """A follower's disk loses entries it acknowledged, which made them
    committed; the leader dies.  The follower must not vote for the one
    node that lacks them: it comes back recovering, and only the old
    leader, back, can restore it."""
    world = World(seed, WorldConfig(members=3, hosts=3, options=STEERED, notify_deaths=False))
    s1, s2, s3 = world.rng.sample(world.ids, 3)
    _elect(world, s1, [s2, s3])
    world.heal()
    for n in range(world.rng.randint(1, 3)):
        world.node(s1).propose(command("write", "x", f"a{n}"))
    world.run_for(0.1)
    # (a) Entries only s1 and s2 hold commit; s1 dies, and s2 loses them.
    world.partition([s1, s2], [s3])
    for n in range(world.rng.randint(2, 4)):
        world.node(s1).propose(command("write", "x", f"b{n}"))
        world.run_for(0.01)
    world.run_for(0.05)
    world.crash(s1)
    world.crash(s2, keep_pending=0.0)
    # (A loss that looks like one torn write, the last, cannot be told from
    # a crash: no cluster survives it while another node is down, SPEC §11.)
    lost = world.lose_synced_wal_tail(s2, detectable=True)
    world.restart(s2)
    # (b) s3, which lacks them, asks s2 for its vote, again and again.
    if lost:
        world.faults["votes sought after a loss"] += 1
        world.partition([s2, s3], [s1])
        for _ in range(world.rng.randint(1, 2)):  # (s1 climbs a term per try)
            world.node(s3).gate.run(lambda core: core.campaign(prevote=False))
            world.run_for(0.05)
    # (c) s1 comes back and wins with s3; it restores s2.
    world.restart(s1)
    _elect(world, s1, [s2, s3])
    world.heal()
    world.settle(10.0)
    return Run.of(world)


def failover_read_steered(seed: int) -> Run:
    """A leader answers a write and dies before the others learn that it
    committed; a read at the next leader, made before that leader has
    committed an entry of its term, must still see the write.  The history
    goes to the linearizability checker."""
    world = World(seed, WorldConfig(members=3, hosts=3, options=STEERED, notify_deaths=False))
    s1, s2, s3 = world.rng.sample(world.ids, 3)
    _elect(world, s1, [s2, s3])
    world.heal()
    history: list[Operation] = []
    value = f"v{world.rng.randint(1, 99)}"
    answered: list[float] = []

    def write(key_value: str) -> None:
        call = world.now
        d = world.node(s1).propose(command("write", "x", key_value))
        d.addCallback(lambda _: answered.append(world.now))
        world.run_for(0.05, lambda: d.called)
        assert d.called and answered, f"the write of {key_value} was not acknowledged"
        history.append(Operation("c1", "x", "write", key_value, None, call, answered.pop()))
        world.run_for(0.001)

    for n in range(world.rng.randint(1, 3)):
        write(f"old{n}")
    index = world.node(s1).core.log.last_index() + 1
    # s1 tells no one that this write committed; it answers, then dies.
    world.network.filters.append(lambda m: m.src == s1 and getattr(m, "commit", 0) >= index)
    write(value)
    world.crash(s1)
    world.network.filters.clear()
    # s2 wins with s3; its no-op is held back while a client reads at s2.
    world.network.filters.append(lambda m: m.src == s2 and isinstance(m, AppendEntries)
                                 and any(e.index > index for e in m.entries))  # fmt: skip
    _elect(world, s2, [s3])
    call = world.now
    read = world.node(s2).read_barrier()
    seen: list[object] = []
    read.addCallback(lambda _: seen.append(world.hosts[s2].machine.data.get("x")))  # type: ignore[union-attr]
    read.addErrback(lambda f: None)
    world.run_for(world.rng.uniform(0.005, 0.03))
    world.network.filters.clear()
    world.run_for(0.2, lambda: bool(seen))
    if seen:
        history.append(Operation("c2", "x", "read", None, seen[0], call, world.now))
    result = check(history, RegisterModel())
    if result.violation:
        raise SafetyViolation(f"client history not linearizable: {result.detail}")
    world.restart(s1)
    world.settle(10.0)
    return Run.of(world)


def revote_steered(seed: int) -> Run:
    """A voter grants its vote in a term and crashes before it hears from the
    leader it elected; restarted, it is asked again in that term by a
    candidate whose log is as long as its own: it refuses (its vote is
    durable and read back)."""
    world = World(seed, WorldConfig(members=3, hosts=3, options=STEERED, notify_deaths=False))
    a, voter, b = world.rng.sample(world.ids, 3)
    world.network.filters.append(lambda m: isinstance(m, AppendEntries) and m.src == a)
    _elect(world, a, [voter])
    term = world.node(a).core.term
    world.crash(voter)
    world.run_for(world.rng.uniform(0.001, 0.02))
    world.restart(voter)
    world.network.filters.clear()
    world.partition([b, voter], [a])
    while world.node(b).core.term < term:
        world.node(b).gate.run(lambda core: core.campaign(prevote=False))
        world.run_for(0.02)
    world.heal()
    world.settle(10.0)
    return Run.of(world)
