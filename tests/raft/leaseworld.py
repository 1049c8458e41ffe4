"""Leases in the simulation (SPEC.md §7): the production registry as each
node's state machine, each node's `RaftCluster` (its lessor, its renewals
to the leader) and lease loop, and clients that keep leases alive through
whichever node answers, while leaders crash, partitions cut the cluster and
wall clocks jump.  `LeaseChecks` holds the §7 promises to account after
every sweep of the world (every 20 ms):

- a lease kept alive is never revoked before its client's last renewal
  plus its TTL, and every node caught up with the leader shows it;
- no node's recorded end (what DNS TTLs count down to) reaches past the
  last renewal that could have granted it plus the TTL;
- a lease let go is in no node's answers once its last renewal plus TTL
  has passed, and is revoked within the grace and a sweep of it (plus any
  time the cluster had no leader);
- the log takes far fewer checkpoints than there were renewals.

Wall clocks may be off by up to ``max_offset`` either way: each bound
allows twice that (one clock ahead wrote a time, one behind reads it).
"""

from __future__ import annotations

from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred

from skydns.commands import Checkpoint, Command, GrantLease, Register, RevokeLease
from skydns.leases.expiry import LeaseKeeper
from skydns.leases.renewal import LEASE, Renewal
from skydns.names import Service
from skydns.registry import Applied, Registry
from skydns.store.machine import RegistryMachine
from skydns.store.raft import RaftCluster
from tests.raft.invariants import SafetyViolation
from tests.raft.world import SIM_OPTIONS, Host, World, WorldConfig

ELECTION = SIM_OPTIONS.election_tick * SIM_OPTIONS.tick_interval
#: What a leader keeps recorded ahead beyond a client's renewal interval
#: (`skydns.store.raft.RaftCluster` makes it six election timeouts).
MARGIN = 6 * ELECTION
#: The lease loop's period in the simulation (half a second in a node,
#: scaled as the election timeout is).
SWEEP = 0.05
#: How long the network may hold a message or answer (simnet's defaults).
DELAY = 0.05


class SimRegistryMachine(RegistryMachine):
    """The registry machine, observed as the world observes its key-value
    one: each applied entry is reported, and its state is the snapshot."""

    def __init__(self) -> None:
        super().__init__(Registry())
        self.on_apply: Any = None

    def apply(self, command: bytes, index: int, live: bool) -> Applied:
        if self.on_apply is not None:
            self.on_apply(index, command)
        return super().apply(command, index, live)

    @property
    def data(self) -> dict[str, bytes]:
        return {"registry": self.registry.snapshot()}


@define
class LeaseClient:
    """One lease, renewed every ``interval`` through some node until ``stop_at``."""

    lease: str
    interval: float
    stop_at: float
    #: When each renewal that was answered with the TTL was sent, and answered.
    acked: list[tuple[float, float]] = field(factory=list)
    #: When the last renewal was sent, answered or not.
    last_sent: float = -1.0
    renewals: int = 0


