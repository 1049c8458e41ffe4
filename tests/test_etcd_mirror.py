"""The etcd store's local copy (``--store etcd``) without an etcd: watched
events replayed as registry commands, the fresh read and its lease ends,
a compacted watch read afresh, lease ends polled, and the keys' layout.
The same parts against a real etcd: tests/e2e/test_etcd_store.py."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Expire, RevokeLease, Unregister
from skydns.names import Callback, Service
from skydns.patterns import Pattern
from skydns.registry import Registry
from skydns.store.etcd.client import Compacted, Event, KeyValue
from skydns.store.etcd.layout import (
    BadValue,
    Layout,
    decode_lease,
    decode_service,
    encode_lease,
    encode_service,
    lease_number,
)
from skydns.store.etcd.mirror import EtcdMirror
from skydns.store.etcd.ttls import TTLTracker

LAYOUT = Layout(b"/skydns/")
NOW = 1_000_000.0
LEASE = "0000000000000abc"


class FakeEtcd:
    """The calls the copy makes, answered from a dict; watches are held
    open until a test ends them."""

    def __init__(self) -> None:
        self.kvs: dict[bytes, KeyValue] = {}
        self.ttls: dict[int, int] = {}
        self.revision = 10
        self.watches: list[tuple[int, Any, Deferred[None]]] = []
        self.ranges = 0

    async def range(self, key: bytes, range_end: bytes = b"", revision: int = 0) -> Any:
        self.ranges += 1
        return [kv for k, kv in sorted(self.kvs.items()) if k.startswith(key)], self.revision

    async def time_to_live(self, lease: int) -> int:
        return self.ttls.get(lease, -1)

    def watch(self, key: bytes, range_end: bytes, start: int, on_events: Any,
              opened: Any) -> Deferred[None]:  # fmt: skip
        d: Deferred[None] = Deferred()
        opened()
        self.watches.append((start, on_events, d))
        return d


def service(uuid: str = "u1", **fields: Any) -> Service:
    values: dict[str, Any] = {"uuid": uuid, "name": "web", "environment": "prod", "region": "",
                              "version": "", "host": "10.0.0.1", "port": 80, "ttl": 30}
    values.update(fields)
    return Service(**values)


def kv(key: bytes, value: bytes, lease: int = 0, revision: int = 5) -> KeyValue:
    return KeyValue(key, value, revision, revision, lease)


def put_service(s: Service, lease: int = 0, callbacks: tuple[Callback, ...] = ()) -> Event:
    return Event("put", kv(LAYOUT.service_key(s.uuid), encode_service(s, callbacks), lease))


def put_lease(lease_id: str, ttl: int) -> Event:
    return Event("put", kv(LAYOUT.lease_key(lease_id), encode_lease(ttl), lease_number(lease_id)))


def deleted(key: bytes) -> Event:
    return Event("delete", kv(key, b""))


class MirrorTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.etcd = FakeEtcd()
        self.registry = Registry()
        self.mirror = EtcdMirror(self.etcd, LAYOUT, self.registry, self.clock)  # type: ignore[arg-type]
        self.applied: list[Any] = []
        self.mirror.listeners.append(lambda c, a, live: self.applied.append((c, a, live)))

    def live(self) -> list[str]:
        return sorted(i.service.uuid for i in self.registry.query(Pattern(), self.clock.seconds()))


class EventTests(MirrorTestCase):
    def test_put_registers_and_delete_unregisters_with_callbacks(self) -> None:
        """A new key is a Register; deleting it while its instance is alive
        is an Unregister whose removal carries the key's callbacks (the
        callback sender sends them)."""
        callback = Callback(uuid="c1", name="web", environment="prod", region="", version="",
                            host="10.9.9.9", port=8080, reply="127.0.0.1")  # fmt: skip
        self.mirror.apply_events([put_service(service(), 77, (callback,))], 11)
        self.assertEqual(self.live(), ["u1"])
        self.assertEqual(self.registry.callbacks("u1"), (callback,))
        self.assertEqual(self.mirror.revision, 11)
        self.mirror.apply_events([deleted(LAYOUT.service_key("u1"))], 12)
        self.assertEqual(self.live(), [])
        command, applied, _ = self.applied[-1]
        self.assertIsInstance(command, Unregister)
        self.assertEqual(applied.removals[0].callbacks, (callback,))

    def test_delete_at_its_end_is_an_expiry(self) -> None:
        """A key etcd deletes when its lease runs out is replayed as Expire
        (the audit log and the expiry metric say so), not an unregister."""
        self.mirror.apply_events([put_service(service(ttl=5), 77)], 11)
        self.clock.advance(5)
        self.mirror.apply_events([deleted(LAYOUT.service_key("u1"))], 12)
        self.assertIsInstance(self.applied[-1][0], Expire)
        self.assertEqual(len(self.applied[-1][1].removals), 1)

    def test_update_is_a_drain_or_a_renew_not_a_new_instance(self) -> None:
        self.mirror.apply_events([put_service(service(), 77)], 11)
        self.mirror.apply_events([put_service(service(drain=True), 77)], 12)
        self.assertTrue(self.registry.held("u1").service.drain)  # type: ignore[union-attr]
        self.mirror.apply_events([put_service(service(drain=True, ttl=90), 78)], 13)
        self.assertEqual(self.registry.held("u1").expires, NOW + 90)  # type: ignore[union-attr]
        self.assertEqual([type(c).__name__ for c, _, _ in self.applied],
                         ["Register", "Drain", "Renew"])  # fmt: skip
        self.assertEqual(self.mirror.ttls.number("u1"), 78)

    def test_leases_and_their_instances(self) -> None:
        """A lease key is a GrantLease; an instance under it takes its end;
        the lease's delete (etcd deletes its keys with it) removes all."""
        self.mirror.apply_events([put_lease(LEASE, 10)], 11)
        self.mirror.apply_events([put_service(service("a", lease=LEASE), lease_number(LEASE)),
                                  put_service(service("b", lease=LEASE), lease_number(LEASE))],
                                 12)  # fmt: skip
        self.assertEqual(self.live(), ["a", "b"])
        self.assertEqual(self.registry.held("a").expires, NOW + 10)  # type: ignore[union-attr]
        self.mirror.apply_events([deleted(LAYOUT.lease_key(LEASE))], 13)
        self.assertEqual(self.live(), [])
        command = self.applied[-1][0]
        self.assertIsInstance(command, RevokeLease)
        self.assertFalse(command.lapsed)

    def test_a_bad_value_is_skipped_and_the_rest_applied(self) -> None:
        """A key someone else wrote under the prefix is logged and skipped;
        the batch and its revision still count."""
        bad = Event("put", kv(LAYOUT.service_key("x"), b"{not json"))
        wrong_uuid = Event("put", kv(LAYOUT.service_key("y"), encode_service(service("z"))))
        other = Event("put", kv(b"/skydns/something-else", b"1"))
        self.mirror.apply_events([bad, wrong_uuid, other, put_service(service())], 20)
        self.assertEqual(self.live(), ["u1"])
        self.assertEqual(self.mirror.revision, 20)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_waiters_fire_at_their_revision(self) -> None:
        early, late = self.mirror.wait_for(11), self.mirror.wait_for(12)
        self.mirror.apply_events([put_service(service())], 11)
        self.successResultOf(early)
        self.assertNoResult(late)
        self.successResultOf(self.mirror.wait_for(3))


