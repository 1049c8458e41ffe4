"""Tests for skydns.registry: the state machine, its index, leases and snapshots."""

from __future__ import annotations

import json
import random
from typing import Any

from attrs import evolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import (
    AddCallback,
    Command,
    Drain,
    Expire,
    GrantLease,
    Register,
    Renew,
    Unregister,
    decode,
    encode,
)
from skydns.names import Callback, Service
from skydns.patterns import Pattern, parse_query
from skydns.registry import (
    Applied,
    Instance,
    Outcome,
    Registry,
    Removal,
    SnapshotError,
    encode_snapshot,
    snapshot_pieces,
)
from skydns.registry import snapshot as registry_module


def service(uuid: str = "u1", **overrides: Any) -> Service:
    values: dict[str, Any] = {
        "uuid": uuid,
        "name": "rails",
        "environment": "production",
        "region": "east",
        "version": "1.0.1",
        "host": "web1.example.com",
        "port": 8080,
        "ttl": 30,
    }
    values.update(overrides)
    return Service(**values)


def callback(uuid: str = "cb1", **overrides: Any) -> Callback:
    values: dict[str, Any] = {
        "uuid": uuid, "name": "rails", "environment": "production", "region": "",
        "version": "", "host": "", "reply": "10.0.0.9", "port": 9000,
    }
    values.update(overrides)
    return Callback(**values)


def q(text: str) -> Pattern:
    return parse_query(text, "skydns.local")


def uuids(instances: list[Instance]) -> list[str]:
    return [i.service.uuid for i in instances]


class RegisterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.changes: list[int] = []
        self.registry.add_listener(lambda: self.changes.append(self.registry.version))

    def test_register_get(self) -> None:
        """A registered instance is readable, case-insensitively, with its lease."""
        result = self.registry.apply(Register(service("ABC"), 100.0))
        self.assertEqual(result, Applied(Outcome.OK))
        instance = self.registry.get("abc", 110.0)
        assert instance is not None
        self.assertEqual(instance, Instance(service("ABC"), 130.0))
        self.assertEqual(instance.remaining(110.0), 20.0)
        self.assertEqual(self.changes, [1])
        self.assertEqual(len(self.registry), 1)

    def test_conflict(self) -> None:
        """Registering a live UUID again (any case) is a conflict and changes nothing."""
        self.registry.apply(Register(service("u1"), 100.0))
        result = self.registry.apply(Register(service("U1", port=1), 120.0))
        self.assertEqual(result, Applied(Outcome.CONFLICT))
        self.assertEqual(self.registry.get("u1", 120.0), Instance(service("u1"), 130.0))
        self.assertEqual(self.changes, [1])

    def test_reregister_expired(self) -> None:
        """An expired, not yet removed UUID may be registered again; the old
        instance is removed with its callbacks."""
        self.registry.apply(Register(service("u1"), 100.0))
        self.registry.apply(AddCallback(callback(), 101.0))
        result = self.registry.apply(Register(service("u1", port=1), 130.0))
        self.assertEqual(result, Applied(Outcome.OK, (
            Removal(Instance(service("u1"), 130.0), (callback(),)),)))
        self.assertEqual(self.registry.get("u1", 130.0), Instance(service("u1", port=1), 160.0))
        self.assertEqual(self.registry.callbacks("u1"), ())

    def test_lease_hides_before_expire(self) -> None:
        """Reads hide an instance at the end of its lease, before Expire is applied."""
        self.registry.apply(Register(service("u1"), 100.0))
        self.assertIsNotNone(self.registry.get("u1", 129.9))
        self.assertIsNone(self.registry.get("u1", 130.0))
        self.assertEqual(self.registry.query(q("rails.production"), 130.0), [])
        self.assertFalse(bool(self.registry.query(q("rails.production"), 130.0)))
        self.assertEqual(self.registry.regions(130.0), {})
        self.assertEqual(len(self.registry), 1)

    def test_no_expire(self) -> None:
        """NoExpire instances never expire and show their TTL as remaining."""
        self.registry.apply(Register(service("u1", no_expire=True), 100.0))
        instance = self.registry.get("u1", 10.0**9)
        assert instance is not None
        self.assertEqual(instance.remaining(10.0**9), 30.0)
        self.assertEqual(self.registry.expired(10.0**9), [])


class RenewUnregisterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.registry.apply(Register(service("u1"), 100.0))

    def test_renew(self) -> None:
        """Renew sets the lease to now + ttl and the TTL to ttl."""
        self.assertEqual(self.registry.apply(Renew("U1", 60, 120.0)), Applied(Outcome.OK))
        self.assertEqual(self.registry.get("u1", 170.0),
                         Instance(service("u1", ttl=60), 180.0))
        self.assertEqual(self.registry.version, 2)

    def test_renew_unknown_or_expired(self) -> None:
        """Renew of an unknown or expired UUID is not_found and changes nothing."""
        self.assertEqual(self.registry.apply(Renew("nope", 60, 120.0)), Applied(Outcome.NOT_FOUND))
        self.assertEqual(self.registry.apply(Renew("u1", 60, 130.0)), Applied(Outcome.NOT_FOUND))
        self.assertEqual(self.registry.version, 1)

    def test_unregister(self) -> None:
        """Unregister removes the instance and lists it with its callbacks."""
        self.registry.apply(AddCallback(callback(), 101.0))
        result = self.registry.apply(Unregister("U1", 110.0))
        self.assertEqual(result, Applied(Outcome.OK, (
            Removal(Instance(service("u1"), 130.0), (callback(),)),)))
        self.assertIsNone(self.registry.get("u1", 110.0))
        self.assertEqual(len(self.registry), 0)
        self.assertEqual(self.registry.query(q("rails.production"), 110.0), [])

    def test_unregister_missing(self) -> None:
        self.assertEqual(self.registry.apply(Unregister("x", 110.0)), Applied(Outcome.NOT_FOUND))

    def test_unregister_expired(self) -> None:
        """Unregister of an expired instance removes it (callbacks fire) but
        answers not_found, as GET does."""
        result = self.registry.apply(Unregister("u1", 140.0))
        self.assertEqual(result.status, "not_found")
        self.assertEqual(len(result.removals), 1)
        self.assertEqual(len(self.registry), 0)


class ExpireTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        for i, ttl in enumerate([10, 20, 30]):
            self.registry.apply(Register(service(f"u{i}", ttl=ttl), 100.0))
        self.registry.apply(Register(service("forever", no_expire=True, ttl=1), 100.0))

    def test_expired_lists_lapsed_leases(self) -> None:
        """expired(now) lists exactly the UUIDs whose lease ended by now."""
        self.assertEqual(self.registry.expired(109.9), [])
        self.assertEqual(self.registry.expired(110.0), ["u0"])
        self.assertEqual(self.registry.expired(125.0), ["u0", "u1"])
        self.assertEqual(self.registry.expired(125.0), ["u0", "u1"])  # a read: unchanged

    def test_renewed_not_expired(self) -> None:
        """A renewed lease is not listed under its old expiry."""
        self.registry.apply(Renew("u0", 100, 105.0))
        self.assertEqual(self.registry.expired(125.0), ["u1"])
        self.assertEqual(self.registry.expired(205.0), ["u1", "u2", "u0"])

    def test_renewed_lease_found_when_it_runs_out(self) -> None:
        """A lease renewed (more than once) is listed exactly when its last
        renewal runs out, not before, not later."""
        self.registry.apply(Renew("u0", 10, 105.0))
        self.registry.apply(Renew("u0", 10, 108.0))
        self.assertEqual(self.registry.expired(117.9), [])
        self.assertEqual(self.registry.expired(118.0), ["u0"])

    def test_shortening_renewal_runs_out_at_its_new_end(self) -> None:
        """A renewal for less than is left moves the expiry earlier."""
        self.registry.apply(Renew("u2", 2, 101.0))
        self.assertEqual(self.registry.expired(102.9), [])
        self.assertEqual(self.registry.expired(103.0), ["u2"])
        self.assertEqual(self.registry.expired(110.0), ["u2", "u0"])

    def test_renewals_do_not_grow_the_lease_heap(self) -> None:
        """Renewing one instance many times costs no heap entry per renewal
        (so no rebuild stalls a busy leader); checking expiry moves it on."""
        for i in range(5000):
            self.registry.apply(Renew("u0", 10, 100.0 + i / 1000))
        self.assertLessEqual(len(self.registry._leases), 3)
        self.assertEqual(self.registry.expired(114.0), [])
        self.assertLessEqual(len(self.registry._leases), 3)
        self.assertEqual(self.registry.expired(114.999), ["u0"])

    def test_expire_removes_only_lapsed(self) -> None:
        """Expire removes listed instances whose lease ended, leaving renewed ones."""
        self.registry.apply(AddCallback(callback("cb"), 100.0))
        self.registry.apply(Renew("u1", 100, 105.0))
        result = self.registry.apply(Expire(("u0", "u1", "gone"), 120.0))
        self.assertEqual(result.status, "ok")
        self.assertEqual([r.instance.service.uuid for r in result.removals], ["u0"])
        self.assertEqual(result.removals[0].callbacks, (callback("cb"),))
        self.assertEqual(sorted(uuids(self.registry.query(Pattern(), 120.0))),
                         ["forever", "u1", "u2"])
        self.assertEqual(self.registry.expired(120.0), [])

    def test_expire_nothing_no_change(self) -> None:
        version = self.registry.version
        self.assertEqual(self.registry.apply(Expire(("u2",), 120.0)), Applied(Outcome.OK))
        self.assertEqual(self.registry.version, version)

    def test_lease_heap_stays_bounded(self) -> None:
        """Frequent renewals do not grow the lease heap without bound."""
        for t in range(5000):
            self.registry.apply(Renew("u2", 30, 100.0 + t / 1000))
        self.assertLess(len(self.registry._leases), 2 * len(self.registry) + 1100)
        self.assertEqual(self.registry.expired(200.0), ["u0", "u1", "u2"])


class QueryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        rows = [
            ("a1", "east", "1.0.1", "web1.example.com", "rails", "production"),
            ("a2", "West", "1.0.1", "10.0.0.2", "rails", "production"),
            ("a3", "east", "2.0", "2001:db8::3", "rails", "production"),
            ("a4", "east", "1.0.1", "10.0.0.2", "rails", "staging"),
            ("a5", "east", "1.0.1", "db.example.com", "pg", "production"),
        ]
        for uuid, region, version, host, name, env in rows:
            self.registry.apply(Register(
                service(uuid, region=region, version=version, host=host, name=name,
                        environment=env), 100.0))

    def test_patterns(self) -> None:
        """Patterns select by label with padding and wildcards, ordered by UUID."""
        r = self.registry
        self.assertEqual(uuids(r.query(q("rails.production"), 101)), ["a1", "a2", "a3"])
        self.assertEqual(uuids(r.query(q("east.rails.production"), 101)), ["a1", "a3"])
        self.assertEqual(uuids(r.query(q("WEST.Rails.production.skydns.local."), 101)), ["a2"])
        self.assertEqual(uuids(r.query(q("1-0-1.*.rails.production"), 101)), ["a1", "a2"])
        self.assertEqual(uuids(r.query(q("1-0-1.east.*.any"), 101)), ["a1", "a4", "a5"])
        self.assertEqual(uuids(r.query(q("2001-db8--3.any.any.any.any"), 101)), ["a3"])
        self.assertEqual(uuids(r.query(q("A4.*.*.*.*.*"), 101)), ["a4"])
        self.assertEqual(uuids(r.query(q("production"), 101)), ["a1", "a2", "a3", "a5"])
        self.assertEqual(uuids(r.query(Pattern(), 101)), ["a1", "a2", "a3", "a4", "a5"])
        self.assertEqual(r.query(q("nothing.production"), 101), [])

    def test_failover(self) -> None:
        """Failover gives the other regions' instances that match otherwise."""
        r = self.registry
        self.assertEqual(uuids(r.failover(q("east.rails.production"), 101)), ["a2"])
        self.assertEqual(uuids(r.failover(q("north.rails.production"), 101)),
                         ["a1", "a2", "a3"])
        self.assertEqual(uuids(r.failover(q("1-0-1.west.rails.production"), 101)), ["a1"])
        self.assertEqual(r.failover(q("rails.production"), 101), [])

    def test_exists(self) -> None:
        self.assertTrue(bool(self.registry.query(q("pg.production"), 101)))
        self.assertFalse(bool(self.registry.query(q("pg.staging"), 101)))

    def test_counts(self) -> None:
        """Regions and environments count live instances by the value as sent."""
        self.assertEqual(self.registry.regions(101), {"West": 1, "east": 4})
        self.assertEqual(self.registry.environments(101), {"production": 4, "staging": 1})

    def test_by_address(self) -> None:
        """by_address finds IP hosts, whatever the literal's spelling."""
        self.assertEqual(uuids(self.registry.by_address("10.0.0.2", 101)), ["a2", "a4"])
        self.assertEqual(uuids(self.registry.by_address("2001:DB8:0::3", 101)), ["a3"])
        self.assertEqual(self.registry.by_address("web1.example.com", 101), [])
        self.registry.apply(Unregister("a2", 102))
        self.assertEqual(uuids(self.registry.by_address("10.0.0.2", 103)), ["a4"])

    def test_index_used(self) -> None:
        """A query fixing name and environment examines only that bucket, even
        among 100,000 instances."""
        registry = Registry()
        for i in range(100_000):
            registry.apply(Register(
                service(f"x{i}", name=f"svc{i % 1000}", environment=f"env{i % 7}"), 0.0))
        found = registry.query(q("svc42.env0"), 1.0)
        self.assertEqual(len(found), len([i for i in range(100_000)
                                          if i % 1000 == 42 and i % 7 == 0]))
        self.assertEqual(len(registry._candidates(q("svc42.env0"))), len(found))
        self.assertFalse(bool(registry.query(q("svc42.env1000"), 1.0)))
        self.assertEqual(registry._candidates(q("svc42.env1000")), [])
        self.assertEqual(len(registry.query(q("x5.*.*.*.*.*"), 1.0)), 1)
        self.assertEqual(registry._candidates(q("x5.*.*.*.*.*")), ["x5"])


class DrainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.registry.apply(Register(service("u1", ttl=30), 100.0))
        self.registry.apply(Register(service("u2", host="10.0.0.2", ttl=30), 100.0))

    def test_drain_keeps_the_instance_and_its_lease(self) -> None:
        """A drained instance is still held, found by get and by API-side
        queries, its lease unchanged; DNS-side reads (drained=False,
        failover, by_address) leave it out until it is undrained."""
        before = self.registry.version
        self.assertEqual(self.registry.apply(Drain("U2", True, 110.0)).status, Outcome.OK)
        self.assertGreater(self.registry.version, before)
        held = self.registry.get("u2", 110.0)
        assert held is not None
        self.assertTrue(held.service.drain)
        self.assertEqual(held.expires, 130.0)
        self.assertEqual(len(self.registry.query(q("rails.production"), 110.0)), 2)
        self.assertEqual([i.service.uuid for i in
                          self.registry.query(q("rails.production"), 110.0, drained=False)],
                         ["u1"])  # fmt: skip
        self.assertEqual(self.registry.by_address("10.0.0.2", 110.0), [])
        self.assertEqual(self.registry.failover(q("west.rails.production"), 110.0),
                         self.registry.query(q("rails.production"), 110.0, drained=False))
        self.registry.apply(Renew("u2", 60, 120.0))
        renewed = self.registry.get("u2", 120.0)
        assert renewed is not None
        self.assertTrue(renewed.service.drain)  # a renewal keeps the drain
        self.registry.apply(Drain("u2", False, 121.0))
        self.assertEqual(len(self.registry.query(q("rails.production"), 121.0, drained=False)),
                         2)  # fmt: skip

    def test_unknown_expired_and_repeated(self) -> None:
        """NOT_FOUND for no live instance; draining a drained one is OK and
        changes nothing."""
        self.assertEqual(self.registry.apply(Drain("nope", True, 110.0)).status,
                         Outcome.NOT_FOUND)  # fmt: skip
        self.assertEqual(self.registry.apply(Drain("u1", True, 131.0)).status,
                         Outcome.NOT_FOUND)  # fmt: skip
        self.registry.apply(Drain("u1", True, 110.0))
        version = self.registry.version
        self.assertEqual(self.registry.apply(Drain("u1", True, 111.0)).status, Outcome.OK)
        self.assertEqual(self.registry.version, version)

    def test_snapshot_keeps_drain_and_protocol(self) -> None:
        self.registry.apply(Register(service("u3", protocol="udp"), 100.0))
        self.registry.apply(Drain("u1", True, 110.0))
        restored = Registry.restore(self.registry.snapshot())
        self.assertEqual(restored, self.registry)
        held = restored.get("u1", 110.0)
        assert held is not None
        self.assertTrue(held.service.drain)
        self.assertEqual([i.service.uuid for i in restored.query(
            Pattern(name="rails", protocol="udp"), 110.0)], ["u3"])  # fmt: skip


class CallbackTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.registry.apply(Register(service("u1"), 100.0))
        self.registry.apply(Register(service("u2", environment="staging"), 100.0))
        self.registry.apply(Register(service("u3", ttl=1), 100.0))

    def test_attach_to_live_matches(self) -> None:
        """AddCallback attaches to every live instance it matches."""
        result = self.registry.apply(AddCallback(callback(), 105.0))
        self.assertEqual(result, Applied(Outcome.OK))
        self.assertEqual(self.registry.callbacks("u1"), (callback(),))
        self.assertEqual(self.registry.callbacks("u2"), ())
        self.assertEqual(self.registry.callbacks("u3"), ())

    def test_wildcard_callback(self) -> None:
        """A callback with empty match fields watches every live instance."""
        cb = callback(name="", environment="*")
        self.registry.apply(AddCallback(cb, 100.5))
        for uuid in ("u1", "u2", "u3"):
            self.assertEqual(self.registry.callbacks(uuid), (cb,))

    def test_not_found(self) -> None:
        self.assertEqual(self.registry.apply(AddCallback(callback(name="pg"), 105.0)),
                         Applied(Outcome.NOT_FOUND))
        self.assertEqual(self.registry.version, 3)

    def test_same_uuid_replaces(self) -> None:
        """A callback registered again under the same UUID replaces the old one."""
        self.registry.apply(AddCallback(callback(port=1), 105.0))
        self.registry.apply(AddCallback(callback(port=2), 105.0))
        self.assertEqual(self.registry.callbacks("u1"), (callback(port=2),))


# -- state-machine properties ---------------------------------------------------