class LeaseWorld:
    """A world whose nodes run the registry, lessors and lease loops."""

    def __init__(self, seed: int, ttl: int = 6, leases: int = 5, hosts: int = 3,
                 max_offset: float = 0.0) -> None:  # fmt: skip
        self.world = world = World(seed, WorldConfig(members=hosts, hosts=hosts,
                                                     machine=SimRegistryMachine))
        self.ttl = ttl
        self.max_offset = max_offset
        self.rng = world.rng
        self.clusters: dict[str, RaftCluster] = {}
        self.revoked: dict[str, float] = {}  # lease -> the revoking command's time
        self.commands: dict[str, int] = {}
        self.leaderless = 0.0
        world.started_hooks.append(self._started)
        for host in world.up():
            self._started(host)
        self.clients = [
            LeaseClient(f"{n:016x}", ttl / 6, float("inf")) for n in range(1, leases + 1)
        ]

    # --- the nodes --------------------------------------------------------------

    def _started(self, host: Host) -> None:
        assert host.node is not None
        cluster = RaftCluster(host.node, host.machine, host.clock,
                              monotonic=self.world.clock.seconds)  # fmt: skip
        keeper = LeaseKeeper(cluster, host.clock, interval=SWEEP, timeout=1.0,
                             lessor=cluster.lessor)  # fmt: skip
        keeper.startService()
        cluster.add_apply_listener(lambda c, a, live, h=host.id: self._applied(h, c, a))
        self.clusters[host.id] = cluster

    def cluster(self, host_id: str) -> RaftCluster | None:
        host = self.world.hosts[host_id]
        cluster = self.clusters.get(host_id)
        if not host.up or cluster is None or cluster.node is not host.node:
            return None
        return cluster

    def _applied(self, host_id: str, command: Command, applied: Applied) -> None:
        name = type(command).__name__
        self.commands[name] = self.commands.get(name, 0) + 1
        if isinstance(command, RevokeLease) and command.lapsed:
            clock = self.world.hosts[host_id].clock
            for lease in command.leases:
                self.revoked.setdefault(lease, command.now - clock.offset)
                self._check_revoke(lease, command.now - clock.offset)

    # --- setting up ---------------------------------------------------------------

    def setup(self) -> None:
        """Grant the leases and register two instances under each, through
        the leader."""
        world = self.world
        world.run_for(2.0, lambda: world.leader() is not None)
        leader = world.leader()
        assert leader is not None, "no leader to set up with"
        cluster = self.clusters[leader]
        now = world.hosts[leader].clock.seconds()
        pending: list[Deferred[Applied]] = []
        for client in self.clients:
            pending.append(cluster.propose(GrantLease(client.lease, self.ttl, now)))
            for i in range(2):
                service = Service(f"{client.lease[-4:]}i{i}", "web", "prod", "", "", "10.0.0.1",
                                  80, self.ttl, lease=client.lease)  # fmt: skip
                pending.append(cluster.propose(Register(service, now)))
        world.run_for(2.0, lambda: all(d.called for d in pending))
        assert all(d.called for d in pending), "the setup was not committed"
        start = world.now
        for client in self.clients:
            client.acked.append((start, start))
            client.last_sent = start
            self._renew_later(client, self.rng.uniform(0, client.interval))
        self._check_later()

    # --- clients --------------------------------------------------------------------

    def _renew_later(self, client: LeaseClient, delay: float) -> None:
        self.world.clock.callLater(delay, self._renew, client, 0)

    def _renew(self, client: LeaseClient, attempt: int) -> None:
        world = self.world
        if world.now >= client.stop_at:
            return
        ids = [h.id for h in world.up()]
        cluster = self.cluster(self.rng.choice(ids)) if ids else None
        if cluster is None:
            world.clock.callLater(0.05, self._renew, client, attempt + 1)
            return
        sent = world.now
        client.last_sent = sent
        client.renewals += 1
        answer = cluster.renew(Renewal(LEASE, client.lease))
        state = {"done": False}

        def answered(ttl: Any) -> None:
            if state["done"]:
                return
            state["done"] = True
            if ttl == self.ttl:
                client.acked.append((sent, world.now))
                self._renew_later(client, client.interval)
            elif ttl is None:
                raise SafetyViolation(f"lease {client.lease}, kept alive, was gone for a renewal "
                                      f"at {sent:.3f}")  # fmt: skip
            else:
                retry()

        def retry(_: object = None) -> None:
            if not state["done"]:
                state["done"] = True
                # Another node, soon: the renewal is due within the interval.
                world.clock.callLater(0.05, self._renew, client, attempt + 1)

        answer.addCallbacks(answered, retry)
        answer.addErrback(lambda f: self.world.exceptions.append(f.getTraceback()))
        world.clock.callLater(0.5, retry)  # a node that died holding the call

    # --- the checks -------------------------------------------------------------------

    def _check_later(self) -> None:
        self.world.clock.callLater(0.02, self._check)

    def _check(self) -> None:
        try:
            self.check()
        except SafetyViolation as e:
            self.world.exceptions.append(f"lease invariant: {e}")
        self._check_later()

    def check(self) -> None:
        world = self.world
        now = world.now
        # One clock ahead wrote an end, another behind reads it.
        slack = 2 * self.max_offset + DELAY
        leader_id = world.leader()
        if leader_id is None:
            self.leaderless += 0.02
            commit = None
        else:
            commit = world.node(leader_id).core.log.committed
        for client in self.clients:
            last_ack_sent, last_ack = client.acked[-1]
            kept = now < client.stop_at
            for host in world.up():
                registry = host.machine.registry
                held = registry.lease_held(client.lease)
                host_now = host.clock.seconds()
                if held is not None and held.expires > last_ack + self.ttl + slack + 2 * SWEEP:
                    # (the end may be what a renewal in flight granted)
                    if held.expires > client.last_sent + DELAY + self.ttl + slack:
                        raise SafetyViolation(
                            f"{host.id} records lease {client.lease} to {held.expires:.3f}, past "
                            f"any renewal's TTL (last sent {client.last_sent:.3f})")  # fmt: skip
                caught_up = commit is not None and host.handler.applied_index >= commit
                if kept and caught_up and now - last_ack_sent < client.interval + 0.3:
                    if registry.lease(client.lease, host_now) is None:
                        raise SafetyViolation(
                            f"{host.id} (caught up) hides lease {client.lease}, renewed at "
                            f"{last_ack_sent:.3f} and kept alive")  # fmt: skip
                if not kept and now > client.last_sent + DELAY + self.ttl + slack:
                    if registry.lease(client.lease, host_now) is not None:
                        raise SafetyViolation(
                            f"{host.id} still shows lease {client.lease}, let go at "
                            f"{client.last_sent:.3f} (TTL {self.ttl})")  # fmt: skip

    def _check_revoke(self, lease: str, at: float) -> None:
        """A lapsed lease revoked at world time ``at``: its client must have
        let it go.  Then, if the leader changed in between, it may go before
        its last renewal plus TTL (the new leader knows the recorded end
        only), but never before that renewal plus the renewal interval and
        the margin the leader keeps recorded ahead."""
        client = next((c for c in self.clients if c.lease == lease), None)
        if client is None:
            return
        if at < client.stop_at:
            raise SafetyViolation(f"lease {lease}, kept alive, was revoked at {at:.3f} (last "
                                  f"renewed at {client.acked[-1][0]:.3f})")  # fmt: skip
        last_ack_sent = client.acked[-1][0]
        ahead = min(self.ttl, client.interval + MARGIN) - SWEEP - 2 * self.max_offset
        if at < last_ack_sent + ahead:
            raise SafetyViolation(f"lease {lease} revoked at {at:.3f}, its last renewal sent at "
                                  f"{last_ack_sent:.3f} kept it to at least "
                                  f"{last_ack_sent + ahead:.3f}")  # fmt: skip

    def finish(self) -> None:
        """After the run: every lease let go was revoked in time; the log
        took fewer checkpoints than a third of the renewals."""
        world = self.world
        world.heal()
        for host_id in world.ids:
            world.restart(host_id)
        world.run_for(self.ttl + 2.0)
        if world.exceptions:
            raise SafetyViolation(world.exceptions[0])
        bound = self.ttl + 2 * ELECTION * 2 + 4 * SWEEP + DELAY + 2 * self.max_offset
        for client in self.clients:
            if client.stop_at == float("inf"):
                continue
            last = client.acked[-1][1]
            revoked = self.revoked.get(client.lease)
            if revoked is None:
                raise SafetyViolation(f"lease {client.lease}, let go at {client.stop_at:.3f}, "
                                      "was never revoked")  # fmt: skip
            if revoked > last + bound + self.leaderless:
                raise SafetyViolation(
                    f"lease {client.lease}, last renewed at {last:.3f}, revoked only at "
                    f"{revoked:.3f} (allowed {bound:.2f}s and {self.leaderless:.2f}s without "
                    "a leader)")  # fmt: skip
        renewals = sum(c.renewals for c in self.clients)
        checkpoints = self.commands.get(Checkpoint.__name__, 0) / max(1, len(world.ids))
        if checkpoints > renewals / 3:
            raise SafetyViolation(f"{checkpoints:.0f} checkpoints for {renewals} renewals")
        if sum(len(c.acked) for c in self.clients) < len(self.clients) * 3:
            raise AssertionError(f"seed {world.seed}: too few renewals went through")
