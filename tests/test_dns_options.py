"""The resolver's ``twistd skydns`` options: --forward-allow, --tcp-idle-timeout
and the SKYDNS_RESOLV_CONF environment variable."""

from __future__ import annotations

import os
import tempfile
from unittest import mock

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.dns.acl import default_networks, parse_networks
from skydns.dns.upstreams import Upstream
from skydns.tap import Options


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(["--nameserver", "192.0.2.53", *args])
    return options


class ResolverOptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """Forwarding is offered to loopback and private networks; idle TCP
        connections are closed after 10 s."""
        options = parse()
        self.assertEqual(options["forward-allow"], default_networks())
        self.assertEqual(options["tcp-idle-timeout"], 10)

    def test_reverse_zones_parsed(self) -> None:
        self.assertEqual(parse()["reverse-zone"], [])
        zones = parse("--reverse-zone", "10.in-addr.arpa, 8.b.d.0.1.0.0.2.ip6.arpa.")
        self.assertEqual([name for name, _ in zones["reverse-zone"]],
                         [b"10.in-addr.arpa", b"8.b.d.0.1.0.0.2.ip6.arpa"])  # fmt: skip

    def test_forward_allow_parsed(self) -> None:
        options = parse("--forward-allow", "192.0.2.0/24, 2001:db8::/32")
        self.assertEqual(options["forward-allow"], parse_networks("192.0.2.0/24,2001:db8::/32"))

    def test_bad_values_are_usage_errors_naming_the_flag(self) -> None:
        for args, flag in [
            (["--forward-allow", "10.0.0.1/8"], "--forward-allow"),
            (["--forward-allow", "everyone"], "--forward-allow"),
            (["--forward-allow", ""], "--forward-allow"),
            (["--tcp-idle-timeout", "0"], "--tcp-idle-timeout"),
            (["--tcp-idle-timeout", "soon"], "--tcp-idle-timeout"),
            (["--reverse-zone", "skydns.local"], "--reverse-zone"),
            (["--non-voter"], "--non-voter"),  # a read replica joins a cluster
            (["--reverse-zone", "1.2.3.10.in-addr.arpa"], "--reverse-zone"),
        ]:
            with self.assertRaises(usage.UsageError) as raised:
                parse(*args)
            self.assertIn(flag, str(raised.exception))

    def test_resolv_conf_from_the_environment(self) -> None:
        """SKYDNS_RESOLV_CONF names the resolv.conf read when --nameserver is
        not given; a line naming SkyDNS's own address is dropped."""
        path = os.path.join(tempfile.mkdtemp(), "resolv.conf")
        with open(path, "w") as f:
            f.write("nameserver 127.0.0.1\nnameserver 192.0.2.7\n")
        with mock.patch.dict(os.environ, {"SKYDNS_RESOLV_CONF": path}):
            options = Options()
            options.parseOptions(["--dns", "127.0.0.1:53"])
        self.assertEqual(options["upstreams"], [Upstream("192.0.2.7", 53)])
