"""A single `twistd -n skydns` process, driven by real HTTP and DNS clients."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import TWISTD, SkyDNSProcess, dns_query, free_port, http


def _service(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "Name": "rails", "Environment": "production", "Region": "east",
        "Version": "1.0.1", "Host": "127.0.0.10", "Port": 8080, "TTL": 30,
    }  # fmt: skip
    body.update(fields)
    return body


class _CallbackReceiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's hook name
        length = int(self.headers.get("Content-Length", 0))
        self.received.append(("DELETE", self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class SingleNodeTests(SynchronousTestCase):
    """The flows of issue 2 against one real process on loopback."""

    def setUp(self) -> None:
        self.node = SkyDNSProcess()
        self.addCleanup(self.node.cleanup)
        self.node.start()

    def put(self, uuid: str, body: object) -> tuple[int, object]:
        return http("PUT", f"{self.node.url}/skydns/services/{uuid}", body)

    def srv(self, name: str) -> list[tuple[int, int, int, str, int]]:
        answer = dns_query(name, "SRV", self.node.dns_port)
        return sorted(
            (r.priority, r.weight, r.port, r.target.to_text(), rrset.ttl)
            for rrset in answer.answer
            for r in rrset
        )

    def test_register_then_discover_over_udp_and_tcp(self) -> None:
        """A PUT is answered 201 and the instance is in SRV and A answers at once,
        over UDP and TCP, with the glue for an IP host and AA set."""
        import dns.flags

        self.assertEqual(self.put("1001", _service())[0], 201)
        self.assertEqual(self.put("1002", _service(Host="web2.example.com", Region="west"))[0], 201)
        records = self.srv("east.rails.production.skydns.local")
        self.assertEqual(
            [r[:4] for r in records],
            [(10, 100, 8080, "1001.skydns.local."), (20, 100, 8080, "web2.example.com.")],
        )
        self.assertTrue(all(25 <= r[4] <= 30 for r in records))
        for tcp in (False, True):
            answer = dns_query("rails.production.skydns.local", "A", self.node.dns_port, tcp=tcp)
            self.assertTrue(answer.flags & dns.flags.AA)
            self.assertEqual([r.address for rrset in answer.answer for r in rrset], ["127.0.0.10"])
        answer = dns_query("1001.skydns.local", "A", self.node.dns_port)
        self.assertEqual([r.address for rrset in answer.answer for r in rrset], ["127.0.0.10"])

    def test_sigusr1_rotates_the_log_file(self) -> None:
        """As for any twistd program, SIGUSR1 rotates the ``--logfile`` (what
        logrotate's postrotate sends): the node keeps serving, what it
        logged so far is in the rotated file and later lines in a new one."""
        import os
        import signal

        self.assertEqual(self.put("before", _service())[0], 201)
        assert self.node.process is not None
        os.kill(self.node.process.pid, signal.SIGUSR1)
        rotated = self.node.log_path + ".1"
        deadline = time.monotonic() + 10
        while not os.path.exists(rotated) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIsNone(self.node.process.poll(), "SIGUSR1 ended the process")
        self.assertEqual(self.put("after", _service())[0], 201)
        with open(rotated) as f:
            self.assertIn("registered before at", f.read())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.node.log_path) as f:
                if "registered after at" in f.read():
                    break
            time.sleep(0.05)
        with open(self.node.log_path) as f:
            current = f.read()
        self.assertIn("registered after at", current)
        self.assertNotIn("registered before at", current)

    def test_nxdomain_and_nodata_carry_the_soa(self) -> None:
        """Unknown names are NXDOMAIN and known names without the type NOERROR,
        both with the SOA in authority."""
        import dns.rcode

        self.put("1001", _service(Host="web1.example.com"))
        missing = dns_query("nothing.production.skydns.local", "SRV", self.node.dns_port)
        self.assertEqual(missing.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(missing.authority[0].rdtype, 6)  # SOA
        nodata = dns_query("rails.production.skydns.local", "A", self.node.dns_port)
        self.assertEqual(nodata.rcode(), dns.rcode.NOERROR)
        self.assertEqual(nodata.answer, [])
        self.assertEqual(nodata.authority[0].rdtype, 6)

    def test_lease_expiry_and_no_expire(self) -> None:
        """An instance not renewed disappears from DNS and the API within a second
        of expiry; a NoExpire one stays; a renewed one stays."""
        self.put("short", _service(TTL=1))
        self.put("renewed", _service(TTL=2))
        self.put("forever", _service(TTL=1, NoExpire=True))
        time.sleep(1.0)
        self.assertEqual(
            http("PATCH", f"{self.node.url}/skydns/services/renewed", {"TTL": 5})[0], 200
        )
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if http("GET", f"{self.node.url}/skydns/services/short")[0] == 404:
                break
            time.sleep(0.1)
        self.assertEqual(http("GET", f"{self.node.url}/skydns/services/short")[0], 404)
        time.sleep(1.5)  # past the first lease of "renewed"
        status, listed = http("GET", f"{self.node.url}/skydns/services/?query=rails.production")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(s["UUID"] for s in listed), ["forever", "renewed"])
        targets = [r[3] for r in self.srv("rails.production.skydns.local")]
        self.assertEqual(sorted(targets), ["forever.skydns.local.", "renewed.skydns.local."])

    def test_callback_fires_once_on_unregister(self) -> None:
        """A callback registered for a service gets one HTTP DELETE with the
        service's JSON when it is removed."""
        _CallbackReceiver.received = []
        port = free_port()
        server = HTTPServer(("127.0.0.1", port), _CallbackReceiver)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)

        self.put("1001", _service())
        status, _ = http(
            "PUT",
            f"{self.node.url}/skydns/callbacks/cb1",
            {"Name": "rails", "Environment": "production", "Reply": "127.0.0.1", "Port": port},
        )
        self.assertEqual(status, 201)
        self.assertEqual(http("DELETE", f"{self.node.url}/skydns/services/1001")[0], 200)
        deadline = time.monotonic() + 5.0
        while not _CallbackReceiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        self.assertEqual(len(_CallbackReceiver.received), 1)
        method, path, body = _CallbackReceiver.received[0]
        self.assertEqual(path, "/skydns/callbacks/cb1")
        self.assertEqual(json.loads(body)["UUID"], "1001")

    def test_bad_requests_are_refused_and_change_nothing(self) -> None:
        """Invalid bodies get 400 naming the field; a duplicate UUID 409."""
        status, body = self.put("1001", _service(Port=0))
        self.assertEqual(status, 400)
        self.assertIn("Port", body["error"])
        self.assertEqual(self.put("1001", b"{not json")[0], 400)
        self.assertEqual(http("GET", f"{self.node.url}/skydns/services/1001")[0], 404)
        self.assertEqual(self.put("1001", _service())[0], 201)
        self.assertEqual(self.put("1001", _service())[0], 409)


