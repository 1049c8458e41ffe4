"""Running one ``skydns`` command against a server, and the process entry
point (`main`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any, Callable, Mapping, NoReturn, Optional, Sequence

from twisted.internet.defer import Deferred, succeed

from skydns.cli.arguments import UsageError, build_parser
from skydns.cli.codes import OK, SERVER_ERROR, UNREACHABLE, USAGE
from skydns.cli.display import (
    format_answer,
    format_counts,
    format_event,
    format_service,
    format_services,
    format_table,
)
from skydns.cli.leases import lease_command
from skydns.client import (
    ConnectionFailed,
    NotFound,
    ServiceInfo,
    SkyDNSClient,
    SkyDNSError,
    Unavailable,
)
from skydns.client.http import Clock
from skydns.client.lookup import (
    LookupFailed,
    Resolve,
    dns_address_of,
    parse_nameserver,
    qualify,
)


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
        self._watch: Any = None

    def interrupt(self) -> bool:
        """End a running ``heartbeat`` or ``watch``; whether one was running
        (and will now end)."""
        self._interrupted = True
        if self._watch is not None:
            self._watch.close()
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
                 "NoExpire": args.no_expire, "Protocol": args.protocol, "Drain": args.drain,
                 "Lease": args.lease}
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
        names = [] if info is None or args.json else info.raw.get("DNS") or []
        if names and (not info or not info.name or not info.environment):
            self.out.write(f"(no Name or Environment: DNS finds it as {' or '.join(names)})\n")
        return OK

    async def cmd_unregister(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        info = await client.unregister(args.uuid)
        self._print_service(args, info, args.uuid, "unregistered")
        return OK

    async def cmd_drain(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        """``drain`` and ``undrain``."""
        info = await client.drain(args.uuid, args.command == "drain")
        self._print_service(args, info, args.uuid, args.command + "ed")
        return OK

    cmd_undrain = cmd_drain

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
        if args.cluster_command in ("join", "add"):
            result = await client.join(args.member_id, args.address, not args.non_voter)
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
                (m.id, m.address or "-", m.role + (" (unreachable)" if m.reachable is False
                                                   else "")) for m in status.members]))
            return OK
        if args.json:
            self._print_json(result if result is not None else {"id": args.member_id})
        else:
            done = "removed" if args.cluster_command == "remove" else \
                "joined as a read replica" if args.non_voter else "joined"
            self.out.write(f"{done} {args.member_id}\n")
        return OK

    async def cmd_lookup(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        if args.dns is None:  # ask the node we talk to over HTTP
            host, port = await dns_address_of(client, args.server)
        else:
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

    async def cmd_dnssec(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        from attrs import evolve

        from skydns.dns.reverse import parse_reverse_zone
        from skydns.dnssec.keys import ECDSAP256SHA256, ED25519, generate, load

        try:
            if args.dnssec_command == "keygen":
                algorithm = ED25519 if args.algorithm == "ED25519" else ECDSAP256SHA256
                key, base = generate(args.domain, algorithm, args.dir)
                self.out.write(f"{base}\n{key.ds_text()}\n")
            else:
                key = load(args.key, args.domain)
                self.out.write(key.ds_text() + "\n")
                for zone in args.reverse_zone:
                    name = parse_reverse_zone(zone)[0].decode("ascii")
                    self.out.write(evolve(key, zone=name).ds_text() + "\n")
        except (OSError, ValueError) as e:  # KeyFileError is a ValueError
            raise UsageError(str(e)) from e
        return OK

    async def cmd_watch(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        self._in_heartbeat = True
        self._watch = watch = client.watch(args.pattern, consistent=args.consistent)
        if self._interrupted:
            watch.close()
        async for event in watch:
            if args.json:
                self.out.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
            else:
                self.out.write(format_event(event))
            self.out.flush()
        return OK

    async def cmd_heartbeat(self, client: SkyDNSClient, args: argparse.Namespace) -> int:
        if args.ttl < 1:
            raise UsageError("--ttl must be at least 1")
        await self.keep(args, args.ttl, lambda: client.renew(args.uuid, args.ttl), args.uuid)
        if args.unregister_on_exit:
            try:
                await client.unregister(args.uuid)
            except NotFound:
                pass
            self.out.write(f"unregistered {args.uuid}\n")
        return OK

    cmd_lease = lease_command

    async def keep(self, args: argparse.Namespace, ttl: int,
                   renew: Callable[[], "Deferred[Any]"], what: str) -> None:  # fmt: skip
        """Call ``renew`` every ``--interval`` (TTL / 3) until interrupted."""
        interval = args.interval if args.interval is not None else max(ttl / 3.0, 0.5)
        if interval <= 0:
            raise UsageError("--interval must be positive")
        self._in_heartbeat = True
        failures = 0
        while not self._interrupted:
            delay = interval
            try:
                await renew()
                failures = 0
                if args.json:
                    self.out.write(json.dumps({"renewed": what, "TTL": ttl}) + "\n")
                else:
                    self.out.write(f"renewed {what} for {ttl}s\n")
            except NotFound:
                raise
            except (ConnectionFailed, Unavailable) as e:
                # Keep trying: the lease may still be alive when the server is back.
                failures += 1
                delay = min(interval, 2.0 ** (failures - 1))
                self.err.write(f"skydns {args.command}: {e}; retrying in {delay:g}s\n")
            self.out.flush()
            await self._sleep(delay)

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
            if code or not runner.interrupt() or code:
                return None  # (a watch may finish within interrupt())
            d: Deferred[None] = Deferred()
            waiting.append(d)
            return d

        reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
        raise SystemExit(await result)

    task.react(_main)
    raise SystemExit(OK)  # pragma: no cover - react exits


if __name__ == "__main__":  # pragma: no cover
    main()
