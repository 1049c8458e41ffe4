"""Random fault schedules for the simulation (the Jepsen "nemesis"), and the
membership plan that changes the cluster while they run."""

from __future__ import annotations

from collections.abc import Sequence

from skydns.raft.core.messages import Configuration, EntryKind, decode_config
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import ConfigChangeRefused, NotLeader, ProposalDropped, Role
from skydns.raft.node.configdata import config_data, replicas_of
from tests.raft.invariants import SafetyViolation
from tests.raft.world import World

ALL = ("partition", "isolate_leader", "one_way", "heal", "crash", "crash_leader", "transfer",
       "stall")  # fmt: skip


class Nemesis:
    def __init__(
        self,
        world: World,
        kinds: Sequence[str] = ALL,
        interval: tuple[float, float] = (0.05, 0.4),
        downtime: tuple[float, float] = (0.02, 0.4),
        stall: tuple[float, float] = (0.05, 0.5),
    ) -> None:
        self.world = world
        self.kinds = tuple(kinds)
        self.interval = interval
        self.downtime = downtime
        self.stall = stall
        self.until = 0.0

    def start(self, until: float) -> None:
        self.until = until
        self._later()

    def _later(self) -> None:
        self.world.clock.callLater(self.world.rng.uniform(*self.interval), self._act)

    def _act(self) -> None:
        world = self.world
        if world.now >= self.until:
            return
        rng = world.rng
        kind = rng.choice(self.kinds)
        world.faults[f"nemesis {kind}"] += 1
        up = [h.id for h in world.up()]
        if kind == "partition":
            ids = list(world.ids)
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            world.partition(ids[:cut], ids[cut:])
        elif kind == "isolate_leader":
            leader = world.leader()
            if leader is not None:
                world.isolate(leader)
        elif kind == "one_way":
            src, dst = rng.sample(world.ids, 2)
            world.cut(src, dst)
        elif kind == "heal":
            world.heal()
        elif kind in ("crash", "crash_leader"):
            target = world.leader() if kind == "crash_leader" else rng.choice(up) if up else None
            if target is not None:
                world.crash(target)
                world.clock.callLater(rng.uniform(*self.downtime), world.restart, target)
        elif kind == "transfer":
            leader = world.leader()
            if leader is not None:
                to = rng.choice([n for n in world.ids if n != leader])
                world.node(leader).gate.run(lambda core: core.transfer_leadership(to))
        elif kind == "stall":
            if up:
                world.stall(rng.choice(up), rng.uniform(*self.stall))
        elif kind == "lose_synced":
            self._lose_synced()
        self._later()

    def _lose_synced(self) -> None:
        """Crash a node and zero a synced tail of its WAL, if no node is
        already recovering (a minority of nodes suffers, SPEC §11)."""
        world = self.world
        if any(h.handler.condition.recovering for h in world.up()) or len(world.up()) < len(
            world.ids
        ):
            return
        target = world.rng.choice([h.id for h in world.up()])
        world.crash(target, keep_pending=0.0)
        world.lose_synced_wal_tail(target)
        world.clock.callLater(world.rng.uniform(*self.downtime), world.restart, target)


