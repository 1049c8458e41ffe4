"""Tests for skydns.dns.acl: the --forward-allow client networks."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from skydns.dns.acl import (
    ClientNetworks,
    default_networks,
    needed,
    parse_network,
    parse_networks,
)


class ClientNetworksTests(SynchronousTestCase):
    def test_default_is_loopback_only(self) -> None:
        """By default only this host's own clients may forward (issue 17):
        private networks are a choice (``--forward-allow``), not a default."""
        allow = default_networks()
        for host in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"]:
            self.assertTrue(allow.allows(host), host)
        for host in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "fd12:3456::1", "fe80::1%eth0",
                     "8.8.8.8", "192.0.2.1", "2001:db8::1", "::", "0.0.0.0"]:  # fmt: skip
            self.assertFalse(allow.allows(host), host)
        self.assertFalse(allow.allows_everyone())

    def test_ipv4_mapped_client_is_read_as_ipv4(self) -> None:
        """A client of a dual-stack socket (::ffff:a.b.c.d) is judged by its IPv4 address."""
        allow = parse_networks("10.0.0.0/8")
        self.assertTrue(allow.allows("::ffff:10.1.1.1"))
        self.assertFalse(allow.allows("::ffff:11.1.1.1"))

    def test_not_an_address_is_not_allowed(self) -> None:
        self.assertFalse(default_networks().allows("localhost"))
        self.assertFalse(default_networks().allows(""))

    def test_parse(self) -> None:
        """A comma-separated list of CIDRs (spaces and empty items ignored); a bare
        address is one host."""
        allow = parse_networks(" 192.0.2.0/24, 2001:db8::/32,,198.51.100.7 ")
        self.assertEqual(str(allow), "192.0.2.0/24,2001:db8::/32,198.51.100.7/32")
        self.assertTrue(allow.allows("198.51.100.7"))
        self.assertFalse(allow.allows("198.51.100.8"))
        self.assertTrue(parse_networks("0.0.0.0/0,::/0").allows_everyone())
        self.assertFalse(parse_networks("0.0.0.0/0").allows_everyone())

    def test_bad_values_name_the_value(self) -> None:
        """A malformed network, host bits after the prefix, or an empty list is a
        ValueError whose message names the value."""
        for text, shown in [
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("10.0.0.1/8", "10.0.0.1/8"),
            ("10.0.0.0/8,nonsense", "nonsense"),
            ("fe80::/200", "fe80::/200"),
        ]:
            with self.assertRaises(ValueError) as raised:
                parse_networks(text)
            self.assertIn(repr(shown), str(raised.exception))
        with self.assertRaises(ValueError):
            parse_networks(" , ")
        with self.assertRaises(ValueError):
            parse_network("")

    def test_equality(self) -> None:
        self.assertEqual(ClientNetworks.of(["10.0.0.0/8"]), parse_networks("10.0.0.0/8"))

    def test_needed_only_when_some_client_could_be_refused(self) -> None:
        """No check is needed on a loopback listener when the whole loopback
        network is allowed, or when everyone is; otherwise the list stays."""
        default = default_networks()
        self.assertIsNone(needed(default, "127.0.0.1"))
        self.assertIsNone(needed(default, "::1"))
        self.assertIs(needed(default, "0.0.0.0"), default)
        self.assertIs(needed(default, "10.0.0.1"), default)
        only_one = parse_networks("127.0.0.2/32")
        self.assertIs(needed(only_one, "127.0.0.1"), only_one)
        v6_only = parse_networks("::1/128")
        self.assertIs(needed(v6_only, "127.0.0.1"), v6_only)
        self.assertIsNone(needed(parse_networks("0.0.0.0/0,::/0"), "192.0.2.1"))
