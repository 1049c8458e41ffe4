"""The ``skydns`` command line: its commands, options and their defaults
(from the environment: ``SKYDNS_SERVER`` and friends), and usage errors."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any, Mapping, NoReturn, Optional

DEFAULT_SERVER = "http://127.0.0.1:8080"
DEFAULT_DOMAIN = "skydns.local"
LOOKUP_TYPES = ("SRV", "A", "AAAA", "ANY", "SOA", "NS", "TXT", "CNAME", "PTR", "MX")

EPILOG = """\
exit codes: 0 ok; 1 the server answered with an error (message on stderr);
2 usage error; 3 cannot connect to the server.
environment: SKYDNS_SERVER (default for --server), SKYDNS_SECRET (default for --secret)."""


class UsageError(Exception):
    """A command line that argparse accepted but that cannot be run."""


def _parser_class(out: IO[str], err: IO[str]) -> type[argparse.ArgumentParser]:
    """An ArgumentParser that writes to ``out``/``err`` and raises instead of exiting."""

    class Parser(argparse.ArgumentParser):
        def _print_message(self, message: str, file: Any = None) -> None:
            if message:
                (err if file is sys.stderr else out).write(message)

        def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
            if message:
                err.write(message)
            raise SystemExit(status)

    return Parser


def _global_options(parser: argparse.ArgumentParser, environ: Mapping[str, str],
                    defaults: bool) -> None:
    """--server, --secret, --json, --timeout: before the sub-command, or after it."""
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--server", metavar="URL",
        default=default(environ.get("SKYDNS_SERVER") or DEFAULT_SERVER),
        help=f"the node's HTTP API (env SKYDNS_SERVER; default {DEFAULT_SERVER})")
    parser.add_argument(
        "--secret", default=default(environ.get("SKYDNS_SECRET") or None),
        help="the shared secret, sent in the Authorization header (env SKYDNS_SECRET)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", default=default(10.0),
                        help="give up on a request after this long (default 10)")


def build_parser(environ: Mapping[str, str], out: IO[str] = sys.stdout,
                 err: IO[str] = sys.stderr) -> argparse.ArgumentParser:
    """The whole command line grammar."""
    parser_class = _parser_class(out, err)
    parser = parser_class(
        prog="skydns", description="Talk to a SkyDNS node: register, renew and find services.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, environ, defaults=True)
    common = parser_class(add_help=False)
    _global_options(common, environ, defaults=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    consistent = parser_class(add_help=False)
    consistent.add_argument("--consistent", action="store_true",
                            help="read through the leader (linearizable)")

    def command(name: str, help: str,
                *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help,
                                   parents=[common, *parents],
                                   epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("register", "register a service instance (PUT /skydns/services/UUID)")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("body", metavar="JSON", nargs="?",
                   help="the registration as a JSON object ('-' reads stdin); "
                        "options given as well override its fields")
    p.add_argument("--name")
    p.add_argument("--environment")
    p.add_argument("--region")
    p.add_argument("--version")
    p.add_argument("--host", help="host name or IPv4/IPv6 address (required)")
    p.add_argument("--port", type=int, help="1-65535 (required)")
    p.add_argument("--ttl", type=int, help="lease in seconds")
    p.add_argument("--priority", type=int)
    p.add_argument("--weight", type=int)
    p.add_argument("--no-expire", action="store_true", default=None,
                   help="never expire (no heartbeat needed)")
    p.add_argument("--protocol", choices=("tcp", "udp"),
                   help="the RFC 2782 names (_NAME._PROTO...) it answers under (default tcp)")
    p.add_argument("--drain", action="store_true", default=None,
                   help="register it drained: in no DNS answer until `skydns undrain`")
    p.add_argument("--lease", metavar="ID",
                   help="live by this lease (`skydns lease grant`): no heartbeat of its own")

    p = command("heartbeat", "renew a registration's lease until interrupted (SIGINT/SIGTERM)")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--ttl", type=int, required=True, help="lease granted by each renewal")
    p.add_argument("--interval", type=float, metavar="SECONDS",
                   help="time between renewals (default TTL / 3)")
    p.add_argument("--unregister-on-exit", action="store_true",
                   help="unregister the instance when interrupted")

    p = command("lease", "leases: one heartbeat for many instances (SPEC §7)")
    lease = p.add_subparsers(dest="lease_command", metavar="ACTION", required=True)
    g = lease.add_parser("grant", help="grant a lease of TTL seconds", parents=[common])
    g.add_argument("ttl", metavar="TTL", type=int)
    g.add_argument("-q", "--quiet", action="store_true", help="print the lease ID only")
    for action, help in (("renew", "renew a lease for its TTL"),
                         ("revoke", "end a lease and remove its instances")):  # fmt: skip
        lease.add_parser(action, help=help, parents=[common]).add_argument("lease_id",
                                                                            metavar="ID")
    k = lease.add_parser("keep", help="renew a lease until interrupted (SIGINT/SIGTERM)",
                         parents=[common])  # fmt: skip
    k.add_argument("lease_id", metavar="ID")
    k.add_argument("--interval", type=float, metavar="SECONDS",
                   help="time between renewals (default TTL / 3)")
    k.add_argument("--revoke-on-exit", action="store_true",
                   help="revoke the lease (removing its instances) when interrupted")
    s_ = lease.add_parser("show", help="a lease's TTL, time left and instances",
                          parents=[common, consistent])  # fmt: skip
    s_.add_argument("lease_id", metavar="ID")

    p = command("unregister", "remove a service instance")
    p.add_argument("uuid", metavar="UUID")

    p = command("drain", "leave an instance out of every DNS answer; it stays registered")
    p.add_argument("uuid", metavar="UUID")
    p = command("undrain", "put a drained instance back into DNS answers")
    p.add_argument("uuid", metavar="UUID")

    p = command("get", "show one service instance", consistent)
    p.add_argument("uuid", metavar="UUID")

    p = command("list", "list instances, all or those matching a DNS-style pattern",
                consistent)
    p.add_argument("pattern", metavar="PATTERN", nargs="?",
                   help="e.g. rails.production or *.east.rails.production")

    p = command("lookup", "ask the DNS side (dnspython, else twisted.names)")
    p.add_argument("name", metavar="NAME",
                   help="relative names get --domain appended; end with '.' for absolute")
    p.add_argument("type", metavar="TYPE", nargs="?", default="SRV", type=str.upper,
                   choices=LOOKUP_TYPES, help="record type (default SRV)")
    p.add_argument("--dns", metavar="HOST:PORT",
                   help="the DNS address to ask (default: the one the --server node reports, "
                        "else its host at port 8053)")
    p.add_argument("--domain", default=DEFAULT_DOMAIN,
                   help=f"the SkyDNS domain (default {DEFAULT_DOMAIN})")
    p.add_argument("--resolver", choices=("auto", "dnspython", "twisted"), default="auto",
                   help="DNS client library (default: dnspython if installed)")

    p = command("watch", "print the changes of a pattern's instances as they happen, until "
                         "interrupted (SIGINT/SIGTERM)", consistent)
    p.add_argument("pattern", metavar="PATTERN", nargs="?",
                   help="e.g. rails.production (default: every instance)")

    command("regions", "instance counts by region", consistent)
    command("environments", "instance counts by environment", consistent)

    p = command("dnssec", "DNSSEC keys for --dnssec-key (BIND's file format)")
    dnssec = p.add_subparsers(dest="dnssec_command", metavar="ACTION", required=True)
    k = dnssec.add_parser("keygen", help="make a key: K<domain>.+<alg>+<tag>.key/.private",
                          parents=[common])  # fmt: skip
    k.add_argument("--algorithm", type=str.upper, default="ECDSAP256SHA256",
                   choices=("ECDSAP256SHA256", "ED25519"))
    k.add_argument("--domain", default=DEFAULT_DOMAIN,
                   help=f"the SkyDNS domain (default {DEFAULT_DOMAIN})")
    k.add_argument("--dir", default=".", help="where to write the two files (default .)")
    d = dnssec.add_parser("ds", help="the DS record of a key, for the parent zone",
                          parents=[common])  # fmt: skip
    d.add_argument("key", metavar="KEYFILE", help="K....private or K....key (or their prefix)")
    d.add_argument("--domain", default=DEFAULT_DOMAIN,
                   help=f"the SkyDNS domain (default {DEFAULT_DOMAIN})")
    d.add_argument("--reverse-zone", action="append", default=[], metavar="ZONE",
                   help="also the DS of this --reverse-zone (repeat for more)")

    p = command("cluster", "cluster membership and state")
    cluster = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    cluster.add_parser("status", help="this node's view of the cluster", parents=[common])
    j = cluster.add_parser("join", aliases=["add"], help="add a member", parents=[common])
    j.add_argument("member_id", metavar="ID")
    j.add_argument("address", metavar="ADDRESS", help="the new member's Raft HOST:PORT")
    j.add_argument("--non-voter", action="store_true",
                   help="as a read replica: never votes or counts in a quorum")
    r = cluster.add_parser("remove", help="remove a member", parents=[common])
    r.add_argument("member_id", metavar="ID")
    return parser