class MembershipPlan:
    """Changes the membership while the world runs: joins and removals
    through the nodes' own API (any node: a follower forwards to the
    leader), and now and then a change the core must refuse (two voters at
    once, a second change in flight, a change before the leader's first
    commit), tried directly on the leader's core."""

    def __init__(self, world: World, interval: tuple[float, float] = (0.05, 0.3),
                 replicas: float = 0.0) -> None:  # fmt: skip
        """``replicas``: the share of joins asked as read replicas."""
        self.world = world
        self.interval = interval
        self.replicas = replicas
        self.until = 0.0
        self.accepted = 0
        self.refused = 0

    def start(self, until: float) -> None:
        self.until = until
        self._later()
        self._watch()

    def _later(self) -> None:
        self.world.clock.callLater(self.world.rng.uniform(*self.interval), self._act)

    def _watch(self, known: tuple[str, int] | None = None) -> None:
        """Try a change on each new leader at once: before its term commits
        (thesis §4.1's erratum), the core must refuse it."""
        world = self.world
        if world.now >= self.until:
            return
        leader = world.leader()
        now = (leader, world.node(leader).core.term) if leader is not None else None
        if now is not None and now != known:
            self._try_unsafe(now[0])
        world.clock.callLater(0.001, self._watch, now)

    def _act(self) -> None:
        world = self.world
        if world.now >= self.until:
            return
        self._later()
        rng = world.rng
        up = [h for h in world.up() if h.handler.condition.refusal() is None]
        if not up:
            return
        leader = world.leader()
        if leader is not None and rng.random() < 0.3:
            self._try_unsafe(leader)
            return
        config = world.configuration()
        outside = [i for i in world.ids if i not in config]
        asker = rng.choice(up).handler
        if outside and (len(config) <= 3 or rng.random() < 0.5):
            new = rng.choice(outside)
            world.faults["membership add"] += 1
            if not self._fresh(new):
                return
            op = "replica" if self.replicas and rng.random() < self.replicas else "add"
            world.faults[f"membership {op}"] += op == "replica"
            d = asker.change_member(op, new, f"{new}:7000")
        elif len(config) > 3:
            gone = rng.choice(sorted(config))
            world.faults["membership remove"] += 1
            d = asker.change_member("remove", gone, None)
        else:
            return
        d.addCallbacks(lambda _: self._counted(True), lambda _: self._counted(False))

    def _fresh(self, host_id: str) -> bool:
        """Make ``host_id`` ready to join: a new host is started; a former
        member comes back only with an empty data dir, and only once it knows
        its removal was committed (wiping a member would be a second fault:
        its votes would be forgotten).  False if it cannot join now."""
        world = self.world
        host = world.hosts[host_id]
        if host.started:
            if not host.up or host.handler.condition.removed is None:
                return False
            world.wipe(host_id)
        if not host.up:
            world.start(host_id)
        return True

    def _counted(self, accepted: bool) -> None:
        if accepted:
            self.accepted += 1
        else:
            self.refused += 1

    def _try_unsafe(self, leader: str) -> None:
        """A change the core must refuse, or at least keep safe."""
        world = self.world
        node = world.node(leader)
        rng = world.rng

        def attempt(core: RaftCore) -> None:
            if core.role is not Role.LEADER:
                return
            voters, learners = set(core.config.voters), set(core.config.learners)
            candidates = [i for i in world.ids if i not in voters]
            others = sorted(voters - {core.id})
            choice = rng.random()
            if choice < 0.3 and len(candidates) >= 2:
                voters |= set(rng.sample(candidates, 2))  # two voters at once
                learners -= voters
            elif choice < 0.6 and len(others) >= 3:
                voters -= set(rng.sample(others, 2))  # two removed at once
            elif len(voters) > 2:
                voters -= {rng.choice(others)}
            else:
                return
            new = Configuration(frozenset(voters), frozenset(learners))
            joiners = (new.voters | new.learners) - (core.config.voters | core.config.learners)
            if not all(self._fresh(joiner) for joiner in sorted(joiners)):
                return
            try:
                core.change_config(new, config_data(new, node.members.in_force(core)
                                                    | {i: f"{i}:7000" for i in new.voters}))
            except (ConfigChangeRefused, NotLeader, ProposalDropped):
                world.faults["unsafe change refused"] += 1
                return
            world.faults["unsafe-looking change accepted"] += 1

        node.gate.run(attempt)


def replicas_never_promoted(world: World) -> int:
    """Check every node's log: no CONFIG entry makes a voter of a member the
    configuration before it held as a read replica (it must be removed and
    added again first).  The number of entries that named a replica."""
    named = 0
    for host in world.up():
        core = host.handler.core
        before: frozenset[str] = frozenset()
        for index in range(core.log.snapshot.index + 1, core.log.last_index() + 1):
            entry = core.log.entry(index)
            if entry.kind is not EntryKind.CONFIG:
                continue
            config = decode_config(entry.data)
            promoted = sorted(before & config.voters)
            if promoted:
                raise SafetyViolation(f"{host.id}: entry {index} makes replicas {promoted} voters")
            before = replicas_of(entry.data) & config.learners
            named += bool(before)
    return named

