"""The simulated scenarios, each a function of a seed, over real nodes.

Each returns a `Run` (events, faults, client operations) or raises: a
`SafetyViolation` when a Raft invariant breaks or a client history is not
linearizable, an ``AssertionError`` when the cluster failed to make the
progress the scenario expects.  ``tests/raft/test_scenarios.py`` runs each
on a few fixed seeds; ``bench/raft_seeds.py`` sweeps thousands, and
``bench/raft_mutants.py`` uses them to catch planted bugs.
"""

from __future__ import annotations

from typing import Callable

import attrs

from skydns.raft.core.messages import InstallSnapshot, Message
from skydns.raft.core.ready import Role
from tests.raft import choreographies
from tests.raft.clients import Clients
from tests.raft.kv import command
from tests.raft.leasescenarios import LEASE_SCENARIOS
from tests.raft.nemesis import MembershipPlan, Nemesis, replicas_never_promoted
from tests.raft.runs import ELECTION, Run, finish, wait_leader
from tests.raft.simnet import NetConfig
from tests.raft.world import SIM_OPTIONS, World, WorldConfig

# --- elections and replication ------------------------------------------------


def leader_crashes(seed: int) -> Run:
    """Leaders crash mid-replication, with writes in flight; restarts lose,
    keep or tear what was not synced.  Nothing acknowledged is lost."""
    world = World(seed, WorldConfig(crash_in_sync=0.01))
    clients = Clients(world, 4)
    clients.start(4.0)
    Nemesis(world, ("crash_leader", "crash"), interval=(0.2, 0.6)).start(3.5)
    return finish(world, clients, 4.0)


def five_nodes(seed: int) -> Run:
    """Five nodes under partitions, crashes and transfers; split votes."""
    world = World(seed, WorldConfig(members=5, hosts=5, crash_in_sync=0.01))
    clients = Clients(world, 5)
    clients.start(4.0)
    Nemesis(world, ("partition", "isolate_leader", "heal", "crash", "crash_leader",
                    "transfer"), interval=(0.1, 0.5)).start(3.5)  # fmt: skip
    return finish(world, clients, 4.0)


def figure8(seed: int) -> Run:
    """The paper's Figure 8 made likely: one-entry messages, and new leaders
    crashed or cut off a few milliseconds into their term, while they carry
    older terms' entries to the others: logs diverge and old-term entries
    linger on majorities without being committed."""
    options = attrs.evolve(SIM_OPTIONS, max_size_per_msg=1, max_inflight=2)
    net = NetConfig(delay_min=0.0005, delay_max=0.004)
    world = World(seed, WorldConfig(members=5, hosts=5, options=options, net=net))
    clients = Clients(world, 6, read_ratio=0.1)
    clients.start(4.0)
    Nemesis(world, ("heal", "crash")).start(3.5)
    cut_new_leaders(world, until=3.5)
    return finish(world, clients, 4.0, settle=20.0)


def cut_new_leaders(world: World, until: float, chance: float = 0.7) -> None:
    """Crash or isolate each new leader, often, a few milliseconds in."""

    def watch(known: tuple[str, int] | None) -> None:
        if world.now >= until:
            return
        leader = world.leader()
        now = (leader, world.node(leader).core.term) if leader is not None else None
        if now is not None and now != known and world.rng.random() < chance:
            act = world.crash if world.rng.random() < 0.5 else world.isolate
            world.clock.callLater(world.rng.uniform(0.0005, 0.006), act, now[0])
            world.clock.callLater(world.rng.uniform(0.05, 0.3), world.restart, now[0])
            world.clock.callLater(world.rng.uniform(0.05, 0.3), world.heal)
        world.clock.callLater(0.0005, watch, now)

    watch(None)


def elections(seed: int) -> Run:
    """Five nodes, no PreVote, vote messages delayed past election timeouts,
    voters crashing mid-election: many split and overlapping elections, in
    which no vote is counted twice or out of its term."""
    options = attrs.evolve(SIM_OPTIONS, pre_vote=False)
    world = World(seed, WorldConfig(members=5, hosts=5, options=options, crash_in_sync=0.02))
    clients = Clients(world, 4)
    clients.start(4.0)
    wait_leader(world)
    world.network.config.long_delay = 0.1
    world.network.config.long_delay_max = 0.4
    Nemesis(world, ("crash", "crash_leader", "isolate_leader", "heal"),
            interval=(0.05, 0.3), downtime=(0.01, 0.3)).start(3.5)  # fmt: skip
    return finish(world, clients, 4.0, settle=20.0)


