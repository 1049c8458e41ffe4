"""Limits with clear errors: instances per (Environment, Name) in the
registry (deterministic, so replicas agree) and at the API (409 before
proposing), and the ``--max-instances-per-name`` option."""

from __future__ import annotations

from unittest import mock

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Command, Register, Unregister
from skydns.http.api import make_api
from skydns.names import Service
from skydns.registry import MAX_INSTANCES_PER_NAME, Registry
from skydns.tap import Options
from tests.test_api import APITestCase, service


def _service(uuid: str, name: str = "web", environment: str = "prod", ttl: int = 10) -> Service:
    return Service(
        uuid=uuid, name=name, environment=environment, region="east", version="1",
        host="10.0.0.1", port=80, ttl=ttl,
    )  # fmt: skip


class RegistryLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        patcher = mock.patch("skydns.registry.state.MAX_INSTANCES_PER_NAME", 3)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_register_beyond_the_limit_is_refused(self) -> None:
        """The fourth instance of a pair is ``too_many`` and changes nothing;
        other pairs (names compared case-insensitively) are not affected."""
        registry = Registry()
        for i in range(3):
            self.assertEqual(registry.apply(Register(_service(f"u{i}"), 0.0)).status, "ok")
        version = registry.version
        self.assertEqual(registry.apply(Register(_service("u3"), 0.0)).status, "too_many")
        self.assertEqual(registry.apply(Register(_service("u4", name="WEB"), 0.0)).status,
                         "too_many")  # fmt: skip
        self.assertEqual((len(registry), registry.version), (3, version))
        self.assertEqual(registry.apply(Register(_service("v", name="db"), 0.0)).status, "ok")
        self.assertEqual(registry.apply(Register(_service("w", environment="qa"), 0.0)).status,
                         "ok")  # fmt: skip
        registry.apply(Unregister("u0", 1.0))
        self.assertEqual(registry.apply(Register(_service("u3"), 1.0)).status, "ok")

    def test_a_conflict_is_still_a_conflict_when_full(self) -> None:
        registry = Registry()
        for i in range(3):
            registry.apply(Register(_service(f"u{i}"), 0.0))
        self.assertEqual(registry.apply(Register(_service("U1"), 0.0)).status, "conflict")

    def test_replacing_an_expired_instance_of_a_full_pair(self) -> None:
        """Register over an expired, not yet removed UUID of a full pair
        replaces it (the count does not grow)."""
        registry = Registry()
        registry.apply(Register(_service("old", ttl=1), 0.0))
        registry.apply(Register(_service("a", ttl=100), 0.0))
        registry.apply(Register(_service("b", ttl=100), 0.0))
        self.assertEqual(registry.apply(Register(_service("new"), 5.0)).status, "too_many")
        applied = registry.apply(Register(_service("old"), 5.0))
        self.assertEqual((applied.status, len(applied.removals)), ("ok", 1))

    def test_replicas_agree(self) -> None:
        """Two registries given the same commands refuse the same ones and
        end equal."""
        commands: list[Command] = [
            Register(_service(f"u{i}", name=f"n{i % 2}"), float(i)) for i in range(12)
        ]
        commands += [Unregister("u0", 20.0), Register(_service("z", name="n0"), 21.0)]
        first, second = Registry(), Registry()
        statuses = [first.apply(c).status for c in commands]
        self.assertEqual([second.apply(c).status for c in commands], statuses)
        self.assertIn("too_many", statuses)
        self.assertEqual(first, second)


class APILimitTests(APITestCase):
    limit = 2

    def build(self) -> None:
        self.api = make_api(self.cluster, self.clock, "skydns.local",
                            max_instances_per_name=self.limit)  # fmt: skip
        from treq.testing import StubTreq

        self.treq = StubTreq(self.api.resource())

    def test_full_pair_is_409_without_a_proposal(self) -> None:
        self.register("a")
        self.register("b")
        proposed = len(self.cluster.proposed)
        response = self.call("PUT", "/skydns/services/c", service())
        self.assertError(response, 409, "already has 2 instances")
        self.assertEqual(response.json()["limit"], 2)
        self.assertEqual(len(self.cluster.proposed), proposed)
        self.assertEqual(len(self.registry), 2)
        self.register("c", Name="other")

    def test_registry_refusal_is_409_too(self) -> None:
        """The API's check passes but the registry, applying, is full (another
        node's write got there first): still a 409, not a 201."""
        self.api.max_instances_per_name = 100
        with mock.patch("skydns.registry.state.MAX_INSTANCES_PER_NAME", 1):
            self.register("a")
            response = self.call("PUT", "/skydns/services/b", service())
        self.assertError(response, 409, f"already has {MAX_INSTANCES_PER_NAME} instances")
        self.assertEqual(len(self.registry), 1)


class OptionTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--no-forward", *args])
        return options

    def test_default_is_the_registry_limit(self) -> None:
        self.assertEqual(self.parse()["max-instances-per-name"], MAX_INSTANCES_PER_NAME)
        self.assertEqual(self.parse("--max-instances-per-name", "5")["max-instances-per-name"], 5)

    def test_out_of_range(self) -> None:
        for value in ["0", "10001", "lots"]:
            error = self.assertRaises(
                usage.UsageError, self.parse, "--max-instances-per-name", value
            )
            self.assertIn("--max-instances-per-name", str(error))
