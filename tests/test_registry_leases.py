"""The registry's leases (SPEC.md §7): grant, instances living by a lease,
checkpoints, revoke and lapse, snapshots, and the log encoding."""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import (
    Checkpoint,
    CommandDecodeError,
    GrantLease,
    Register,
    Renew,
    RevokeLease,
    Unregister,
    decode,
    encode,
)
from skydns.names import Service
from skydns.registry import Outcome, Registry

L1 = "00000000000000a1"
L2 = "00000000000000b2"


def service(uuid: str, lease: str = "", ttl: int = 10) -> Service:
    return Service(uuid, "rails", "production", "east", "1", "10.0.0.1", 80, ttl, lease=lease)


class LeaseRegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        self.assertEqual(self.registry.apply(GrantLease(L1, 30, 100.0)).status, Outcome.OK)

    def test_instances_take_the_lease_ttl_and_end(self) -> None:
        self.assertEqual(self.registry.apply(Register(service("a", L1, ttl=5), 110.0)).status,
                         Outcome.OK)  # fmt: skip
        instance = self.registry.get("a", 110.0)
        assert instance is not None
        self.assertEqual((instance.service.ttl, instance.expires), (30, 130.0))
        self.assertEqual(self.registry.lease_members(L1), ["a"])

    def test_registering_under_a_missing_or_lapsed_lease_is_refused(self) -> None:
        self.assertEqual(self.registry.apply(Register(service("a", L2), 110.0)).status,
                         Outcome.NO_LEASE)  # fmt: skip
        self.assertEqual(self.registry.apply(Register(service("a", L1), 130.0)).status,
                         Outcome.NO_LEASE)  # fmt: skip
        self.assertEqual(len(self.registry), 0)

    def test_checkpoint_moves_the_lease_and_its_instances_later_only(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.registry.apply(Register(service("b", L1), 101.0))
        version = self.registry.version
        self.registry.apply(Checkpoint(((L1, 150.0),), (), 120.0))
        self.assertEqual([self.registry.get(u, 140.0).expires for u in "ab"],  # type: ignore[union-attr]
                         [150.0, 150.0])  # fmt: skip
        lease = self.registry.lease(L1, 140.0)
        assert lease is not None
        self.assertEqual(lease.expires, 150.0)
        # Earlier ends, lapsed leases and unknown ones change nothing.
        self.registry.apply(Checkpoint(((L1, 140.0), (L2, 999.0)), (), 121.0))
        self.assertEqual(self.registry.lease(L1, 140.0), lease)
        # A checkpoint is no change: watchers and the SOA serial do not move.
        self.assertEqual(self.registry.version, version)
        # One run out but not yet revoked takes it (the leader held it
        # alive; only its checkpoint came late): its instances come back,
        # a change.  A revoked one does not.
        self.registry.apply(Checkpoint(((L1, 500.0),), (), 151.0))
        self.assertEqual(self.registry.lease(L1, 151.0).expires, 500.0)  # type: ignore[union-attr]
        self.assertEqual(self.registry.version, version + 1)
        self.registry.apply(RevokeLease((L1,), 152.0))
        self.registry.apply(Checkpoint(((L1, 900.0),), (), 153.0))
        self.assertIsNone(self.registry.lease_held(L1))

    def test_checkpoint_of_an_instance_with_its_own_ttl(self) -> None:
        self.registry.apply(Register(service("own", ttl=10), 100.0))
        self.registry.apply(Register(service("leased", L1), 100.0))
        self.registry.apply(Checkpoint((), (("OWN", 125.0), ("leased", 999.0)), 105.0))
        self.assertEqual(self.registry.get("own", 120.0).expires, 125.0)  # type: ignore[union-attr]
        # An instance of a lease follows its lease, not instance checkpoints.
        self.assertEqual(self.registry.get("leased", 120.0).expires, 130.0)  # type: ignore[union-attr]
        # Nor does a Renew touch it: it renews with its lease.
        self.assertEqual(self.registry.apply(Renew("leased", 99, 105.0)).status, Outcome.NOT_FOUND)

    def test_revoke_removes_every_instance_with_callbacks(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.registry.apply(Register(service("b", L1), 101.0))
        self.registry.apply(Register(service("c"), 101.0))
        applied = self.registry.apply(RevokeLease((L1,), 102.0))
        self.assertEqual(applied.status, Outcome.OK)
        self.assertEqual(sorted(r.instance.service.uuid for r in applied.removals), ["a", "b"])
        self.assertEqual(len(self.registry), 1)
        self.assertIsNone(self.registry.lease(L1, 102.0))
        self.assertEqual(self.registry.apply(RevokeLease((L1,), 103.0)).status, Outcome.NOT_FOUND)

    def test_lapsed_revoke_spares_a_lease_extended_since(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.assertEqual(self.registry.lapsed_leases(131.0), [L1])
        self.registry.apply(Checkpoint(((L1, 160.0),), (), 129.0))
        self.assertEqual(self.registry.lapsed_leases(131.0), [])
        applied = self.registry.apply(RevokeLease((L1,), 131.0, lapsed=True))
        self.assertEqual((applied.status, applied.removals), (Outcome.OK, ()))
        self.assertIsNotNone(self.registry.get("a", 131.0))
        applied = self.registry.apply(RevokeLease((L1,), 161.0, lapsed=True))
        self.assertEqual([r.instance.service.uuid for r in applied.removals], ["a"])

    def test_lease_instances_are_never_expired_one_by_one(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.registry.apply(Register(service("own", ttl=5), 101.0))
        self.assertEqual(self.registry.expired(200.0), ["own"])

    def test_unregister_detaches_from_the_lease(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.registry.apply(Unregister("A", 102.0))
        self.assertEqual(self.registry.lease_members(L1), [])
        self.assertEqual(self.registry.apply(RevokeLease((L1,), 103.0)).removals, ())

    def test_grant_over_a_lapsed_lease_removes_its_instances(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.assertEqual(self.registry.apply(GrantLease(L1, 5, 120.0)).status, Outcome.CONFLICT)
        applied = self.registry.apply(GrantLease(L1, 5, 140.0))
        self.assertEqual([r.instance.service.uuid for r in applied.removals], ["a"])
        self.assertEqual(self.registry.lease(L1, 141.0).ttl, 5)  # type: ignore[union-attr]

    def test_snapshot_keeps_leases_and_members(self) -> None:
        self.registry.apply(Register(service("a", L1), 101.0))
        self.registry.apply(Checkpoint(((L1, 170.0),), (), 102.0))
        self.registry.apply(GrantLease(L2, 7, 103.0))
        data = self.registry.snapshot()
        self.assertTrue(data.startswith(b'{"format":2,'))
        restored = Registry.restore(data)
        self.assertEqual(restored, self.registry)
        self.assertEqual(restored.lease_members(L1), ["a"])
        self.assertEqual(restored.get("a", 160.0).expires, 170.0)  # type: ignore[union-attr]
        removals = restored.apply(RevokeLease((L1,), 104.0)).removals
        self.assertEqual([r.instance.service.uuid for r in removals], ["a"])

    def test_no_lease_no_format_change(self) -> None:
        """A registry without leases writes format 1, as before leases."""
        registry = Registry()
        registry.apply(Register(service("a"), 1.0))
        self.assertTrue(registry.snapshot().startswith(b'{"format":1,'))


class LeaseCommandEncodingTests(SynchronousTestCase):
    def test_round_trips(self) -> None:
        for command in [
            GrantLease(L1, 30, 1.5),
            RevokeLease((L1, L2), 2.0),
            RevokeLease((L1,), 2.0, lapsed=True),
            Checkpoint(((L1, 40.25),), (("web-1", 33.0),), 3.0),
            Register(service("a", L1), 4.0),
        ]:
            self.assertEqual(decode(encode(command)), command)

    def test_invalid_entries_are_refused(self) -> None:
        for data in [
            b'{"op":"grant","lease":"nothex!!nothex!","ttl":3,"now":1}',
            b'{"op":"grant","lease":"00000000000000a1","ttl":0,"now":1}',
            b'{"op":"revoke","leases":"00000000000000a1","lapsed":false,"now":1}',
            b'{"op":"revoke","leases":["00000000000000a1"],"lapsed":1,"now":1}',
            b'{"op":"checkpoint","leases":[["00000000000000a1"]],"instances":[],"now":1}',
            b'{"op":"checkpoint","leases":[],"instances":[["a",1e300]],"now":1}',
            b'{"op":"checkpoint","leases":[],"instances":[[1,2.0]],"now":1}',
        ]:
            with self.assertRaises(CommandDecodeError, msg=data):
                decode(data)
        with self.assertRaises(CommandDecodeError):
            decode(encode(Register(evolve(service("a"), lease="L"), 1.0)))
