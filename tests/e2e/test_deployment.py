"""How operators start SkyDNS, tried with real processes: an IPv6 HTTP
endpoint, a listening socket handed over by systemd (LISTEN_FDS), and
twistd dropping root privileges (``-u nobody -g nogroup``)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, dns_query, free_port, http
from tests.e2e.test_observability import STOPPED

BOUND = 15.0

#: Runs argv[2:] with a listening TCP socket on 127.0.0.1:argv[1] as fd 3,
#: the way systemd passes one (LISTEN_FDS, LISTEN_PID = the exec'd process).
ACTIVATE = """
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(50)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="http")
os.execve(sys.argv[2], sys.argv[2:], env)
"""


def wait_for(check: object, what: str, node: SkyDNSProcess | None = None) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    log = node.log()[-3000:] if node is not None else ""
    raise AssertionError(f"{what}: not within {BOUND}s\n{log}")


class EndpointTests(SynchronousTestCase):
    def test_tcp6_endpoint_on_ipv6_loopback(self) -> None:
        """--http tcp6:port=P:interface=\\:\\:1 serves the API on [::1]."""
        if not socket.has_ipv6:
            self.skipTest("no IPv6 on this host")
        try:
            port = free_port("::1")
        except OSError:
            self.skipTest("::1 cannot be bound here")
        node = SkyDNSProcess(["--http", f"tcp6:port={port}:interface=\\:\\:1"], http_port=port)
        self.addCleanup(node.cleanup)
        node.start(wait=False)
        wait_for(lambda: http("GET", f"http://[::1]:{port}/health", timeout=1)[0] == 200,
                 "the API answers on [::1]", node)  # fmt: skip

    def test_systemd_socket_is_used(self) -> None:
        """--http systemd:domain=INET:index=0 serves on the socket systemd
        passed in (LISTEN_FDS), not one of its own."""
        port = free_port()
        node = SkyDNSProcess(["--http", "systemd:domain=INET:index=0"], http_port=port)
        self.addCleanup(node.cleanup)
        args = node.args()
        args[0:1] = [sys.executable, "-c", ACTIVATE, str(port), args[0]]
        node.args = lambda: args  # type: ignore[method-assign]
        node.start(wait=False)
        wait_for(lambda: http("GET", f"{node.url}/health", timeout=1)[0] == 200,
                 "the API answers on the passed socket", node)  # fmt: skip


class ConfigFileTests(SynchronousTestCase):
    def test_settings_from_a_toml_file(self) -> None:
        """twistd -n skydns --config skydns.toml: the ports, domain and
        negative TTL come from the file; a flag given too wins."""
        node = SkyDNSProcess()
        self.addCleanup(node.cleanup)
        path = os.path.join(node.data_dir, "skydns.toml")
        with open(path, "w") as f:
            f.write(f'dns = "127.0.0.1:{node.dns_port}"\n'
                    f'http = "tcp:{node.http_port}:interface=127.0.0.1"\n'
                    f'raft = "tcp:{node.raft_port}:interface=127.0.0.1"\n'
                    f'data-dir = "{node.data_dir}"\n'
                    'domain = "example.internal"\n'
                    "negative-ttl = 42\n"
                    'nameserver = ["127.0.0.1:9"]\n')  # fmt: skip
        args = [*node.args()[: node.args().index("skydns") + 1], "--config", path,
                "--negative-ttl", "17"]  # fmt: skip
        node.args = lambda: args  # type: ignore[method-assign]
        node.start()
        answer = dns_query("nothing.example.internal", "A", node.dns_port)
        (soa,) = answer.authority
        self.assertEqual((soa.name.to_text(), soa[0].minimum), ("example.internal.", 17))


class PrivilegeDropTests(SynchronousTestCase):
    def test_runs_as_nobody_through_snapshots_and_a_restart(self) -> None:
        """twistd -u nobody -g nogroup: the data dir is handed over, so the
        node keeps writing (two snapshots), and a restart finds its state."""
        if os.getuid() != 0:
            self.skipTest("needs root to drop privileges (run as uid 0)")
        try:
            import grp
            import pwd

            pwd.getpwnam("nobody")
            grp.getgrnam("nogroup")
        except KeyError:
            self.skipTest("no user nobody or group nogroup here")
        data = tempfile.mkdtemp(prefix="skydns-drop-")  # root's, mode 0700: handed over

        def start() -> SkyDNSProcess:
            node = SkyDNSProcess(["--snapshot-entries", "20"], data_dir=data)
            args = node.args()
            at = args.index("--nodaemon")
            args[at:at] = ["-u", "nobody", "-g", "nogroup"]
            node.args = lambda: args  # type: ignore[method-assign]
            self.addCleanup(node.cleanup)
            return node.start()

        node = start()
        for i in range(60):  # past two snapshots, each due 15 to 25 entries after the last
            code, body = http("PUT", f"{node.url}/skydns/services/p{i}",
                              {"Host": "10.0.0.1", "Port": 80, "Name": "x", "TTL": 600})
            self.assertEqual(code, 201, body)
        # Snapshots are written in a thread: the second may still be on its way.
        deadline = time.monotonic() + 10
        while node.log().count("raft snapshot at") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertGreaterEqual(node.log().count("raft snapshot at"), 2, node.log()[-3000:])
        self.assertIsNone(node.process.poll() if node.process else 0, node.log())
        owners = {os.stat(os.path.join(top, f)).st_uid
                  for top, _, files in os.walk(data) for f in files}  # fmt: skip
        self.assertEqual(owners, {pwd.getpwnam("nobody").pw_uid})
        self.assertIn(node.stop(), STOPPED, node.log()[-3000:])
        node = start()
        code, body = http("GET", f"{node.url}/skydns/services/p59")
        self.assertEqual(code, 200, body)
