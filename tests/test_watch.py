"""The watch hub (SPEC.md §6): which changes reach which watcher, what they
are told, and what a client coming back with an index gets."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Drain, Expire, Register, Renew, Unregister
from skydns.names import Service
from skydns.patterns import Pattern, parse_query
from skydns.registry import Registry
from skydns.watch import hub as hub_module
from skydns.watch.changes import Delta
from skydns.watch.hub import WatchHub
from skydns.watch.streams import wait_for_change


def service(uuid: str, **fields: Any) -> Service:
    values: dict[str, Any] = {"name": "rails", "environment": "production", "region": "east",
                              "version": "1.0.1", "host": "10.0.0.1", "port": 80, "ttl": 30}
    values.update(fields)
    return Service(uuid=uuid, **values)


class Recorder:
    """A watcher that keeps what it is told."""

    def __init__(self, query: str) -> None:
        self.pattern = parse_query(query, "skydns.local")
        self.deltas: list[Delta] = []
        self.resets: list[int] = []

    def changed(self, delta: Delta) -> None:
        self.deltas.append(delta)

    def reset(self, index: int) -> None:
        self.resets.append(index)

    def seen(self) -> list[tuple[str, list[str]]]:
        """(kind, UUIDs) of each change told, in order."""
        out = []
        for d in self.deltas:
            for kind, services in (("added", d.added), ("changed", d.changed),
                                   ("removed", d.removed)):  # fmt: skip
                if services:
                    out.append((kind, [s.uuid for s in services]))
        return out


class HubTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.hub = WatchHub(self.registry)
        self.now = 100.0

    def apply(self, command: Any) -> None:
        self.registry.apply(command)

    def test_a_pattern_sees_its_own_changes_and_no_others(self) -> None:
        """register, drain, remove and expire of rails instances reach the
        rails.production watcher; renewals, web.production, another
        environment do not."""
        rails = Recorder("rails.production")
        self.hub.add(rails)
        self.apply(Register(service("r1"), 100.0))
        self.apply(Register(service("r2", ttl=5), 100.0))
        self.apply(Renew("r1", 60, 101.0))                       # only the lease moves
        self.apply(Register(service("w1", name="web"), 101.0))   # another name
        self.apply(Register(service("s1", environment="staging"), 101.0))
        self.apply(Drain("r1", True, 102.0))
        self.apply(Drain("r1", True, 102.5))                     # no change at all
        self.apply(Unregister("r1", 103.0))
        self.apply(Expire(("r2",), 106.0))
        self.assertEqual(rails.seen(), [
            ("added", ["r1"]), ("added", ["r2"]), ("changed", ["r1"]), ("removed", ["r1"]),
            ("removed", ["r2"]),
        ])  # fmt: skip
        self.assertTrue(rails.deltas[2].changed[0].drain)
        indices = [d.index for d in rails.deltas]
        self.assertEqual(indices, sorted(indices))
        self.assertEqual(indices[-1], self.hub.index)

    def test_an_explicit_region_sees_failover_changes_only(self) -> None:
        """1-0-1.east.rails.production: a west instance of 1.0.1 joins its
        failover answer (a change); one of version 2 does not."""
        east = Recorder("1-0-1.east.rails.production")
        self.hub.add(east)
        self.apply(Register(service("w1", region="west"), 100.0))
        self.apply(Register(service("w2", region="west", version="2"), 100.0))
        self.assertEqual(east.seen(), [("added", ["w1"])])

    def test_a_change_reaches_only_the_watchers_of_its_names(self) -> None:
        """A change is matched to watchers by tag: with 1,000 watchers of
        other names, it computes the delta of a handful."""
        for i in range(1000):
            self.hub.add(Recorder(f"svc{i}.production"))
        mine = Recorder("rails.production")
        everything = Recorder("")
        self.hub.add(mine)
        self.hub.add(everything)
        computed = []
        original = hub_module.delta

        def counting(change: Any, pattern: Pattern) -> Delta:
            computed.append(pattern)
            return original(change, pattern)

        self.patch(hub_module, "delta", counting)
        self.apply(Register(service("r1"), 100.0))
        self.assertEqual(len(computed), 2)
        self.assertEqual((len(mine.deltas), len(everything.deltas)), (1, 1))
        self.assertEqual(len(self.hub), 1002)

    def test_since_gives_exactly_what_was_missed(self) -> None:
        pattern = parse_query("rails.production", "skydns.local")
        self.apply(Register(service("r1"), 100.0))
        start = self.hub.index
        self.apply(Register(service("r2"), 100.0))
        self.apply(Register(service("w1", name="web"), 100.0))
        self.apply(Renew("r2", 60, 101.0))
        self.apply(Unregister("r1", 102.0))
        missed = self.hub.since(pattern, start)
        assert missed is not None
        self.assertEqual([([s.uuid for s in d.added], [s.uuid for s in d.removed])
                          for d in missed], [(["r2"], []), ([], ["r1"])])  # fmt: skip
        self.assertEqual(self.hub.since(pattern, self.hub.index), [])

    def test_since_cannot_answer_the_future_the_forgotten_or_before_a_snapshot(self) -> None:
        hub = WatchHub(self.registry, history=3)
        pattern = Pattern()
        self.assertIsNone(hub.since(pattern, hub.index + 1))
        for i in range(5):
            self.apply(Register(service(f"r{i}"), 100.0))
        self.assertIsNone(hub.since(pattern, 1))       # older than the 3 held
        held = hub.since(pattern, 2)
        assert held is not None
        self.assertEqual(len(held), 3)
        watcher = Recorder("")
        hub.add(watcher)
        self.registry.replace_with(Registry.restore(self.registry.snapshot()))
        self.assertEqual(watcher.resets, [hub.index])
        self.assertIsNone(hub.since(pattern, hub.index - 1))
        self.assertEqual(hub.since(pattern, hub.index), [])

    def test_removed_watchers_are_told_nothing(self) -> None:
        watcher = Recorder("rails.production")
        self.hub.add(watcher)
        self.hub.remove(watcher)
        self.apply(Register(service("r1"), 100.0))
        self.assertEqual((watcher.deltas, len(self.hub)), ([], 0))


class LongPollTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.hub = WatchHub(self.registry)
        self.clock = Clock()
        self.pattern = parse_query("rails.production", "skydns.local")

    def poll(self, index: int, wait: float = 30.0) -> Any:
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(wait_for_change(self.hub, self.pattern, index, wait, self.clock))

    def test_returns_at_the_first_change_of_its_pattern(self) -> None:
        d = self.poll(self.hub.index)
        self.registry.apply(Register(service("w1", name="web"), 100.0))
        self.registry.apply(Register(service("r1"), 100.0))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len(self.hub), 0)

    def test_renewals_wake_nobody_and_wait_runs_out(self) -> None:
        self.registry.apply(Register(service("r1"), 100.0))
        d = self.poll(self.hub.index, wait=30.0)
        self.registry.apply(Renew("r1", 60, 101.0))
        self.assertNoResult(d)
        self.clock.advance(30.0)
        self.successResultOf(d)

    def test_returns_at_once_when_behind_or_ahead(self) -> None:
        start = self.hub.index
        self.registry.apply(Register(service("r1"), 100.0))
        self.successResultOf(self.poll(start))                  # changed since
        self.successResultOf(self.poll(self.hub.index + 10))    # an index from the future
