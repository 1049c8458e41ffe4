"""Mutual TLS between Raft peers: three real nodes with certificates from a
cluster CA (and a cluster key inside TLS) replicate; strangers without a
certificate, with one from another CA, or speaking plain TCP are refused
and the cluster stays consistent."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.net.handshake import MAGIC
from tests.e2e.certs import Issued, issue
from tests.e2e.harness import SkyDNSProcess, free_port, http
from tests.e2e.test_cluster import BOUND, wait_until


def _service(host: str) -> dict[str, object]:
    return {"Name": "tls", "Environment": "prod", "Host": host, "Port": 80, "TTL": 600}


def _refused(context: ssl.SSLContext, port: int) -> bool:
    """Whether a TLS client with ``context``, sending two zero bytes, is
    turned away by the node (rather than kept waiting)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    try:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            # With TLS 1.3 the server checks our certificate after the
            # client's side of the handshake is done: read to find out.
            sock.sendall(b"\x00\x00")
            while sock.recv(4096):
                pass  # the cluster key's HELLO, when TLS let us in
            return True
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    finally:
        raw.close()


#: What a node logs for the strangers with certificate trouble below
#: (OpenSSL's words); the random bytes get a third reason, which varies.
TLS_DROPS = ["peer did not return a certificate", "certificate verify failed"]


def _tls_drops_logged(log: str) -> bool:
    """Whether ``log`` has a drop line naming a loopback peer for each of
    `TLS_DROPS`, and one more for the random bytes."""
    prefix = "dropped an unauthenticated Raft connection from 127.0.0.1:"
    reasons = {
        line.split("TLS handshake failed: ", 1)[1]
        for line in log.splitlines()
        if prefix in line and "TLS handshake failed: " in line
    }
    known = [any(reason.startswith(why) for reason in reasons) for why in TLS_DROPS]
    others = [r for r in reasons if not any(r.startswith(why) for why in TLS_DROPS)]
    return all(known) and bool(others)


class RaftTLSTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="skydns-raft-tls-")
        self.ca = issue(self.directory, "cluster-ca", ip=None)

    def start(self) -> list[SkyDNSProcess]:
        ids = ["n1", "n2", "n3"]
        ports = {node_id: free_port() for node_id in ids}
        peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
        key_path = os.path.join(self.directory, "cluster.key")
        with open(key_path, "w") as f:
            f.write("a cluster key of some length\n")
        nodes = []
        for node_id in ids:
            leaf = issue(self.directory, node_id, self.ca)
            node = SkyDNSProcess(
                extra_args=[
                    "--peers", peers, "--cluster-key-file", key_path,
                    "--raft-tls-ca", self.ca.cert_path,
                    "--raft-tls-cert", leaf.cert_path, "--raft-tls-key", leaf.key_path,
                ],
                node_id=node_id, raft_port=ports[node_id],
            )  # fmt: skip
            self.addCleanup(node.cleanup)
            node.start(wait=False)
            nodes.append(node)
        for node in nodes:
            node.wait_for("/ready", BOUND)
        return nodes

    def client_context(self, identity: Issued | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca.cert_path)
        if identity is not None:
            context.load_cert_chain(identity.cert_path, identity.key_path)
        return context

    def test_cluster_over_mutual_tls(self) -> None:
        nodes = self.start()

        def leader() -> SkyDNSProcess | None:
            for node in nodes:
                code, body = http("GET", node.url + "/skydns/cluster", timeout=2.0)
                if code == 200 and body["leader"] == node.node_id:
                    return node
            return None

        first: SkyDNSProcess = wait_until(leader, "a leader over TLS")
        follower = next(n for n in nodes if n is not first)
        code, _ = http("PUT", follower.url + "/skydns/services/t1", _service("127.0.0.61"))
        self.assertEqual(code, 201)

        other_ca = issue(self.directory, "other-ca", ip=None)
        impostor = issue(self.directory, "impostor", other_ca)
        for node in nodes:
            self.assertTrue(_refused(self.client_context(None), node.raft_port))
            self.assertTrue(_refused(self.client_context(impostor), node.raft_port))
            sock = socket.create_connection(("127.0.0.1", node.raft_port), timeout=10.0)
            try:
                sock.sendall(os.urandom(512))
                sock.settimeout(10.0)
                received = b""
                try:
                    while chunk := sock.recv(4096):
                        received += chunk
                except ConnectionResetError:
                    pass
                self.assertNotIn(MAGIC, received)  # nothing in clear text
            finally:
                sock.close()
        for node in nodes:
            # Each of those is a line in the node's log: who, and why.
            wait_until(lambda n=node: _tls_drops_logged(n.log()), f"{node.node_id} logs TLS drops")
        # A certificate from the cluster CA gets through TLS, but not past
        # the cluster key: what it sends next is refused too.
        insider = issue(self.directory, "insider", self.ca)
        raw = socket.create_connection(("127.0.0.1", nodes[0].raft_port), timeout=10.0)
        with self.client_context(insider).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            self.assertEqual(tls.recv(len(MAGIC)), MAGIC)  # the key's HELLO, inside TLS
        self.assertTrue(_refused(self.client_context(insider), nodes[0].raft_port))

        code, _ = http("PUT", first.url + "/skydns/services/t2", _service("127.0.0.62"))
        self.assertEqual(code, 201)
        for node in nodes:

            def holds(n: SkyDNSProcess = node) -> bool:
                code, body = http("GET", n.url + "/skydns/services/", timeout=2.0)
                return code == 200 and sorted(s["UUID"] for s in body) == ["t1", "t2"]

            wait_until(holds, f"{node.node_id} holds t1 and t2")
        self.assertEqual(wait_until(leader, "the same leader").node_id, first.node_id)
