"""``twistd skydns`` security options: --cluster-key-file and
SKYDNS_CLUSTER_KEY, --raft-tls-*, and loading the TLS files."""

from __future__ import annotations

import os
import tempfile
from unittest import mock

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.net.tls import RaftTLS, TLSServerEndpoint, load_tls, wrap_tls
from skydns.tap import Options
from tests.e2e.certs import issue


def parse(*args: str, env: dict[str, str] | None = None) -> Options:
    options = Options()
    with mock.patch.dict(os.environ, env or {}, clear=False):
        if env is None:
            os.environ.pop("SKYDNS_CLUSTER_KEY", None)
            os.environ.pop("SKYDNS_SECRET", None)
        options.parseOptions(["--no-forward", *args])
    return options


class ClusterKeyOptionTests(SynchronousTestCase):
    def write(self, data: bytes) -> str:
        fd, path = tempfile.mkstemp()
        os.write(fd, data)
        os.close(fd)
        self.addCleanup(os.unlink, path)
        return path

    def test_none_by_default(self) -> None:
        self.assertIsNone(parse()["cluster-key"])

    def test_from_file(self) -> None:
        path = self.write(b"0123456789abcdef0123\n")
        self.assertEqual(parse("--cluster-key-file", path)["cluster-key"], b"0123456789abcdef0123")

    def test_from_the_environment(self) -> None:
        options = parse(env={"SKYDNS_CLUSTER_KEY": "an environment key!"})
        self.assertEqual(options["cluster-key"], b"an environment key!")

    def test_file_wins_over_the_environment(self) -> None:
        path = self.write(b"the key in the file")
        options = parse("--cluster-key-file", path, env={"SKYDNS_CLUSTER_KEY": "x" * 20})
        self.assertEqual(options["cluster-key"], b"the key in the file")

    def test_short_or_missing_keys_are_usage_errors(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--cluster-key-file", "/no/such/key")
        self.assertIn("--cluster-key-file: cannot read /no/such/key", str(error))
        error = self.assertRaises(
            usage.UsageError, parse, "--cluster-key-file", self.write(b"short")
        )
        self.assertIn("at least 16 bytes", str(error))
        error = self.assertRaises(usage.UsageError, parse, env={"SKYDNS_CLUSTER_KEY": "short"})
        self.assertIn("$SKYDNS_CLUSTER_KEY", str(error))


class RaftPortOptionTests(SynchronousTestCase):
    """The Raft port takes writes, so it is never open beyond this host."""

    def test_open_only_on_loopback(self) -> None:
        """The one-node default (loopback) stays open; a port every
        interface or another address reaches needs member authentication."""
        self.assertIsNone(parse()["cluster-key"])
        self.assertIsNone(parse("--raft", r"tcp6:7070:interface=\:\:1")["cluster-key"])
        for raft in ("tcp:7070", "tcp:7070:interface=0.0.0.0", "tcp:7070:interface=10.1.2.3",
                     "systemd:domain=INET:index=0"):  # fmt: skip
            error = self.assertRaises(usage.UsageError, parse, "--raft", raft)
            self.assertIn("nothing authenticates the members", str(error))

    def test_a_secret_gives_the_raft_port_a_key(self) -> None:
        """With only --secret (or $SKYDNS_SECRET), the Raft port requires a
        key derived from it: the same on every member, not the secret."""
        one = parse("--secret", "s3cret-shared")["cluster-key"]
        two = parse("--raft", "tcp:7070", env={"SKYDNS_SECRET": "s3cret-shared"})["cluster-key"]
        self.assertEqual(one, two)
        self.assertNotIn(b"s3cret", one)
        self.assertGreaterEqual(len(one), 32)
        self.assertNotEqual(parse("--secret", "other")["cluster-key"], one)
        key = b"k" * 32
        with mock.patch.dict(os.environ, {"SKYDNS_CLUSTER_KEY": key.decode()}):
            self.assertEqual(parse("--secret", "s3cret-shared", env={})["cluster-key"], key)

    def test_endpoints_from_plugins_are_accepted(self) -> None:
        """``tcp6:`` and ``systemd:`` endpoints parse (issue 20: they crashed)."""
        self.assertEqual(parse("--http", "tcp6:8080")["http"], "tcp6:8080")
        keyword = r"tcp6:port=8080:interface=\:\:1"
        self.assertEqual(parse("--http", keyword)["http"], keyword)
        self.assertEqual(parse("--http", "tcp:port=8080")["http"], "tcp:port=8080")
        self.assertRaises(usage.UsageError, parse, "--http", "tcp:interface=127.0.0.1")
        described = "systemd:domain=INET:index=0"
        self.assertEqual(parse("--http", described)["http"], described)


class RaftTLSOptionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="skydns-tls-opts-")
        self.ca = issue(self.directory, "ca", ip=None)
        self.leaf = issue(self.directory, "n1", self.ca)

    def tls_args(self) -> list[str]:
        return ["--raft-tls-ca", self.ca.cert_path, "--raft-tls-cert", self.leaf.cert_path,
                "--raft-tls-key", self.leaf.key_path]  # fmt: skip

    def test_loaded(self) -> None:
        self.assertIsNone(parse()["raft-tls"])
        tls = parse(*self.tls_args())["raft-tls"]
        self.assertIsInstance(tls, RaftTLS)

    def test_all_three_or_none(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, *self.tls_args()[:4])
        self.assertIn("go together", str(error))

    def test_raft_endpoint_must_be_tcp(self) -> None:
        error = self.assertRaises(
            usage.UsageError, parse, "--raft", "unix:/tmp/raft.sock", *self.tls_args()
        )
        self.assertIn("tcp:", str(error))

    def test_bad_files_are_named(self) -> None:
        error = self.assertRaises(ValueError, load_tls, self.leaf.key_path, self.leaf.cert_path,
                                  self.leaf.key_path)  # fmt: skip
        self.assertIn(self.leaf.key_path, str(error))
        other = issue(self.directory, "other", self.ca)
        error = self.assertRaises(ValueError, load_tls, self.ca.cert_path, self.leaf.cert_path,
                                  other.key_path)  # fmt: skip
        self.assertIn(self.leaf.cert_path, str(error))

    def test_wrap(self) -> None:
        reactor = MemoryReactorClock()
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint

        server = TCP4ServerEndpoint(reactor, 1)
        clients = {"n2": TCP4ClientEndpoint(reactor, "127.0.0.1", 2)}
        self.assertEqual(wrap_tls(None, server, clients, {"n2": "127.0.0.1"}),  # type: ignore[arg-type]
                         (server, clients))  # fmt: skip
        tls = load_tls(self.ca.cert_path, self.leaf.cert_path, self.leaf.key_path)
        wrapped, _ = wrap_tls(tls, server, clients, {"n2": "127.0.0.1"})  # type: ignore[arg-type]
        self.assertIsInstance(wrapped, TLSServerEndpoint)
