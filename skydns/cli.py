"""The ``skydns`` command: talk to a SkyDNS node over HTTP (and DNS, for ``lookup``).

Exit codes: 0 success; 1 the server answered with an error (4xx/5xx, or a DNS
error rcode for ``lookup``), message on stderr; 2 usage error; 3 the server
could not be reached.  See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any, Callable, Mapping, NoReturn, Optional, Sequence

from twisted.internet.defer import Deferred, succeed

from skydns.client import (
    ConnectionFailed,
    NotFound,
    ServiceInfo,
    SkyDNSClient,
    SkyDNSError,
    Unavailable,
)
from skydns.client.http import Clock
from skydns.client.lookup import DNSAnswer, LookupFailed, Resolve, parse_nameserver, qualify

OK, SERVER_ERROR, USAGE, UNREACHABLE = 0, 1, 2, 3

DEFAULT_SERVER = "http://127.0.0.1:8080"
DEFAULT_DNS = "127.0.0.1:8053"
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

    p = command("heartbeat", "renew a registration's lease until interrupted (SIGINT/SIGTERM)")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--ttl", type=int, required=True, help="lease granted by each renewal")
    p.add_argument("--interval", type=float, metavar="SECONDS",
                   help="time between renewals (default TTL / 3)")
    p.add_argument("--unregister-on-exit", action="store_true",
                   help="unregister the instance when interrupted")

    p = command("unregister", "remove a service instance")
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
    p.add_argument("--dns", metavar="HOST:PORT", default=DEFAULT_DNS,
                   help=f"the node's DNS address (default {DEFAULT_DNS})")
    p.add_argument("--domain", default=DEFAULT_DOMAIN,
                   help=f"the SkyDNS domain (default {DEFAULT_DOMAIN})")
    p.add_argument("--resolver", choices=("auto", "dnspython", "twisted"), default="auto",
                   help="DNS client library (default: dnspython if installed)")

    command("regions", "instance counts by region", consistent)
    command("environments", "instance counts by environment", consistent)

    p = command("cluster", "cluster membership and state")
    cluster = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    cluster.add_parser("status", help="this node's view of the cluster", parents=[common])
    j = cluster.add_parser("join", help="add a member", parents=[common])
    j.add_argument("member_id", metavar="ID")
    j.add_argument("address", metavar="ADDRESS", help="the new member's Raft HOST:PORT")
    r = cluster.add_parser("remove", help="remove a member", parents=[common])
    r.add_argument("member_id", metavar="ID")
    return parser


# -- formatting -----------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart; no trailing blanks."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


SERVICE_COLUMNS = ("UUID", "NAME", "VERSION", "ENVIRONMENT", "REGION", "HOST", "PORT", "TTL")


def format_services(services: Sequence[ServiceInfo]) -> str:
    ordered = sorted(services, key=lambda s: (s.name, s.environment, s.region, s.uuid))
    return format_table(SERVICE_COLUMNS, [
        (s.uuid, s.name, s.version, s.environment, s.region, s.host, s.port, s.ttl)
        for s in ordered
    ])


def format_service(s: ServiceInfo) -> str:
    fields = [("UUID", s.uuid), ("Name", s.name), ("Version", s.version),
              ("Environment", s.environment), ("Region", s.region), ("Host", s.host),
              ("Port", s.port), ("TTL", s.ttl), ("Priority", s.priority),
              ("Weight", s.weight), ("NoExpire", str(s.no_expire).lower()),
              ("Expires", s.expires)]
    fields = [(k, v) for k, v in fields if v is not None]
    width = max(len(k) for k, _ in fields) + 1
    return "".join(f"{k + ':':<{width}} {v}\n" for k, v in fields)


def format_counts(title: str, counts: Mapping[str, int]) -> str:
    return format_table((title, "COUNT"), sorted(counts.items()))


def format_answer(answer: DNSAnswer) -> str:
    headers = ("NAME", "TTL", "TYPE", "DATA")
    text = format_table(headers, [(r.name, r.ttl, r.type, r.data) for r in answer.answer])
    if answer.additional:
        text += "\nadditional:\n" + format_table(
            headers, [(r.name, r.ttl, r.type, r.data) for r in answer.additional])
    return text


# -- running --------------------------------------------------------------------


class Runner:
    """Runs one parsed command line; holds what tests substitute (HTTP, clock, DNS)."""

    def __init__(self, http: Any = None, clock: Optional[Clock] = None,
                 resolve: Optional[Resolve] = None, out: IO[str] = sys.stdout,
                 err: IO[str] = sys.stderr, environ: Optional[Mapping[str, str]] = None,
                 stdin: Optional[IO[str]] = None) -> None:
        self.http = http
        self.clock = clock
        self.resolve = resolve
        self.out = out
        self.err = err
        self.environ = os.environ if environ is None else environ
        self.stdin = sys.stdin if stdin is None else stdin
        self._interrupted = False
        self._wake: Optional[Deferred[None]] = None
        self._sleep_call: Any = None
        self._in_heartbeat = False

    def interrupt(self) -> bool:
        """End a running ``heartbeat``; whether one was running (and will now end)."""
        self._interrupted = True
        if self._sleep_call is not None and self._sleep_call.active():
            self._sleep_call.cancel()
        self._sleep_call = None
        if self._wake is not None and not self._wake.called:
            self._wake.callback(None)
        return self._in_heartbeat

    def run(self, argv: Sequence[str]) -> "Deferred[int]":
        """Parse and run ``argv``; fires with the exit code (never fails)."""
        return Deferred.fromCoroutine(self._run(argv))

    async def _run(self, argv: Sequence[str]) -> int:
        parser = build_parser(self.environ, self.out, self.err)
        try:
            args = parser.parse_args(list(argv))
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else USAGE
        server = args.server if "://" in args.server else "http://" + args.server
        client = SkyDNSClient(server, secret=args.secret, http=self.http, clock=self.clock,
                              timeout=args.timeout)
        handler: Callable[[SkyDNSClient, argparse.Namespace], Any] = getattr(
            self, "cmd_" + args.command)
        try:
            return int(await handler(client, args) or OK)
        except UsageError as e:
            self.err.write(f"skydns {args.command}: {e}\n")
            return USAGE
        except SkyDNSError as e:
            self.err.write(f"skydns {args.command}: error {e.status}: {e.message}\n")
            return SERVER_ERROR
        except (ConnectionFailed, LookupFailed) as e:
            self.err.write(f"skydns {args.command}: {e}\n")
            return UNREACHABLE

    def _print_json(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")

    def _print_service(self, args: argparse.Namespace, info: Optional[ServiceInfo],
                       uuid: str, done: str) -> None:
        if args.json:
            self._print_json(dict(info.raw) if info is not None else {"UUID": uuid})
        elif info is not None and done == "":
            self.out.write(format_service(info))
        else:
            self.out.write(f"{done} {uuid}\n")

    async def cmd_register(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        body: dict[str, Any] = {}
        if args.body is not None:
            text = self.stdin.read() if args.body == "-" else args.body
            try:
                body = json.loads(text)
            except ValueError as e:
                raise UsageError(f"JSON body: {e}") from e
            if not isinstance(body, dict):
                raise UsageError("JSON body: must be an object")
        flags = {"Name": args.name, "Environment": args.environment, "Region": args.region,
                 "Version": args.version, "Host": args.host, "Port": args.port,
                 "TTL": args.ttl, "Priority": args.priority, "Weight": args.weight,
                 "NoExpire": args.no_expire}
        present = {k.lower() for k in body}
        for key, value in flags.items():
            if value is not None:
                body = {k: v for k, v in body.items() if k.lower() != key.lower()}
                body[key] = value
                present.add(key.lower())
        missing = [f"--{k.lower()}" for k in ("Host", "Port") if k.lower() not in present]
        if missing:
            raise UsageError(
                " and ".join(missing) + " required (as options or as Host/Port in a JSON body)"
            )
        info = await client.register(args.uuid, body)
        self._print_service(args, info, args.uuid, "registered")
        return OK

    async def cmd_unregister(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        info = await client.unregister(args.uuid)
        self._print_service(args, info, args.uuid, "unregistered")
        return OK

    async def cmd_get(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        info = await client.get(args.uuid, consistent=args.consistent)
        self._print_service(args, info, args.uuid, "")
        return OK

    async def cmd_list(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        services = await client.list(args.pattern, consistent=args.consistent)
        if args.json:
            self._print_json([dict(s.raw) for s in services])
        else:
            self.out.write(format_services(services))
        return OK

    async def cmd_regions(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        counts = await client.regions(consistent=args.consistent)
        if args.json:
            self._print_json(counts)
        else:
            self.out.write(format_counts("REGION", counts))
        return OK

    async def cmd_environments(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        counts = await client.environments(consistent=args.consistent)
        if args.json:
            self._print_json(counts)
        else:
            self.out.write(format_counts("ENVIRONMENT", counts))
        return OK

    async def cmd_cluster(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        if args.cluster_command == "join":
            result = await client.join(args.member_id, args.address)
        elif args.cluster_command == "remove":
            result = await client.remove(args.member_id)
        else:
            status = await client.cluster_status()
            if args.json:
                self._print_json(dict(status.raw))
                return OK
            summary = [("node", status.id), ("leader", status.leader or "(none)"),
                       ("term", status.term), ("commit index", status.commit_index),
                       ("applied index", status.applied_index)]
            self.out.write("".join(f"{k + ':':<15} {v}\n" for k, v in summary) + "\n")
            self.out.write(format_table(("ID", "ADDRESS", "ROLE"), [
                (m.id, m.address or "-", m.role) for m in status.members]))
            return OK
        if args.json:
            self._print_json(result if result is not None else {"id": args.member_id})
        else:
            done = "joined" if args.cluster_command == "join" else "removed"
            self.out.write(f"{done} {args.member_id}\n")
        return OK

    async def cmd_lookup(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        try:
            host, port = parse_nameserver(args.dns)
        except ValueError as e:
            raise UsageError(f"--dns: {e}") from e
        name = qualify(args.name, args.domain)
        resolve = self.resolve
        if resolve is None:
            from twisted.internet import reactor

            from skydns.client import lookup

            if args.resolver == "twisted":
                resolve = lookup.twisted_resolver(reactor)
            elif args.resolver == "dnspython":
                resolve = lookup.dnspython_resolver(reactor)
                if resolve is None:
                    raise UsageError("--resolver dnspython: dnspython is not installed")
            else:
                resolve = lookup.default_resolver(reactor)
        answer = await resolve(host, port, name, args.type, args.timeout)
        if args.json:
            self._print_json({"name": name, "type": args.type, **answer.to_json()})
        elif answer.rcode == "NOERROR":
            self.out.write(format_answer(answer))
        if answer.rcode != "NOERROR":
            self.err.write(f"skydns lookup: {answer.rcode} for {name} {args.type}\n")
            return SERVER_ERROR
        return OK

    async def cmd_heartbeat(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        if args.ttl < 1:
            raise UsageError("--ttl must be at least 1")
        interval = args.interval if args.interval is not None else max(args.ttl / 3.0, 0.5)
        if interval <= 0:
            raise UsageError("--interval must be positive")
        self._in_heartbeat = True
        failures = 0
        while not self._interrupted:
            delay = interval
            try:
                await client.renew(args.uuid, args.ttl)
                failures = 0
                if args.json:
                    self.out.write(json.dumps({"renewed": args.uuid, "TTL": args.ttl}) + "\n")
                else:
                    self.out.write(f"renewed {args.uuid} for {args.ttl}s\n")
            except NotFound:
                raise
            except (ConnectionFailed, Unavailable) as e:
                # Keep trying: the lease may still be alive when the server is back.
                failures += 1
                delay = min(interval, 2.0 ** (failures - 1))
                self.err.write(f"skydns heartbeat: {e}; retrying in {delay:g}s\n")
            self.out.flush()
            await self._sleep(delay)
        if args.unregister_on_exit:
            try:
                await client.unregister(args.uuid)
            except NotFound:
                pass
            self.out.write(f"unregistered {args.uuid}\n")
        return OK

    def _sleep(self, delay: float) -> "Deferred[None]":
        """Wait ``delay`` seconds, or less if interrupted."""
        if self._interrupted:
            return succeed(None)
        clock: Any = self.clock
        if clock is None:
            from twisted.internet import reactor as clock
        wake: Deferred[None] = Deferred()
        self._wake = wake
        self._sleep_call = clock.callLater(delay, wake.callback, None)
        return wake


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """The console script: run the command in the reactor and exit with its code."""
    from twisted.internet import task

    arguments = list(sys.argv[1:] if argv is None else argv)

    async def _main(reactor: Any) -> None:
        runner = Runner(clock=reactor)
        result = runner.run(arguments)
        code: list[int] = []
        waiting: list[Deferred[None]] = []

        def finished(value: int) -> int:
            code.append(value)
            for d in waiting:
                d.callback(None)
            return value

        result.addCallback(finished)

        def before_shutdown() -> "Deferred[None] | None":
            # SIGINT/SIGTERM stop the reactor.  A heartbeat gets to finish
            # (and unregister) first, so the exit code is the command's.
            if code or not runner.interrupt():
                return None
            d: Deferred[None] = Deferred()
            waiting.append(d)
            return d

        reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
        raise SystemExit(await result)

    task.react(_main)
    raise SystemExit(OK)  # pragma: no cover - react exits


if __name__ == "__main__":  # pragma: no cover
    main()
