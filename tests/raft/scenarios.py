"""The simulated scenarios, each a function of a seed, over real nodes.

Each returns a `Run` (events, faults, client operations) or raises: a
`SafetyViolation` when a Raft invariant breaks or a client history is not
linearizable, an ``AssertionError`` when the cluster failed to make the
progress the scenario expects.  ``tests/raft/test_scenarios.py`` runs each
on a few fixed seeds; ``bench/raft_seeds.py`` sweeps thousands, and
``bench/raft_mutants.py`` uses them to catch planted bugs.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import attrs
from attrs import define, field

from skydns.raft.core.messages import AppendEntries, InstallSnapshot, Message
from skydns.raft.core.ready import Role
from tests.linearizability import RegisterModel, check
from tests.raft.clients import Clients
from tests.raft.invariants import SafetyViolation
from tests.raft.nemesis import MembershipPlan, Nemesis
from tests.raft.simnet import NetConfig
from tests.raft.world import SIM_OPTIONS, World, WorldConfig

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
    """The paper's Figure 8 made likely: one-entry messages, leaders crashed
    or cut off right after taking writes, so logs diverge and old-term
    entries linger on a minority."""
    options = attrs.evolve(SIM_OPTIONS, max_size_per_msg=1)
    world = World(seed, WorldConfig(members=5, hosts=5, options=options))
    clients = Clients(world, 5, read_ratio=0.2)
    clients.start(4.0)
    Nemesis(world, ("crash_leader", "isolate_leader", "heal", "heal"),
            interval=(0.05, 0.25), downtime=(0.05, 0.6)).start(3.5)  # fmt: skip
    return finish(world, clients, 4.0, settle=20.0)


def unreliable_network(seed: int) -> Run:
    """Loss, duplication, reordering and long delays, then convergence."""
    net = NetConfig(drop=0.05, duplicate=0.05, reorder=0.1, long_delay=0.05)
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
    return finish(world, clients, world.now + 0.5)


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
    timeouts) on an otherwise healthy network: the leader keeps leading, in
    the same term (PreVote: the slow node's campaigns change nobody's term)."""
    world = World(seed)
    leader = wait_leader(world)
    world.run_for(0.3)
    term = world.node(leader).core.term
    clients = Clients(world, 3)
    clients.start(world.now + 3.0)
    followers = [i for i in world.ids if i != leader]
    for _ in range(8):
        world.stall(world.rng.choice(followers), world.rng.uniform(ELECTION, 3 * ELECTION))
        world.run_for(world.rng.uniform(0.2, 0.4))
    assert world.leader() == leader, f"leadership moved: {world.statuses()}"
    assert world.node(leader).core.term == term, f"a spurious election: {world.statuses()}"
    return finish(world, clients, world.now + 0.5)


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
    options = attrs.evolve(SIM_OPTIONS, snapshot_entries=40)
    world = World(seed, WorldConfig(members=3, hosts=5, options=options))
    clients = Clients(world, 4)
    clients.start(5.0)
    Nemesis(world, ("partition", "isolate_leader", "heal", "crash", "transfer"),
            interval=(0.2, 0.6)).start(4.5)  # fmt: skip
    MembershipPlan(world).start(4.5)
    return finish(world, clients, 5.0, settle=20.0)


def concurrent_joins(seed: int) -> Run:
    """One node, then two and then four more starting with ``--join`` at the
    same moment: every one ends a voter of the one cluster (issue 26)."""
    world = World(seed, WorldConfig(members=1, hosts=5))
    wait_leader(world)
    clients = Clients(world, 2)
    clients.start(4.0)
    for host in ("n2", "n3"):
        world.start(host)
    world.run_for(2.0, lambda: len(_voters(world)) == 3)
    assert len(_voters(world)) == 3, f"two joins did not both take: {world.statuses()}"
    for host in ("n4", "n5"):
        world.start(host)
    world.run_for(3.0, lambda: len(_voters(world)) == 5)
    assert len(_voters(world)) == 5, f"joins did not all take: {world.statuses()}"
    return finish(world, clients, 4.0)


def _voters(world: World) -> frozenset[str]:
    leader = world.leader()
    return world.node(leader).core.config.voters if leader is not None else frozenset()


def snapshots(seed: int) -> Run:
    """Snapshots every ~30 entries: followers down past the compaction point
    catch up by snapshot (with the session table); a leader change in the
    middle of a transfer; restarts from a snapshot and its log suffix."""
    options = attrs.evolve(SIM_OPTIONS, snapshot_entries=30)
    world = World(seed, WorldConfig(options=options, crash_in_sync=0.01))
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
    "unreliable_network": unreliable_network,
    "lagging_followers": lagging_followers,
    "restarts": restarts,
    "nemesis": nemesis,
    "partitioned_leader": partitioned_leader,
    "reads_across_leader_changes": reads_across_leader_changes,
    "slow_follower": slow_follower,
    "lost_quorum": lost_quorum,
    "membership": membership,
    "concurrent_joins": concurrent_joins,
    "snapshots": snapshots,
    "lost_synced_data": lost_synced_data,
}

__all__ = ["SCENARIOS", "Run", "AppendEntries"]
