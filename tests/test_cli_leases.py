"""``skydns lease ...`` and ``register --lease`` against the real API over a
`LocalCluster` (no process, no network)."""

from __future__ import annotations

import io
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from skydns.cli import Runner
from skydns.http.api import make_api
from skydns.registry import Registry
from skydns.testing import LocalCluster


class LeaseCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.registry = Registry()
        cluster = LocalCluster(self.registry, clock=self.clock)
        self.stub: Any = StubTreq(make_api(cluster, self.clock, "skydns.local").resource())

    def cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        runner = Runner(http=self.stub, clock=self.clock, out=out, err=err, environ={})
        d = runner.run(list(argv))
        self.stub.flush()
        return self.successResultOf(d), out.getvalue(), err.getvalue()

    def test_grant_register_show_revoke(self) -> None:
        code, out, _ = self.cli("lease", "grant", "20", "-q")
        self.assertEqual(code, 0)
        lease = out.strip()
        self.assertRegex(lease, r"^[0-9a-f]{16}$")
        for uuid in ("w1", "w2"):
            code, out, err = self.cli("register", uuid, "--name", "web", "--environment", "prod",
                                      "--host", "10.0.0.1", "--port", "80", "--lease", lease)
            self.assertEqual(code, 0, err)
        code, out, _ = self.cli("lease", "show", lease)
        self.assertIn("w1", out)
        self.assertEqual(out.splitlines()[1].split(), [lease, "20", "20", "2"])
        code, out, _ = self.cli("--json", "lease", "renew", lease)
        self.assertEqual(json.loads(out), {"ID": lease, "TTL": 20})
        code, out, _ = self.cli("lease", "revoke", lease)
        self.assertEqual(out, f"revoked lease {lease}; removed w1, w2\n")
        self.assertEqual(len(self.registry), 0)
        code, _, err = self.cli("lease", "renew", lease)
        self.assertEqual(code, 1)
        self.assertIn("not found", err)

    def test_keep_renews_until_interrupted(self) -> None:
        _, out, _ = self.cli("lease", "grant", "9", "-q")
        lease = out.strip()
        out_io, err_io = io.StringIO(), io.StringIO()
        runner = Runner(http=self.stub, clock=self.clock, out=out_io, err=err_io, environ={})
        d = runner.run(["lease", "keep", lease, "--revoke-on-exit"])
        for _ in range(30):
            self.clock.advance(1)
            self.stub.flush()
        self.assertIsNotNone(self.registry.lease(lease, self.clock.seconds()))
        self.assertTrue(runner.interrupt())
        self.stub.flush()
        self.assertEqual(self.successResultOf(d), 0)
        self.assertGreaterEqual(out_io.getvalue().count(f"renewed lease {lease} for 9s"), 10)
        self.assertIn(f"revoked lease {lease}", out_io.getvalue())
        self.assertIsNone(self.registry.lease(lease, self.clock.seconds()))