class LoadTests(MirrorTestCase):
    def test_fresh_read_takes_each_lease_end_from_etcd(self) -> None:
        """A lease or own-TTL instance read afresh ends when etcd says it
        will (not a whole TTL later); one etcd lost in between is left out."""
        number = lease_number(LEASE)
        for event in [put_lease(LEASE, 30), put_service(service("a", lease=LEASE), number),
                      put_service(service("b", ttl=60), 901),
                      put_service(service("c", ttl=60), 902),
                      put_service(service("d", no_expire=True))]:  # fmt: skip
            self.etcd.kvs[event.kv.key] = event.kv
        self.etcd.ttls = {number: 12, 901: 40}
        self.successResultOf(Deferred.fromCoroutine(self.mirror.load()))
        self.assertEqual(self.live(), ["a", "b", "d"])
        self.assertEqual(self.registry.held("a").expires, NOW + 12)  # type: ignore[union-attr]
        self.assertEqual(self.registry.held("b").expires, NOW + 40)  # type: ignore[union-attr]
        self.assertEqual(self.mirror.revision, 10)
        self.assertEqual(len(self.mirror.ttls), 2)

    def test_compacted_watch_reads_afresh(self) -> None:
        """The watch resumes from the revision after the copy's; when etcd
        has compacted it away, the copy is read again."""
        self.mirror.start()
        self.assertEqual(self.etcd.ranges, 1)
        start, on_events, watch = self.etcd.watches[-1]
        self.assertEqual(start, 11)
        on_events([put_service(service())], 14)
        watch.errback(Compacted(20))
        self.clock.advance(0)
        self.assertEqual(self.etcd.ranges, 2)
        self.assertEqual(self.etcd.watches[-1][0], 11)  # the fresh read's revision + 1
        self.assertIsNone(self.mirror.problem)
        # A dropped connection resumes from the last revision seen, no read.
        self.etcd.watches[-1][1]([put_service(service("u2"))], 15)
        self.etcd.watches[-1][2].errback(ConnectionError("gone"))
        self.assertIn("etcd unreachable", self.mirror.problem or "")
        self.clock.advance(0.1)
        self.assertEqual((self.etcd.ranges, self.etcd.watches[-1][0]), (2, 16))
        self.mirror.stop()