UUIDS = ["a", "B", "c", "d"]
commands = st.one_of(
    st.builds(
        lambda u, ttl, ne, region, now, prio: Register(
            service(u, ttl=ttl, no_expire=ne, region=region, priority=prio), now),
        st.sampled_from(UUIDS), st.integers(1, 20), st.booleans(),
        st.sampled_from(["east", "west"]), st.integers(0, 40).map(float),
        st.none() | st.integers(0, 9)),
    st.builds(lambda u, now: Unregister(u, now), st.sampled_from(UUIDS + ["A"]),
              st.integers(0, 40).map(float)),
    st.builds(lambda u, ttl, now: Renew(u, ttl, now), st.sampled_from(UUIDS),
              st.integers(1, 20), st.integers(0, 40).map(float)),
    st.builds(lambda us, now: Expire(tuple(us), now), st.lists(st.sampled_from(UUIDS)),
              st.integers(0, 40).map(float)),
    st.builds(lambda cu, region, now: AddCallback(callback(cu, region=region), now),
              st.sampled_from(["k1", "k2"]), st.sampled_from(["", "east"]),
              st.integers(0, 40).map(float)),
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(commands, max_size=30), st.integers(0, 50).map(float))
    def test_snapshot_round_trip(self, history: list[Command], now: float) -> None:
        """restore(snapshot()) gives a registry that answers and evolves the same."""
        registry = Registry()
        for command in history:
            registry.apply(command)
        copy = Registry.restore(registry.snapshot())
        self.assertEqual(copy.snapshot(), registry.snapshot())
        self.assertEqual(copy.version, registry.version)
        for pattern in (Pattern(), q("rails.production"), q("east.rails.production"),
                        q("a.*.*.*.*.*")):
            self.assertEqual(copy.query(pattern, now), registry.query(pattern, now))
        self.assertEqual(copy.expired(now), registry.expired(now))
        self.assertEqual(copy.regions(now), registry.regions(now))
        for uuid in UUIDS:
            self.assertEqual(copy.callbacks(uuid), registry.callbacks(uuid))
        follow_up = Expire(tuple(UUIDS), now)
        self.assertEqual(copy.apply(follow_up), registry.apply(follow_up))
        self.assertEqual(copy, registry)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(commands, max_size=30), st.integers(0, 50).map(float))
    def test_deterministic_and_index_consistent(
        self, history: list[Command], now: float
    ) -> None:
        """Replaying the encoded log gives the same results and state; the
        index answers as a full scan would."""
        first, second = Registry(), Registry()
        for command in history:
            self.assertEqual(first.apply(command), second.apply(decode(encode(command))))
        self.assertEqual(first.snapshot(), second.snapshot())
        everything = first.query(Pattern(), now)
        for pattern in (q("rails.production"), q("east.rails.production"),
                        q("b.*.*.*.*.*"), q("1-0-1.west.*.*")):
            self.assertEqual(first.query(pattern, now),
                             [i for i in everything if pattern.matches(i.service)])
        self.assertTrue(all(i.alive(now) for i in everything))
        expired = set(first.expired(now))
        held = set(first._instances)
        self.assertEqual({u.lower() for u in expired} | {i.service.uuid.lower()
                                                          for i in everything}, held)

    def test_snapshot_is_one_json_document_however_it_is_written(self) -> None:
        """`encode_snapshot` sorts the keys a slice at a time and writes a
        few hundred instances per json call; the bytes are exactly the
        one-call encoding of the documented body (so snapshots from before
        stay readable, and after), with several slices and chunks and with
        none (and a last chunk that is full), whatever order the instances
        were registered in."""
        self.patch(registry_module, "_SNAPSHOT_SORT_SLICE", 64)
        for count in (0, 1, 512, 700):
            registry = Registry()
            order = list(range(count))
            random.Random(count).shuffle(order)
            for i in order:
                registry.apply(Register(service(f"u{i:04d}", region=f"r{i % 3}"), 1.5))
            registry.apply(AddCallback(callback("k1", name="rails"), 2.0))
            if count % 2:  # and with leases, format 2
                registry.apply(GrantLease("00000000000000a1", 30, 2.0))
                leased = evolve(service("l1"), lease="00000000000000a1")
                registry.apply(Register(leased, 2.5))
            state = registry.frozen_state()
            version, instances, callbacks, leases = state
            body: dict[str, Any] = {
                "format": 2 if leases else 1,
                "version": version,
                "instances": [
                    {
                        "service": instances[key].service.to_dict(),
                        "expires": instances[key].expires,
                        "callbacks": [cb.to_dict() for cb in callbacks.get(key, ())],
                    }
                    for key in sorted(instances)
                ],
            }
            if leases:
                body["leases"] = [{"id": e.id, "ttl": e.ttl, "expires": e.expires} for e in leases]
            one_call = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            self.assertEqual(encode_snapshot(*state), one_call)
            self.assertEqual(Registry.restore(one_call), registry)

    def test_snapshot_is_encoded_in_small_steps(self) -> None:
        """`snapshot_pieces` yields after each slice it sorts and each chunk
        it encodes, so no step handles more than a few thousand instances,
        and returns the pieces of what `encode_snapshot` does."""
        registry = Registry()
        for i in range(20_000):
            registry.apply(Register(service(f"u{i:05d}", name=f"n{i % 4}"), 1.5))
        state = registry.frozen_state()
        steps = snapshot_pieces(*state)
        count = 0
        try:
            while True:
                next(steps)
                count += 1
        except StopIteration as end:
            data = b"".join(end.value)
        body = json.loads(data)
        self.assertEqual(data, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
        self.assertEqual([i["service"]["uuid"] for i in body["instances"]],
                         [f"u{i:05d}" for i in range(20_000)])  # fmt: skip
        # 3 slices of at most 8192 keys, then a pause after each of the 78
        # full chunks of 256 instances (the last 32 need none).
        self.assertEqual(count, 3 + 20_000 // 256)

    @settings(max_examples=300, deadline=None)
    @given(
        texts=st.lists(st.text(max_size=12), min_size=6, max_size=6),
        numbers=st.tuples(st.integers(0, 70000), st.integers(0, 2**31),
                          st.none() | st.integers(0, 65535), st.none() | st.integers(0, 65535)),
        no_expire=st.booleans(),
        expires=st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 10**9),
        with_callback=st.booleans(),
    )  # fmt: skip
    def test_each_instance_written_as_json_would(
        self, texts: list[str], numbers: tuple[int, int, Any, Any], no_expire: bool,
        expires: float, with_callback: bool,
    ) -> None:  # fmt: skip
        """Any service (unusual text, numbers, optional fields), any expiry
        (non-finite too) and callbacks: `encode_snapshot` gives the bytes of
        the one-call JSON encoding."""
        uuid, name, environment, region, version, host = texts
        port, ttl, priority, weight = numbers
        svc = Service(uuid=uuid, name=name, environment=environment, region=region,
                      version=version, host=host, port=port, ttl=ttl, priority=priority,
                      weight=weight, no_expire=no_expire)  # fmt: skip
        instance = Instance(svc, expires)  # type: ignore[arg-type]
        cbs = (callback("k\u00e9", name=name),) if with_callback else ()
        body = {"format": 1, "version": 3, "instances": [{
            "service": svc.to_dict(), "expires": expires,
            "callbacks": [cb.to_dict() for cb in cbs]}]}  # fmt: skip
        expected = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        self.assertEqual(encode_snapshot(3, {"k": instance}, {"k": cbs}), expected)

    @settings(max_examples=300, deadline=None)
    @given(
        texts=st.lists(st.text(max_size=12), min_size=6, max_size=6),
        port=st.integers(0, 70000),
        ttl=st.integers(0, 2**31),
        expires=st.floats(allow_nan=False, allow_infinity=False),
    )
    def test_plain_instance_written_as_json_would(
        self, texts: list[str], port: int, ttl: int, expires: float
    ) -> None:
        """The common instance (no callbacks, no priority, weight or
        NoExpire), which `encode_snapshot` writes with one format: the
        bytes of the one-call JSON encoding."""
        uuid, name, environment, region, version, host = texts
        svc = Service(uuid=uuid, name=name, environment=environment, region=region,
                      version=version, host=host, port=port, ttl=ttl)  # fmt: skip
        body = {"format": 1, "version": 3, "instances": [
            {"service": svc.to_dict(), "expires": expires, "callbacks": []}]}  # fmt: skip
        expected = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        self.assertEqual(encode_snapshot(3, {"k": Instance(svc, expires)}, {}), expected)

    def test_restore_rejects_garbage(self) -> None:
        for data in (b"", b"[]", b'{"format": 99}', b'{"format": 1}', b"\xff"):
            self.assertRaises(SnapshotError, Registry.restore, data)
        # Broken in the middle of the compact form, which is read an instance at a time.
        good = Registry()
        good.apply(Register(service("u1"), 1.0))
        whole = good.snapshot()
        for data in (
            whole[: len(whole) // 2],  # cut off inside an instance
            whole.replace(b"}],", b"}x],", 1),
            b'{"format":1,"instances":[',
            b'{"format":1,"instances":[{"x":1}],"version":1}',
            b'{"format":1,"instances":[1 2],"version":1}',
            b'{"format":1,"instances":[],"versio":1}',
            b'{"format":1,"instances":[],"version":1}trailing',
            b'{"format":2,"instances":[],"version":1}',
        ):
            self.assertRaises(SnapshotError, Registry.restore, data)
        self.assertEqual(Registry.restore(whole), good)
        spaced = whole.replace(b"}],", b"} ] ,", 1)  # valid JSON, not the compact form
        self.assertEqual(Registry.restore(spaced), good)
        empty = b'{"format":1,"instances":[],"version":7}'
        self.assertEqual(Registry.restore(empty).version, 7)
