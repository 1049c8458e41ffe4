"""A random fault schedule for the simulation (the Jepsen "nemesis")."""

from __future__ import annotations

from tests.raft.sim import Sim

ALL = ("partition", "isolate_leader", "one_way", "heal", "crash", "crash_leader", "transfer")


class Nemesis:
    def __init__(
        self,
        sim: Sim,
        kinds: tuple[str, ...] = ALL,
        interval: tuple[int, int] = (50, 400),
        downtime: tuple[int, int] = (20, 400),
    ) -> None:
        self.sim = sim
        self.kinds = kinds
        self.interval = interval
        self.downtime = downtime
        self.until = 0

    def start(self, until: int) -> None:
        self.until = until
        self._later()

    def _later(self) -> None:
        self.sim.at(self.sim.now + self.sim.rng.randint(*self.interval), self._act)

    def _act(self) -> None:
        sim = self.sim
        if sim.now >= self.until:
            return
        rng = sim.rng
        kind = rng.choice(self.kinds)
        sim.faults[f"nemesis {kind}"] += 1
        if kind == "partition":
            ids = list(sim.ids)
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            sim.partition(ids[:cut], ids[cut:])
        elif kind == "isolate_leader":
            leader = sim.leader()
            if leader is not None:
                sim.isolate(leader)
        elif kind == "one_way":
            src, dst = rng.sample(sim.ids, 2)
            sim.cut(src, dst)
        elif kind == "heal":
            sim.heal()
        elif kind in ("crash", "crash_leader"):
            up = [n for n in sim.ids if sim.nodes[n].up]
            target = sim.leader() if kind == "crash_leader" else rng.choice(up) if up else None
            if target is not None:
                sim.crash(target)
                restart_in = rng.randint(*self.downtime)
                sim.at(sim.now + restart_in, lambda: sim.restart(target))
        elif kind == "transfer":
            leader = sim.leader()
            if leader is not None:
                to = rng.choice([n for n in sim.ids if n != leader])
                sim.input(sim.nodes[leader], lambda core: core.transfer_leadership(to))
        self._later()
