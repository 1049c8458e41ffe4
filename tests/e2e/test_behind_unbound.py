"""SkyDNS behind a real caching resolver: unbound (Debian ``unbound``) with
a stub zone for the SkyDNS domain pointing at a real `twistd skydns`
process, everything on loopback (unbound's root hints name a loopback
address too, so it can send nothing anywhere else)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from unittest import SkipTest

import dns.message
import dns.query
import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, free_port, http

UNBOUND_CONF = """server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{directory}"
  pidfile: "{directory}/unbound.pid"
  logfile: "{directory}/unbound.log"
  use-syslog: no
  verbosity: 1
  num-threads: 1
  module-config: "{modules}"
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  root-hints: "{directory}/root.hints"
  {trust}
stub-zone:
  name: "skydns.local"
  stub-addr: 127.0.0.1@{skydns_port}
remote-control:
  control-enable: no
"""

#: ``modules`` and ``trust`` of `UNBOUND_CONF` for a zone that is not signed.
NO_DNSSEC = {"modules": "iterator", "trust": 'domain-insecure: "skydns.local"'}

#: Root hints on loopback: any priming query stays on this host.
ROOT_HINTS = ".  3600000  NS  root.invalid.\nroot.invalid.  3600000  A  127.0.0.1\n"


def ask(port: int, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=3.0)


class BehindUnboundTests(SynchronousTestCase):
    def start_unbound(self, skydns_port: int) -> int:
        unbound = shutil.which("unbound") or (
            "/usr/sbin/unbound" if os.path.exists("/usr/sbin/unbound") else None
        )
        if unbound is None:
            raise SkipTest("unbound is not installed (Debian package unbound)")
        directory = tempfile.mkdtemp(prefix="skydns-unbound-")
        port = free_port()
        with open(os.path.join(directory, "root.hints"), "w") as f:
            f.write(ROOT_HINTS)
        conf = os.path.join(directory, "unbound.conf")
        with open(conf, "w") as f:
            f.write(UNBOUND_CONF.format(port=port, directory=directory, skydns_port=skydns_port,
                                        **NO_DNSSEC))  # fmt: skip
        process = subprocess.Popen([unbound, "-d", "-c", conf])

        def stop() -> None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            shutil.rmtree(directory, ignore_errors=True)

        self.addCleanup(stop)
        deadline = time.monotonic() + 15
        while True:
            try:
                ask(port, "skydns.local")
                return port
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    with open(os.path.join(directory, "unbound.log")) as f:
                        raise AssertionError("unbound did not start:\n" + f.read()) from None
                time.sleep(0.2)

    def test_a_registration_after_nxdomain_is_visible_within_seconds(self) -> None:
        """Spec section 5: NXDOMAIN is cached for ``--negative-ttl`` (5 s), so a
        service registered 1 s after a lookup missed it is visible through
        unbound within 6 s."""
        node = SkyDNSProcess(["--no-forward"])
        self.addCleanup(node.cleanup)
        node.start()
        port = self.start_unbound(node.dns_port)
        name = "web.prod.skydns.local"
        missing = ask(port, name)
        self.assertEqual(missing.rcode(), dns.rcode.NXDOMAIN)
        self.assertLessEqual(missing.authority[0].ttl, 5)
        time.sleep(1.0)
        body = {"Name": "web", "Environment": "prod", "Region": "east", "Version": "1",
                "Host": "127.0.0.5", "Port": 80, "TTL": 600}  # fmt: skip
        self.assertEqual(http("PUT", f"{node.url}/skydns/services/w1", body)[0], 201)
        registered = time.monotonic()
        while True:
            reply = ask(port, name)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                break
            self.assertLess(time.monotonic() - registered, 6.0, "still NXDOMAIN after 6 s")
            time.sleep(0.25)
        self.assertEqual(reply.answer[0][0].address, "127.0.0.5")
        self.assertLessEqual(time.monotonic() - registered, 6.0)