def failover_reads(seed: int) -> Run:
    """A leader crashes right after it answered a write, before the others
    learn that it committed: the next leader must not serve a read that
    misses that write."""
    world = World(seed, WorldConfig(options=attrs.evolve(SIM_OPTIONS, heartbeat_tick=3)))
    crashed: list[float] = []

    def done(node: str, kind: str) -> None:
        if kind != "read" and node == world.leader() and world.now > (crashed or [0])[-1] + 0.3:
            crashed.append(world.now)
            world.clock.callLater(world.rng.uniform(0, 0.002), world.crash, node)
            world.clock.callLater(world.rng.uniform(0.1, 0.3), world.restart, node)

    clients = Clients(world, 8, read_ratio=0.6, on_done=done, prefer_leader=0.7, think=0.01)
    clients.start(4.0)
    return finish(world, clients, 4.0)


def learners(seed: int) -> Run:
    """Learners join while the leader is cut off with one of them: a leader
    and a learner are no quorum, so nothing commits on that side."""
    world = World(seed, WorldConfig(members=3, hosts=5))
    clients = Clients(world, 4)
    clients.start(4.0)
    wait_leader(world)

    def isolate_with_a_learner() -> None:
        leader = world.leader()
        if world.now > 3.5 or leader is None:
            return
        config = world.node(leader).core.config
        outside = [i for i in world.ids if i not in config.voters]
        if config.learners:
            learner = sorted(config.learners)[0]
        elif outside:
            learner = world.rng.choice(outside)
            host = world.hosts[learner]
            if not host.started:
                world.start(learner)
            elif host.up and host.handler.condition.removed is not None:
                world.wipe(learner)  # a former member joins only with an empty data dir
                world.start(learner)
            else:
                world.clock.callLater(0.2, isolate_with_a_learner)
                return
            added = world.node(leader).change_member("add", learner, f"{learner}:7000")
            added.addErrback(lambda f: None)  # refused or lost: tried again later
        else:
            return
        world.partition([leader, learner], [i for i in world.ids if i not in (leader, learner)])
        world.clock.callLater(world.rng.uniform(0.05, 0.25), world.heal)
        world.clock.callLater(world.rng.uniform(0.3, 0.6), isolate_with_a_learner)

    isolate_with_a_learner()
    MembershipPlan(world, interval=(0.3, 0.8)).start(3.5)
    return finish(world, clients, 4.0, settle=20.0)


def unreliable_network(seed: int) -> Run:
    """Loss, duplication, reordering and long delays, then convergence."""
    net = NetConfig(drop=0.05, duplicate=0.15, reorder=0.2, long_delay=0.1)
    world = World(seed, WorldConfig(net=net))
    clients = Clients(world, 4)
    clients.start(4.0)
    Nemesis(world, ("one_way", "heal", "crash"), interval=(0.2, 0.6)).start(3.0)
    run = finish(world, clients, 4.0)
    return run


def lagging_followers(seed: int) -> Run:
    """Followers cut off for long stretches while leaders change: they
    return lagging or divergent and are brought back in a few round trips."""
    world = World(seed, WorldConfig(members=5, hosts=5))
    clients = Clients(world, 4)
    clients.start(5.0)
    Nemesis(world, ("partition", "heal", "crash_leader"), interval=(0.3, 0.9),
            downtime=(0.3, 1.0)).start(4.5)  # fmt: skip
    return finish(world, clients, 5.0)


def restarts(seed: int) -> Run:
    """Crashes inside syncs, torn and reordered unsynced writes, restarts:
    every node's WAL, hard state and vote survive what they must."""
    world = World(seed, WorldConfig(crash_in_sync=0.05, keep_pending=0.7))
    clients = Clients(world, 4)
    clients.start(4.0)
    Nemesis(world, ("crash", "crash", "crash_leader", "heal"), interval=(0.1, 0.4),
            downtime=(0.01, 0.2)).start(3.5)  # fmt: skip
    return finish(world, clients, 4.0)