class SecretTests(SynchronousTestCase):
    def test_secret_is_required(self) -> None:
        """With --secret, /skydns/ needs the Authorization header (raw or Bearer)."""
        node = SkyDNSProcess(extra_args=["--secret", "s3cret"])
        self.addCleanup(node.cleanup)
        node.start()
        url = f"{node.url}/skydns/services/1001"
        self.assertEqual(http("PUT", url, _service())[0], 401)
        self.assertEqual(http("PUT", url, _service(), {"Authorization": "s3cret"})[0], 201)
        self.assertEqual(http("GET", url, None, {"Authorization": "Bearer s3cret"})[0], 200)
        self.assertEqual(http("GET", url, None, {"Authorization": "Bearer nope"})[0], 401)


class CommandLineTests(SynchronousTestCase):
    def twistd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TWISTD, *args],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def test_plugin_is_listed_and_documents_its_options(self) -> None:
        """`twistd --help` lists skydns; `twistd skydns --help` documents every option."""
        self.assertIn("skydns", self.twistd("--help").stdout)
        text = self.twistd("skydns", "--help").stdout
        for flag in ("--domain", "--dns", "--http", "--raft", "--data-dir", "--node-id",
                     "--peers", "--join", "--nameserver", "--secret"):  # fmt: skip
            self.assertIn(flag, text)

    def test_bad_option_value_is_a_usage_error_naming_it(self) -> None:
        """A bad --dns value stops twistd with a message naming the option."""
        result = self.twistd("-n", "--pidfile=", "skydns", "--dns", "nonsense")
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual((result.stdout + result.stderr).strip().splitlines(), [
            "twistd skydns: --dns: 'nonsense': expected HOST:PORT "
            "(twistd skydns --help lists the options)"])  # fmt: skip


class BusyPortTests(SynchronousTestCase):
    def test_busy_http_port_stops_start_with_one_line(self) -> None:
        """A port already taken stops twistd (non-zero) with a line naming the
        address, not a traceback, and leaves no twistd.pid behind."""
        import socket

        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        node = SkyDNSProcess(extra_args=["--http", f"tcp:{port}:interface=127.0.0.1"])
        self.addCleanup(node.cleanup)
        pidfile = os.path.join(node.data_dir, "twistd.pid")
        args = node.args()
        args[args.index("--pidfile=")] = f"--pidfile={pidfile}"
        node.args = lambda: args  # type: ignore[method-assign]
        node.start(wait=False)
        assert node.process is not None
        self.assertNotEqual(node.process.wait(30), 0)
        log = node.log()
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", log)
        self.assertNotIn("Traceback", log)
        self.assertFalse(os.path.exists(pidfile))

    def test_daemon_with_a_busy_port_exits_and_says_why(self) -> None:
        """Without -n, twistd's first process waits for the forked daemon to
        report its start: a busy DNS or Raft port makes the command exit 1
        with the reason (it used to wait for ever), and no daemon is left."""
        import os
        import shutil
        import socket
        import tempfile

        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        self.addCleanup(tcp.close)
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(udp.close)
        udp.bind(("127.0.0.1", port))
        for flag, value in (("--dns", f"127.0.0.1:{port}"),
                            ("--raft", f"tcp:{port}:interface=127.0.0.1")):  # fmt: skip
            node = SkyDNSProcess(extra_args=[flag, value])
            workdir = tempfile.mkdtemp(prefix="skydns-daemon-")
            self.addCleanup(shutil.rmtree, workdir, True)
            pidfile = os.path.join(workdir, "twistd.pid")
            args = [a for a in node.args() if a not in ("--nodaemon", "--pidfile=")]
            args.insert(len(TWISTD), f"--pidfile={pidfile}")
            try:
                result = subprocess.run(
                    args, capture_output=True, text=True, timeout=60, cwd=workdir,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
            finally:
                stop_daemon(pidfile)
            self.assertEqual(result.returncode, 1, (flag, result.stdout, result.stderr))
            self.assertIn("cannot listen", result.stderr)
            self.assertIn(str(port), result.stderr)


def stop_daemon(pidfile: str) -> None:
    """SIGTERM the twistd daemon ``pidfile`` names, if it is still running."""
    import os
    import signal

    try:
        with open(pidfile) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"twistd" not in f.read():
                return  # a stale file, its pid reused
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass
