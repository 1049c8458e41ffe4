"""The lease scenarios (SPEC.md §7): leases kept alive through any node while
leaders crash, partitions cut the cluster and wall clocks jump; some let go
on the way.  `tests.raft.leaseworld.LeaseWorld` checks the promises."""

from __future__ import annotations

from tests.raft.leaseworld import LeaseWorld
from tests.raft.runs import Run


def _start(seed: int, max_offset: float = 0.0) -> LeaseWorld:
    leases = LeaseWorld(seed, max_offset=max_offset)
    leases.setup()
    world = leases.world
    for client in leases.rng.sample(leases.clients, 2):
        client.stop_at = world.now + leases.rng.uniform(1.0, 8.0)
    return leases


def leases_leader_changes(seed: int) -> Run:
    """The leader crashes (and comes back) every second or three."""
    leases = _start(seed)
    world, rng = leases.world, leases.rng
    end = world.now + 16.0
    while world.now < end:
        world.run_for(rng.uniform(1.0, 3.0))
        leader = world.leader()
        if leader is not None:
            world.crash(leader)
            world.clock.callLater(rng.uniform(0.1, 1.0), world.restart, leader)
    leases.finish()
    return Run.of(world)


def leases_partitions(seed: int) -> Run:
    """The leader, or a follower, is cut off for up to two seconds."""
    leases = _start(seed)
    world, rng = leases.world, leases.rng
    end = world.now + 16.0
    while world.now < end:
        world.run_for(rng.uniform(0.5, 2.0))
        leader = world.leader()
        cut = leader if leader is not None and rng.random() < 0.6 else rng.choice(world.ids)
        world.isolate(cut)
        world.run_for(rng.uniform(0.2, 2.0))
        world.heal()
    leases.finish()
    return Run.of(world)


def leases_clock_jumps(seed: int) -> Run:
    """Wall clocks step by up to a quarter second either way (NTP), the
    leader's too, while leaders crash now and then."""
    limit = 0.25
    leases = _start(seed, max_offset=limit)
    world, rng = leases.world, leases.rng
    end = world.now + 16.0
    while world.now < end:
        world.run_for(rng.uniform(0.3, 1.5))
        host = world.hosts[rng.choice(world.ids)]
        host.offset = rng.uniform(-limit, limit)
        if host.up:
            host.clock.offset = host.offset
        leader = world.leader()
        if leader is not None and rng.random() < 0.2:
            world.crash(leader)
            world.clock.callLater(rng.uniform(0.1, 1.0), world.restart, leader)
    leases.finish()
    return Run.of(world)


LEASE_SCENARIOS = {
    "leases_leader_changes": leases_leader_changes,
    "leases_partitions": leases_partitions,
    "leases_clock_jumps": leases_clock_jumps,
}