def nemesis(seed: int) -> Run:
    """Every fault at once."""
    net = NetConfig(drop=0.02, duplicate=0.02, reorder=0.05, long_delay=0.02)
    world = World(seed, WorldConfig(members=5, hosts=5, net=net, crash_in_sync=0.02))
    clients = Clients(world, 5)
    clients.start(5.0)
    Nemesis(world).start(4.5)
    return finish(world, clients, 5.0, settle=20.0)


# --- reads -----------------------------------------------------------------------


def partitioned_leader(seed: int) -> Run:
    """A leader cut off from the others, with CheckQuorum off so that it
    believes it still leads, keeps clients stuck to it writing and reading
    while the majority elects another and takes writes: it commits nothing
    and serves no stale read (the checker would see one)."""
    options = attrs.evolve(SIM_OPTIONS, check_quorum=False)
    world = World(seed, WorldConfig(options=options))
    old = wait_leader(world)
    world.run_for(0.2)
    clients = Clients(world, 6, read_ratio=0.6, sticky={0: old, 1: old, 2: old})
    clients.start(world.now + 2.0)
    world.run_for(0.1)
    world.isolate(old)
    world.run_for(1.5)
    assert world.node(old).core.role is Role.LEADER, "the old leader stepped down by itself"
    served = [op for c in clients.clients[3:] for op in c.history if op.kind != "read"]
    assert served, f"the majority served no write: {world.statuses()}"
    # It is heard again, but hears no one: its AppendEntries of an old term
    # reach members that took newer entries meanwhile.
    world.heal()
    for other in world.ids:
        if other != old:
            world.cut(other, old)
    world.run_for(0.3)
    return finish(world, clients, world.now + 0.2)


def reads_across_leader_changes(seed: int) -> Run:
    """Mostly reads, through leader crashes and transfers: a new leader
    answers a read only once it knows the commit index."""
    world = World(seed)
    clients = Clients(world, 6, read_ratio=0.7)
    clients.start(4.0)
    Nemesis(world, ("crash_leader", "transfer", "isolate_leader", "heal"),
            interval=(0.1, 0.4)).start(3.5)  # fmt: skip
    return finish(world, clients, 4.0)


# --- liveness rules that keep a healthy cluster undisturbed -------------------------


def slow_follower(seed: int) -> Run:
    """A follower starved of CPU now and then (stalls of up to 3 election
    timeouts), then cut off from everyone for a few election timeouts: the
    leader keeps leading, in the same term (PreVote: the lonely node's
    campaigns change nobody's term, so its return disturbs no one)."""
    world = World(seed)
    leader = wait_leader(world)
    world.run_for(0.3)
    term = world.node(leader).core.term
    clients = Clients(world, 3)
    clients.start(world.now + 3.0)
    followers = [i for i in world.ids if i != leader]
    for _ in range(6):
        world.stall(world.rng.choice(followers), world.rng.uniform(ELECTION, 3 * ELECTION))
        world.run_for(world.rng.uniform(0.2, 0.4))
    world.run_for(3 * ELECTION)  # (the last stall is over)
    lonely = world.rng.choice(followers)
    world.isolate(lonely)
    world.run_for(world.rng.uniform(3, 6) * ELECTION)
    world.heal()
    world.run_for(0.3)
    assert world.leader() == leader, f"leadership moved: {world.statuses()}"
    assert world.node(leader).core.term == term, f"a spurious election: {world.statuses()}"
    return finish(world, clients, world.now + 0.5)


