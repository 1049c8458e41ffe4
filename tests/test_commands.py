"""Log entries are held to the API's own rules: an entry a request could not
have made (forwarded by anyone who can reach the Raft port) is refused when
proposed and applied as a no-op if it is in the log anyway."""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import (
    AddCallback,
    CommandDecodeError,
    Drain,
    Expire,
    Register,
    Renew,
    Unregister,
    decode,
    encode,
)
from skydns.names import Callback, Service
from skydns.patterns import Pattern
from skydns.presentation import service_json
from skydns.raft.node.machine import InvalidCommand
from skydns.registry import Outcome, Registry
from skydns.store.machine import RegistryMachine

SERVICE = {
    "uuid": "u1", "name": "rails", "environment": "production", "region": "east",
    "version": "1.0", "host": "10.0.0.1", "port": 8080, "ttl": 30,
}  # fmt: skip


def register(now: str = "1000.0", **service: Any) -> bytes:
    """A Register entry with ``now`` written as raw JSON text."""
    body = json.dumps({**SERVICE, **service})
    return ('{"now":' + now + ',"op":"register","service":' + body + "}").encode()


class DecodeTests(SynchronousTestCase):
    def test_what_the_api_makes_round_trips(self) -> None:
        service = Service("u1", "rails", "production", "east", "1.0", "10.0.0.1", 8080, 30,
                          priority=5, weight=10, no_expire=True)  # fmt: skip
        udp = Service("u2", "dns", "", "", "", "10.0.0.2", 53, 30, protocol="udp", drain=True)
        callback = Callback("c1", "rails", "", "*", "", "", "10.0.0.9", 9000)
        for command in (
            Register(service, 1000.5), Unregister("any text.at all", 1.0),
            Renew("u1", 60, 2.0), Expire(("u1", "u2"), 3.0), AddCallback(callback, 4.0),
            Register(udp, 5.0), Drain("u1", True, 6.0), Drain("u1", False, 7.0),
        ):  # fmt: skip
            self.assertEqual(decode(encode(command)), command)
        self.assertEqual(decode(register()), Register(Service(**SERVICE), 1000.0))

    def test_entries_no_request_could_make_are_refused(self) -> None:
        """Times that are not finite or out of range, wrong types, unknown
        fields, values the API refuses, deep nesting, not JSON at all."""
        poisoned = [
            register("1e999"), register("-1e999"), register("NaN"), register("Infinity"),
            register("-5"), register("1e300"), register('"1000"'), register("true"),
            register(port=70000), register(port=0), register(port=80.5), register(port=True),
            register(ttl=0), register(ttl=2**31), register(priority=-1), register(weight=65536),
            register(host="a b"), register(host="example.com."), register(host=""),
            register(name="two.labels"), register(uuid="x" * 64), register(no_expire=1),
            register(extra=1), register(name=None), register(protocol="sctp"),
            register(protocol="TCP"), register(drain=1), register(drain=None),
            b'{"now":1.0,"op":"drain","uuid":"u1","drain":"yes"}',
            b'{"now":1.0,"op":"drain","uuid":"u1"}',
            b'{"now":1.0,"op":"renew","uuid":"u1","ttl":0}',
            b'{"now":1.0,"op":"renew","uuid":"u1","ttl":1e999}',
            b'{"now":1.0,"op":"unregister","uuid":' + json.dumps("x" * 2000).encode() + b"}",
            b'{"now":1.0,"op":"expire","uuids":"u1"}',
            b'{"now":1.0,"op":"unregister","uuid":"u1","more":1}',
            b'{"now":1.0,"op":"drop_tables"}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"now":1.0,"op":"unregister","uuid":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b"\xff\xfe", b"null", b"",
        ]  # fmt: skip
        for entry in poisoned:
            with self.subTest(entry=entry[:80]):
                self.assertRaises(CommandDecodeError, decode, entry)


class PoisonedEntryTests(SynchronousTestCase):
    def test_refused_when_proposed_and_a_noop_when_applied(self) -> None:
        """A Register with ``now`` 1e999 (issue 17): refused by the check a
        leader makes before it proposes; if it is in a log anyway, every
        replica applies it as the same no-op, and every read still works."""
        registry = Registry()
        machine = RegistryMachine(registry)
        machine.apply(register(), 1, True)
        before = registry.snapshot()
        entry = register("1e999", uuid="u2")
        self.assertRaises(InvalidCommand, machine.check, entry)
        applied = machine.apply(entry, 2, True)
        self.assertIs(applied.status, Outcome.INVALID)
        self.assertEqual(registry.snapshot(), before)
        now = 1010.0
        listed = [service_json(i, now) for i in registry.query(Pattern(), now)]
        self.assertEqual([s["UUID"] for s in listed], ["u1"])
        self.assertEqual(listed[0]["TTL"], 20)