class TTLTests(MirrorTestCase):
    def test_ends_near_are_polled_and_recorded(self) -> None:
        """An end within a third of the TTL (plus a second) is asked for;
        the later end etcd gives is recorded, and DNS TTLs follow it."""
        self.mirror.apply_events([put_lease(LEASE, 9),
                                  put_service(service("a", lease=LEASE), lease_number(LEASE))],
                                 11)  # fmt: skip
        tracker: TTLTracker = self.mirror.ttls
        self.assertEqual(tracker.due(NOW), [])
        self.clock.advance(6)
        self.assertEqual(tracker.due(self.clock.seconds()), [LEASE])
        self.etcd.ttls[lease_number(LEASE)] = 9  # renewed through another node
        self.successResultOf(tracker.tick())  # type: ignore[arg-type]
        self.assertEqual(self.registry.held("a").expires, NOW + 6 + 9)  # type: ignore[union-attr]
        self.assertEqual(tracker.asked, 1)


class LayoutTests(SynchronousTestCase):
    def test_round_trip_and_parse(self) -> None:
        s = service(lease=LEASE)
        self.assertEqual(decode_service(encode_service(s)), (s, ()))
        self.assertEqual(decode_lease(encode_lease(7)), 7)
        self.assertEqual(LAYOUT.parse(LAYOUT.service_key("ABC")), ("service", "abc"))
        self.assertEqual(LAYOUT.parse(LAYOUT.lease_key(LEASE)), ("lease", LEASE))
        self.assertIsNone(LAYOUT.parse(LAYOUT.written))

    def test_bad_values(self) -> None:
        for value in [b"", b"[]", b'{"service": 1}', b'{"service": {"uuid": "x"}}']:
            self.assertRaises(BadValue, decode_service, value)
        for value in [b"{}", b'{"TTL": 0}', b'{"TTL": "5"}', b"x"]:
            self.assertRaises(BadValue, decode_lease, value)

    def test_lease_numbers(self) -> None:
        """A lease ID is an etcd lease ID only as a positive 63-bit number."""
        self.assertEqual(lease_number("0000000000000001"), 1)
        self.assertEqual(lease_number("8000000000000000"), 0)
        self.assertEqual(lease_number("0000000000000000"), 0)
        self.assertEqual(f"{lease_number(LEASE):016x}", LEASE)

    def test_new_lease_ids_are_etcd_lease_ids(self) -> None:
        from skydns.http.leases import new_lease_id

        for _ in range(200):
            self.assertNotEqual(lease_number(new_lease_id()), 0)