def slow_disks(seed: int) -> Run:
    """Syncs of 3 to 10 ms, so that messages keep arriving while a node's
    Ready is being saved (they must wait for it).  A leader kept busy by
    clients stuck to it loses its way to all followers but one (CheckQuorum
    off, so it goes on leading); that follower, saving its entries all the
    time, hears from the new leader the others elect, whose first entries
    replace them."""
    options = attrs.evolve(SIM_OPTIONS, check_quorum=False)
    world = World(seed, WorldConfig(members=5, hosts=5, options=options,
                                    fsync_delay=world_delay(seed)))  # fmt: skip
    clients = Clients(world, 5)
    clients.start(4.0)
    wait_leader(world)

    def flood(leader: str, until: float) -> None:
        """Writes no client waits for, to keep the cut-off leader saving."""
        host = world.hosts[leader]
        if world.now < until and host.up:
            host.handler.propose(command("write", "flood", world.now)).addErrback(lambda f: None)
            world.clock.callLater(0.002, flood, leader, until)

    def cut_and_return() -> None:
        leader = world.leader()
        if world.now > 3.3:
            return
        if leader is not None:
            kept = world.rng.choice([i for i in world.ids if i != leader])
            for other in world.ids:
                if other not in (leader, kept):
                    world.cut(leader, other)
            back = world.rng.uniform(4, 6) * ELECTION
            flood(leader, world.now + back)
            world.clock.callLater(back, world.heal)
        world.clock.callLater(world.rng.uniform(7, 9) * ELECTION, cut_and_return)

    cut_and_return()
    return finish(world, clients, 4.0, settle=20.0)


def world_delay(seed: int) -> float:
    return 0.003 + (seed % 8) * 0.001


def lost_quorum(seed: int) -> Run:
    """A leader cut off from every follower (one-way: it still hears them)
    steps down within two election timeouts (CheckQuorum), and a follower
    that only it cannot hear does not depose it."""
    world = World(seed)
    leader = wait_leader(world)
    world.run_for(0.3)
    followers = [i for i in world.ids if i != leader]
    world.cut(followers[0], leader)  # one follower's answers are lost
    term = world.node(leader).core.term
    world.run_for(5 * ELECTION)
    assert world.leader() == leader and world.node(leader).core.term == term, \
        f"one deaf link deposed a healthy leader: {world.statuses()}"
    for follower in followers:
        world.cut(follower, leader)
    world.run_for(2.5 * ELECTION)
    assert world.node(leader).core.role is not Role.LEADER, "it did not step down"
    clients = Clients(world, 3)
    clients.start(world.now + 1.0)
    return finish(world, clients, world.now + 1.0)


# --- membership, snapshots, recovery -----------------------------------------------


def membership(seed: int) -> Run:
    """Members join (as learners, promoted when caught up) and leave, up to
    five and down to three, while a nemesis crashes, partitions and
    transfers; now and then a change the core must refuse is tried."""
    world, run = _changing_members(seed, hosts=5, replicas=0.0)
    return run


def replicas(seed: int) -> Run:
    """As `membership`, half the joins as read replicas: whatever the faults,
    no configuration ever makes a replica a voter (`replicas_never_promoted`)."""
    world, run = _changing_members(seed, hosts=6, replicas=0.5)
    replicas_never_promoted(world)
    return run


def _changing_members(seed: int, hosts: int, replicas: float) -> tuple[World, Run]:
    options = attrs.evolve(SIM_OPTIONS, snapshot_entries=40)
    world = World(seed, WorldConfig(members=3, hosts=hosts, options=options))
    clients = Clients(world, 4)
    clients.start(5.0)
    Nemesis(world, ("partition", "isolate_leader", "heal", "crash", "transfer"),
            interval=(0.2, 0.6)).start(4.5)  # fmt: skip
    MembershipPlan(world, replicas=replicas).start(4.5)
    return world, finish(world, clients, 5.0, settle=20.0)


def concurrent_joins(seed: int) -> Run:
    """One node, then two and then four more starting with ``--join`` at the
    same moment: every one ends a voter of the one cluster (issue 26)."""
    world = World(seed, WorldConfig(members=1, hosts=7))
    wait_leader(world)
    clients = Clients(world, 2)
    clients.start(5.0)
    for group in (("n2", "n3"), ("n4", "n5", "n6", "n7")):
        for host in group:
            world.start(host)
        want = 1 + (2 if len(group) == 2 else 6)
        world.run_for(3.0, lambda want=want: len(_voters(world)) == want)
        assert len(_voters(world)) == want, f"joins did not all take: {world.statuses()}"
    return finish(world, clients, 5.0)


def _voters(world: World) -> frozenset[str]:
    leader = world.leader()
    return world.node(leader).core.config.voters if leader is not None else frozenset()


