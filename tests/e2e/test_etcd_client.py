"""The etcd v3 JSON gateway client (`skydns.store.etcd.client`) against a
real etcd on loopback: keys, create-if-absent, leases that take their keys
with them, a watch from a revision, a compacted revision, and a dead
endpoint skipped for a live one.  The client runs on a real reactor in a
child process (`task.react`); the test reads what it printed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.etcd import EtcdProcess, skip_without_etcd
from tests.e2e.harness import free_port

SCRIPT = textwrap.dedent('''
    import json, sys
    from twisted.internet import defer, task
    from skydns.store.etcd.client import Compacted, EtcdClient, prefix_end

    async def main(reactor):
        out = {}
        dead = f"http://127.0.0.1:{sys.argv[2]}"
        etcd = EtcdClient([dead, sys.argv[1]], reactor, timeout=5.0)
        p = b"/skydns-test/"
        first = await etcd.put(p + b"a", b"1")
        out["created"] = await etcd.create(p + b"b", b"2") is not None
        out["created again"] = await etcd.create(p + b"b", b"3") is not None
        kvs, rev = await etcd.range(p, prefix_end(p))
        out["range"] = [(kv.key.decode(), kv.value.decode()) for kv in kvs]
        lease = await etcd.grant(2)
        await etcd.put(p + b"leased", b"x", lease)
        out["ttl"] = await etcd.time_to_live(lease)
        out["keepalive"] = await etcd.keepalive(lease)
        seen = []
        watching = etcd.watch(p, prefix_end(p), first,
                              lambda events, r: seen.extend((e.kind, e.kv.key.decode())
                                                            for e in events))
        await etcd.delete(p + b"a")
        out["revoked"] = await etcd.revoke(lease)
        out["revoked again"] = await etcd.revoke(lease)
        await task.deferLater(reactor, 0.5, lambda: None)
        watching.cancel()
        out["events"] = seen
        out["after revoke"] = [kv.key.decode() for kv in (await etcd.range(p, prefix_end(p)))[0]]
        await etcd.call("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        try:
            await etcd.watch(p, prefix_end(p), first, lambda events, r: None)
        except Compacted as e:
            out["compacted"] = e.compact_revision == rev
        print(json.dumps(out))

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
''')


class EtcdClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        skip_without_etcd()
        self.etcd = EtcdProcess().start()
        self.addCleanup(self.etcd.cleanup)

    def test_against_a_real_etcd(self) -> None:
        done = subprocess.run([sys.executable, "-c", SCRIPT, self.etcd.url, str(free_port())],
                              capture_output=True, timeout=60)  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr.decode()[-2000:])
        out = json.loads(done.stdout.decode().strip().splitlines()[-1])
        self.assertEqual((out["created"], out["created again"]), (True, False))
        self.assertEqual(out["range"], [["/skydns-test/a", "1"], ["/skydns-test/b", "2"]])
        self.assertIn(out["ttl"], (1, 2))
        self.assertEqual(out["keepalive"], 2)
        self.assertEqual((out["revoked"], out["revoked again"]), (True, False))
        self.assertEqual(out["events"], [
            ["put", "/skydns-test/a"], ["put", "/skydns-test/b"], ["put", "/skydns-test/leased"],
            ["delete", "/skydns-test/a"], ["delete", "/skydns-test/leased"]])  # fmt: skip
        self.assertEqual(out["after revoke"], ["/skydns-test/b"])
        self.assertTrue(out["compacted"])