def snapshots(seed: int) -> Run:
    """Snapshots every ~30 entries: followers down past the compaction point
    catch up by snapshot (with the session table); a leader change in the
    middle of a transfer; restarts from a snapshot and its log suffix."""
    options = attrs.evolve(SIM_OPTIONS, snapshot_entries=30)
    net = NetConfig(drop=0.03, duplicate=0.03)
    world = World(seed, WorldConfig(options=options, crash_in_sync=0.01, net=net))
    clients = Clients(world, 4, read_ratio=0.3)
    clients.start(5.0)
    cut: list[str] = []

    def cut_on_snapshot(message: Message) -> None:
        if isinstance(message, InstallSnapshot) and not cut and world.rng.random() < 0.5:
            cut.append(message.src)
            world.clock.callLater(0.001, world.isolate, message.src)
            world.clock.callLater(4 * ELECTION, world.heal)

    world.network.observers.append(cut_on_snapshot)
    Nemesis(world, ("crash", "crash", "heal"), interval=(0.2, 0.6),
            downtime=(0.3, 1.2)).start(4.5)  # fmt: skip
    return finish(world, clients, 5.0)


def snapshot_over_divergence(seed: int) -> Run:
    """A leader cut off with one follower keeps taking writes (a long tail
    the others never see) while the majority moves on and compacts past
    where they split: the follower is sent a snapshot whose last entry it
    holds with another term, and must drop its whole log for it."""
    options = attrs.evolve(SIM_OPTIONS, snapshot_entries=20)
    world = World(seed, WorldConfig(members=5, hosts=5, options=options))
    old = wait_leader(world)
    world.run_for(0.2)
    follower = world.rng.choice([i for i in world.ids if i != old])
    others = [i for i in world.ids if i not in (old, follower)]
    # Many writers stuck to the old leader (each has one write in flight,
    # which never commits there), a few on the majority side.
    writers = world.rng.randint(25, 40)
    sticky = {n: old for n in range(writers)} | {writers: others[0], writers + 1: others[1]}
    keys = tuple(f"k{n}" for n in range(12))
    clients = Clients(world, writers + 2, sticky=sticky, read_ratio=0.0, think=0.03, keys=keys)
    clients.start(world.now + 1.0)
    world.partition([old, follower], others)
    world.run_for(world.rng.uniform(0.3, 0.6))
    world.heal()
    return finish(world, clients, world.now + 0.6)


def lost_synced_data(seed: int) -> Run:
    """A node's disk loses writes it had acknowledged (a zeroed WAL tail past
    a damaged frame): it comes back recovering, neither votes nor counts
    until a leader restored its log, and nothing acknowledged is lost, even
    when the leader crashes meanwhile."""
    world = World(seed, WorldConfig(members=3, hosts=3))
    clients = Clients(world, 4, read_ratio=0.3)
    clients.start(4.0)
    nemesis = Nemesis(world, ("lose_synced", "crash_leader", "lose_synced", "heal"),
                      interval=(0.2, 0.5), downtime=(0.02, 0.2))  # fmt: skip
    nemesis.start(3.5)
    return finish(world, clients, 4.0, settle=15.0)


SCENARIOS: dict[str, Callable[[int], Run]] = {
    "leader_crashes": leader_crashes,
    "five_nodes": five_nodes,
    "figure8": figure8,
    "elections": elections,
    "failover_reads": failover_reads,
    "learners": learners,
    "unreliable_network": unreliable_network,
    "lagging_followers": lagging_followers,
    "restarts": restarts,
    "nemesis": nemesis,
    "partitioned_leader": partitioned_leader,
    "reads_across_leader_changes": reads_across_leader_changes,
    "slow_follower": slow_follower,
    "slow_disks": slow_disks,
    "lost_quorum": lost_quorum,
    "membership": membership,
    "replicas": replicas,
    "concurrent_joins": concurrent_joins,
    "snapshots": snapshots,
    "snapshot_over_divergence": snapshot_over_divergence,
    "lost_synced_data": lost_synced_data,
}

__all__ = ["SCENARIOS", "Run"]


SCENARIOS.update({
    "figure8_steered": choreographies.figure8_steered,
    "membership_erratum": choreographies.membership_erratum,
    "failover_read_steered": choreographies.failover_read_steered,
    "revote_steered": choreographies.revote_steered,
    "save_conflict_steered": choreographies.save_conflict_steered,
    "lost_vote_steered": choreographies.lost_vote_steered,
})  # fmt: skip
SCENARIOS.update(LEASE_SCENARIOS)
