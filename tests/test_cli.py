"""The ``skydns`` command: parsing, exit codes and output, against the in-memory
fake of tests.test_client (and a fake DNS resolver); then end to end against a
real ``twistd skydns`` process, with the command run as a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import unittest
from typing import Any

from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from skydns.cli import Runner, format_table
from skydns.client.lookup import (
    DNSAnswer,
    DNSRecord,
    LookupFailed,
    parse_nameserver,
    qualify,
)
from tests.test_client import WEB, FakeSkyDNS, HangingHTTP, RefusingHTTP


class FakeResolver:
    """Records lookups and answers with a fixed `DNSAnswer` (or failure)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[tuple[str, int, str, str, float]] = []

    def __call__(self, host: str, port: int, name: str, rdtype: str,
                 timeout: float) -> "Deferred[DNSAnswer]":
        self.asked.append((host, port, name, rdtype, timeout))
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return defer.succeed(self.answer)


class CommandTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeSkyDNS()
        self.clock = task.Clock()
        self.http: Any = self.server.stub()
        self.resolve: Any = FakeResolver(DNSAnswer("NOERROR"))
        self.environ: dict[str, str] = {}

    def runner(self) -> Runner:
        self.out, self.err = io.StringIO(), io.StringIO()
        return Runner(http=self.http, clock=self.clock, resolve=self.resolve, out=self.out,
                      err=self.err, environ=self.environ, stdin=io.StringIO(self.stdin))

    stdin = ""

    def run_cli(self, *argv: str) -> int:
        """Run a command that completes synchronously; its exit code."""
        code: int = self.successResultOf(self.runner().run(argv))
        return code

    def register_web(self, uuid: str = "web-1") -> None:
        self.server.services[uuid] = {
            "UUID": uuid, "Name": WEB.name, "Version": WEB.version,
            "Environment": WEB.environment, "Region": WEB.region, "Host": WEB.host,
            "Port": WEB.port, "TTL": 30, "Priority": None, "Weight": None, "NoExpire": False,
            "Expires": "2026-11-25T06:00:00Z",
        }


class ParsingTests(CommandTestCase):
    def test_help_exits_zero(self) -> None:
        """--help prints usage, the commands and the exit codes to stdout; exit 0."""
        self.assertEqual(self.run_cli("--help"), 0)
        for word in ("register", "heartbeat", "lookup", "cluster", "exit codes", "SKYDNS_SERVER"):
            self.assertIn(word, self.out.getvalue())

    def test_help_on_every_command(self) -> None:
        """Every sub-command (and cluster action) has --help."""
        for argv in (["register"], ["heartbeat"], ["unregister"], ["get"], ["list"],
                     ["lookup"], ["regions"], ["environments"], ["cluster"],
                     ["cluster", "status"], ["cluster", "join"], ["cluster", "remove"]):
            self.assertEqual(self.run_cli(*argv, "--help"), 0, argv)
            self.assertIn("usage: skydns " + " ".join(argv), self.out.getvalue())

    def test_usage_errors_exit_two(self) -> None:
        """No command, an unknown one, or a missing argument: usage on stderr, exit 2."""
        for argv in ([], ["bogus"], ["get"], ["heartbeat", "x"], ["cluster"],
                     ["lookup", "x", "BOGUS"], ["register", "x", "--port", "eighty"]):
            self.assertEqual(self.run_cli(*argv), 2, argv)
            self.assertIn("usage:", self.err.getvalue())
            self.assertEqual(self.server.requests, [])

    def test_global_options_before_or_after(self) -> None:
        """--server, --secret and --json work before or after the sub-command."""
        self.server.secret = "s3cret"
        self.assertEqual(self.run_cli("--secret", "s3cret", "regions", "--json"), 0)
        self.assertEqual(self.run_cli("regions", "--secret", "s3cret", "--json"), 0)
        self.assertEqual(json.loads(self.out.getvalue()), {})
        self.assertEqual(self.server.requests[-1][3], b"s3cret")

    def test_environment(self) -> None:
        """SKYDNS_SERVER and SKYDNS_SECRET are the defaults; flags override them."""
        self.server.secret = "from-env"
        self.environ.update(SKYDNS_SERVER="other.test:9999", SKYDNS_SECRET="from-env")
        http = self.http
        urls: list[str] = []

        class Recording:
            def request(self, method: str, url: str, **kwargs: Any) -> Any:
                urls.append(url)
                return http.request(method, url, **kwargs)

            def content(self, response: Any) -> Any:
                return http.content(response)

        self.http = Recording()
        self.assertEqual(self.run_cli("regions"), 0)
        self.assertEqual(urls[-1], "http://other.test:9999/skydns/regions/")
        self.assertEqual(self.run_cli("--server", "https://x.test/", "--secret", "no",
                                      "regions"), 1)
        self.assertEqual(urls[-1], "https://x.test/skydns/regions/")


class ServiceCommandTests(CommandTestCase):
    def test_register_flags(self) -> None:
        """register sends the flags as a v1 body; prints what it did; exit 0."""
        code = self.run_cli("register", "web-1", "--name", "web", "--environment", "prod",
                            "--region", "east", "--version", "1.0", "--host", "10.0.0.5",
                            "--port", "8000", "--ttl", "30", "--priority", "5",
                            "--no-expire")
        self.assertEqual(code, 0)
        self.assertEqual(self.out.getvalue(), "registered web-1\n")
        self.assertEqual(self.server.requests[-1][4], {
            "Name": "web", "Environment": "prod", "Region": "east", "Version": "1.0",
            "Host": "10.0.0.5", "Port": 8000, "TTL": 30, "Priority": 5, "NoExpire": True})

    def test_register_json_body(self) -> None:
        """A JSON body argument (or '-' for stdin) is sent; flags override its fields."""
        body = {"name": "web", "environment": "prod", "region": "east", "version": "1",
                "host": "h", "port": 1, "ttl": 30}
        self.assertEqual(self.run_cli("register", "a", json.dumps(body), "--port", "2"), 0)
        sent = self.server.requests[-1][4]
        self.assertEqual((sent["Port"], sent["name"]), (2, "web"))
        self.assertNotIn("port", sent)
        self.stdin = json.dumps(body)
        self.assertEqual(self.run_cli("register", "b", "-"), 0)
        self.assertEqual(self.server.requests[-1][4], body)

    def test_register_usage_errors(self) -> None:
        """No host/port, bad JSON, or JSON that is not an object: exit 2, nothing sent."""
        self.assertEqual(self.run_cli("register", "a", "--name", "web"), 2)
        self.assertIn("--host and --port required", self.err.getvalue())
        self.assertEqual(self.run_cli("register", "a", "{nope"), 2)
        self.assertIn("JSON body", self.err.getvalue())
        self.assertEqual(self.run_cli("register", "a", "[1]"), 2)
        self.assertEqual(self.server.requests, [])

    def test_register_conflict(self) -> None:
        """The server's refusal: its message on stderr, exit 1."""
        self.register_web()
        code = self.run_cli("register", "web-1", "--host", "h", "--port", "1")
        self.assertEqual(code, 1)
        self.assertEqual(self.err.getvalue(),
                         "skydns register: error 409: service web-1 exists\n")
        self.assertEqual(self.out.getvalue(), "")

    def test_get_table(self) -> None:
        """get prints the fields aligned, leaving out the unset ones."""
        self.register_web()
        self.assertEqual(self.run_cli("get", "web-1"), 0)
        self.assertEqual(self.out.getvalue(), (
            "UUID:        web-1\n"
            "Name:        web\n"
            "Version:     1.0.1\n"
            "Environment: production\n"
            "Region:      east\n"
            "Host:        10.0.0.5\n"
            "Port:        8000\n"
            "TTL:         30\n"
            "NoExpire:    false\n"
            "Protocol:    tcp\n"
            "Drain:       false\n"
            "Expires:     2026-11-25T06:00:00Z\n"))

    def test_get_json_and_consistent(self) -> None:
        """get --json prints the server's object; --consistent asks for a consistent read."""
        self.register_web()
        self.assertEqual(self.run_cli("get", "web-1", "--json", "--consistent"), 0)
        self.assertEqual(json.loads(self.out.getvalue()), self.server.services["web-1"])
        self.assertEqual(self.server.requests[-1][2], {b"consistent": [b"true"]})

    def test_get_missing(self) -> None:
        """get of an unknown UUID: exit 1, message on stderr."""
        self.assertEqual(self.run_cli("get", "nope"), 1)
        self.assertIn("404", self.err.getvalue())

    def test_list_table(self) -> None:
        """list prints an aligned table sorted by name, environment, region,
        UUID; a NoExpire instance's TTL is "never" (not the TTL it carries)."""
        self.register_web("web-2")
        self.register_web("web-10")
        self.server.services["web-10"]["Host"] = "web10.example.com"
        self.server.services["web-2"].update(NoExpire=True, TTL=3600)
        self.assertEqual(self.run_cli("list", "web.production"), 0)
        self.assertEqual(self.out.getvalue(), (
            "UUID    NAME  VERSION  ENVIRONMENT  REGION  HOST               PORT  TTL\n"
            "web-10  web   1.0.1    production   east    web10.example.com  8000  30\n"
            "web-2   web   1.0.1    production   east    10.0.0.5           8000  never\n"))
        self.assertEqual(self.server.requests[-1][2], {b"query": [b"web.production"]})

    def test_list_json(self) -> None:
        """list --json prints the list of service objects."""
        self.register_web()
        self.assertEqual(self.run_cli("--json", "list"), 0)
        self.assertEqual(json.loads(self.out.getvalue()), [self.server.services["web-1"]])

    def test_consistent(self) -> None:
        """--consistent on list, regions and environments asks for a consistent read."""
        for argv in (["list"], ["regions"], ["environments"]):
            self.assertEqual(self.run_cli(*argv, "--consistent"), 0)
            self.assertEqual(self.server.requests[-1][2], {b"consistent": [b"true"]})

    def test_unregister(self) -> None:
        """unregister removes; a second time is a 404: exit 1."""
        self.register_web()
        self.assertEqual(self.run_cli("unregister", "web-1"), 0)
        self.assertEqual(self.out.getvalue(), "unregistered web-1\n")
        self.assertEqual(self.run_cli("unregister", "web-1"), 1)

    def test_regions_and_environments(self) -> None:
        """regions and environments print VALUE COUNT tables, or JSON."""
        self.register_web("a")
        self.register_web("b")
        self.server.services["b"]["Region"] = "west-long"
        self.assertEqual(self.run_cli("regions"), 0)
        self.assertEqual(self.out.getvalue(), "REGION     COUNT\neast       1\nwest-long  1\n")
        self.assertEqual(self.run_cli("environments", "--json"), 0)
        self.assertEqual(json.loads(self.out.getvalue()), {"production": 2})

    def test_cannot_connect(self) -> None:
        """Connection refused: exit 3 with the reason on stderr."""
        self.http = RefusingHTTP()
        self.assertEqual(self.run_cli("list"), 3)
        self.assertIn("cannot reach http://127.0.0.1:8080/skydns/services/",
                      self.err.getvalue())

    def test_timeout(self) -> None:
        """No answer within --timeout: exit 3."""
        self.http = HangingHTTP()
        d = self.runner().run(["get", "x", "--timeout", "2"])
        self.clock.advance(2)
        self.assertEqual(self.successResultOf(d), 3)

    def test_server_error_status(self) -> None:
        """A 5xx answer: exit 1."""
        self.server.fail_next = [500]
        self.assertEqual(self.run_cli("regions"), 1)
        self.assertIn("error 500: scripted failure", self.err.getvalue())


class ClusterCommandTests(CommandTestCase):
    def test_status(self) -> None:
        """cluster status prints the summary and the members table."""
        self.server.members["n2"] = "10.0.0.2:7070"
        self.assertEqual(self.run_cli("cluster", "status"), 0)
        self.assertEqual(self.out.getvalue(), (
            "node:           n1\n"
            "leader:         n1\n"
            "term:           3\n"
            "commit index:   7\n"
            "applied index:  6\n"
            "\n"
            "ID  ADDRESS         ROLE\n"
            "n1  127.0.0.1:7070  leader\n"
            "n2  10.0.0.2:7070   follower\n"))

    def test_status_json(self) -> None:
        """cluster status --json prints the server's object."""
        self.assertEqual(self.run_cli("cluster", "status", "--json"), 0)
        self.assertEqual(json.loads(self.out.getvalue())["commit_index"], 7)

    def test_join_and_remove(self) -> None:
        """join and remove call the members routes; an unknown member is exit 1."""
        self.assertEqual(self.run_cli("cluster", "join", "n2", "10.0.0.2:7070"), 0)
        self.assertEqual(self.out.getvalue(), "joined n2\n")
        self.assertEqual(self.server.members["n2"], "10.0.0.2:7070")
        self.assertEqual(self.run_cli("cluster", "remove", "n2"), 0)
        self.assertEqual(self.out.getvalue(), "removed n2\n")
        self.assertEqual(self.run_cli("cluster", "remove", "n2"), 1)
        self.assertEqual(self.run_cli("cluster", "add", "r3", "10.0.0.3:7070", "--non-voter"), 0)
        self.assertEqual(self.out.getvalue(), "joined as a read replica r3\n")
        self.assertEqual(self.server.members["r3"], "10.0.0.3:7070")
        self.assertEqual(self.server.voters["r3"], False)


SRV = DNSAnswer(
    "NOERROR",
    answer=(DNSRecord("web.production.skydns.local.", 30, "SRV",
                      "10 100 8000 web-1.skydns.local."),),
    additional=(DNSRecord("web-1.skydns.local.", 30, "A", "10.0.0.5"),),
)


class LookupTests(CommandTestCase):
    def test_lookup_defaults(self) -> None:
        """lookup asks 127.0.0.1:8053 for SRV of NAME.skydns.local. and prints a table."""
        self.resolve = FakeResolver(SRV)
        self.assertEqual(self.run_cli("lookup", "web.production"), 0)
        self.assertEqual(self.resolve.asked,
                         [("127.0.0.1", 8053, "web.production.skydns.local.", "SRV", 10.0)])
        self.assertEqual(self.out.getvalue(), (
            "NAME                          TTL  TYPE  DATA\n"
            "web.production.skydns.local.  30   SRV   10 100 8000 web-1.skydns.local.\n"
            "\n"
            "additional:\n"
            "NAME                 TTL  TYPE  DATA\n"
            "web-1.skydns.local.  30   A     10.0.0.5\n"))

    def test_lookup_asks_where_the_server_answers_dns(self) -> None:
        """Without --dns, lookup asks the --server node for its DNS address
        (on every interface: the server's host); with none reported, the
        server's host at 8053."""
        self.server.dns = "0.0.0.0:9053"
        self.assertEqual(self.run_cli("lookup", "web", "--server", "http://127.0.0.2:8080"), 0)
        self.assertEqual(self.resolve.asked[-1][:2], ("127.0.0.2", 9053))
        self.server.dns = "[::1]:53"
        self.assertEqual(self.run_cli("lookup", "web"), 0)
        self.assertEqual(self.resolve.asked[-1][:2], ("::1", 53))
        self.server.dns = None
        self.assertEqual(self.run_cli("lookup", "web", "--server", "http://127.0.0.3:80"), 0)
        self.assertEqual(self.resolve.asked[-1][:2], ("127.0.0.3", 8053))

    def test_lookup_options(self) -> None:
        """--dns, --domain and TYPE (any case) choose where and what to ask."""
        self.assertEqual(self.run_cli("lookup", "web.prod", "aaaa", "--dns", "[::1]:53",
                                      "--domain", "example.org"), 0)
        self.assertEqual(self.resolve.asked[-1][:4], ("::1", 53, "web.prod.example.org.", "AAAA"))

    def test_lookup_json(self) -> None:
        """lookup --json prints rcode and sections."""
        self.resolve = FakeResolver(SRV)
        self.assertEqual(self.run_cli("lookup", "web.production", "--json"), 0)
        out = json.loads(self.out.getvalue())
        self.assertEqual((out["rcode"], out["type"]), ("NOERROR", "SRV"))
        self.assertEqual(out["additional"][0]["data"], "10.0.0.5")

    def test_nxdomain(self) -> None:
        """An error rcode is exit 1 with the rcode on stderr, no table."""
        self.resolve = FakeResolver(DNSAnswer("NXDOMAIN"))
        self.assertEqual(self.run_cli("lookup", "nothing"), 1)
        self.assertEqual(self.out.getvalue(), "")
        self.assertIn("NXDOMAIN for nothing.skydns.local. SRV", self.err.getvalue())

    def test_no_answer(self) -> None:
        """No answer from the nameserver: exit 3."""
        self.resolve = FakeResolver(LookupFailed("no answer from 127.0.0.1:8053"))
        self.assertEqual(self.run_cli("lookup", "web"), 3)

    def test_bad_dns_address(self) -> None:
        """A --dns that is not IP:PORT is a usage error."""
        self.assertEqual(self.run_cli("lookup", "web", "--dns", "nameserver.test:53"), 2)
        self.assertEqual(self.resolve.asked, [])

    def test_qualify(self) -> None:
        """Names ending in '.' are absolute; names under the domain are kept; others
        are relative to the domain."""
        self.assertEqual(qualify("example.com.", "skydns.local"), "example.com.")
        self.assertEqual(qualify("web.SkyDNS.local", "skydns.local"), "web.SkyDNS.local.")
        self.assertEqual(qualify("skydns.local", "skydns.local."), "skydns.local.")
        self.assertEqual(qualify("web.prod", "skydns.local"), "web.prod.skydns.local.")

    def test_parse_nameserver(self) -> None:
        """HOST:PORT, [V6]:PORT, bare host; localhost is 127.0.0.1; names are refused."""
        self.assertEqual(parse_nameserver("10.0.0.1:53"), ("10.0.0.1", 53))
        self.assertEqual(parse_nameserver("[::1]:8053"), ("::1", 8053))
        self.assertEqual(parse_nameserver("::1"), ("::1", 53))
        self.assertEqual(parse_nameserver("localhost:8053"), ("127.0.0.1", 8053))
        for bad in ("ns.test:53", "1.2.3.4:0", "1.2.3.4:x", "[::1", "[::1]x"):
            self.assertRaises(ValueError, parse_nameserver, bad)


class HeartbeatTests(CommandTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.register_web()

    def patches(self) -> int:
        return sum(1 for r in self.server.requests if r[0] == "PATCH")

    def test_renews_until_interrupted(self) -> None:
        """heartbeat renews at once and every interval; interrupted, it exits 0."""
        runner = self.runner()
        d = runner.run(["heartbeat", "web-1", "--ttl", "30", "--interval", "5"])
        self.assertEqual(self.patches(), 1)
        self.assertEqual(self.server.requests[-1][4], {"TTL": 30})
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.patches(), 3)
        self.assertNoResult(d)
        self.assertTrue(runner.interrupt())
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIn("web-1", self.server.services)
        self.assertEqual(self.out.getvalue().count("renewed web-1 for 30s\n"), 3)

    def test_default_interval(self) -> None:
        """Without --interval, renewals come every TTL / 3."""
        runner = self.runner()
        runner.run(["heartbeat", "web-1", "--ttl", "9"])
        self.clock.advance(2.9)
        self.assertEqual(self.patches(), 1)
        self.clock.advance(0.1)
        self.assertEqual(self.patches(), 2)
        runner.interrupt()

    def test_unregister_on_exit(self) -> None:
        """With --unregister-on-exit the instance is removed when interrupted."""
        runner = self.runner()
        d = runner.run(["heartbeat", "web-1", "--ttl", "30", "--unregister-on-exit"])
        runner.interrupt()
        self.assertEqual(self.successResultOf(d), 0)
        self.assertNotIn("web-1", self.server.services)

    def test_gone(self) -> None:
        """A renewal that finds the instance gone ends the heartbeat with exit 1."""
        runner = self.runner()
        d = runner.run(["heartbeat", "web-1", "--ttl", "30", "--interval", "5"])
        del self.server.services["web-1"]
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertIn("404", self.err.getvalue())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_retries_when_unavailable(self) -> None:
        """503s are retried after 1, 2, 4 s (at most the interval), then the schedule resumes."""
        self.server.fail_next = [503, 503, 503, 503]
        runner = self.runner()
        runner.run(["heartbeat", "web-1", "--ttl", "30", "--interval", "3"])
        times = []
        for _ in range(5):
            (call,) = self.clock.getDelayedCalls()
            times.append(call.getTime() - self.clock.seconds())  # type: ignore[misc]
            self.clock.advance(times[-1])
        self.assertEqual(times, [1, 2, 3, 3, 3])
        self.assertEqual(self.patches(), 6)
        self.assertEqual(self.err.getvalue().count("retrying"), 4)
        self.assertEqual(self.out.getvalue().count("renewed"), 2)
        runner.interrupt()

    def test_bad_ttl(self) -> None:
        """--ttl below 1 is a usage error."""
        self.assertEqual(self.run_cli("heartbeat", "web-1", "--ttl", "0"), 2)


class FormatTests(unittest.TestCase):
    def test_format_table(self) -> None:
        """Columns are as wide as their widest cell, two spaces apart, no trailing blanks."""
        self.assertEqual(format_table(("A", "LONGER"), [("xyz", None), ("", 1)]),
                         "A    LONGER\nxyz\n     1\n")


# -- end to end ---------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _skydns_process() -> Any:
    from tests.e2e.harness import SkyDNSProcess

    class TwistdProcess(SkyDNSProcess):
        """The harness's node, started with twistd itself (so --nodaemon is understood)."""

        def args(self) -> list[str]:
            args = super().args()
            launcher = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
            rest = args[args.index("--nodaemon"):] if "--nodaemon" in args else args[3:]
            return launcher + rest

    return TwistdProcess()


class EndToEndTests(unittest.TestCase):
    """`skydns` as a subprocess against a real `twistd -n skydns`."""

    node: Any = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.node = _skydns_process()
        cls.node.start()

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.node is not None:
            try:
                cls.node.stop()
            finally:
                cls.node.cleanup()

    def cli(self, *argv: str, timeout: float = 30) -> "subprocess.CompletedProcess[str]":
        env = dict(os.environ)
        env.pop("SKYDNS_SECRET", None)
        env["SKYDNS_SERVER"] = self.node.url
        return subprocess.run(
            [sys.executable, "-m", "skydns.cli", *argv], capture_output=True, text=True,
            timeout=timeout, cwd=REPO, env=env, stdin=subprocess.DEVNULL)

    def dns(self) -> list[str]:
        return ["--dns", f"127.0.0.1:{self.node.dns_port}", "--timeout", "5"]

    def test_register_find_unregister(self) -> None:
        """register, get, list, lookup (both resolvers), unregister: outputs and exit codes."""
        r = self.cli("register", "e2e-1", "--name", "web", "--environment", "production",
                     "--region", "east", "--version", "1.0.1", "--host", "10.0.0.5",
                     "--port", "8000", "--ttl", "60")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "registered e2e-1\n", ""))
        r = self.cli("register", "e2e-1", "--host", "10.0.0.5", "--port", "8000",
                     "--name", "web", "--environment", "production", "--region", "east",
                     "--version", "1", "--ttl", "60")
        self.assertEqual(r.returncode, 1)
        self.assertIn("409", r.stderr)

        r = self.cli("get", "e2e-1", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual((got["UUID"], got["Host"], got["Port"]), ("e2e-1", "10.0.0.5", 8000))

        r = self.cli("list", "web.production")
        self.assertEqual(r.returncode, 0, r.stderr)
        header, *rows = r.stdout.splitlines()
        self.assertEqual(header.split(), ["UUID", "NAME", "VERSION", "ENVIRONMENT", "REGION",
                                          "HOST", "PORT", "TTL"])
        self.assertIn(["e2e-1", "web", "1.0.1", "production", "east", "10.0.0.5", "8000"],
                      [row.split()[:7] for row in rows])

        for resolver in ("dnspython", "twisted"):
            r = self.cli("lookup", "web.production", *self.dns(), "--resolver", resolver)
            self.assertEqual(r.returncode, 0, resolver + r.stderr)
            self.assertRegex(r.stdout, r"web\.production\.skydns\.local\.\s+\d+\s+SRV\s+"
                             r"10 100 8000 e2e-1\.skydns\.local\.")
            self.assertRegex(r.stdout, r"e2e-1\.skydns\.local\.\s+\d+\s+A\s+10\.0\.0\.5")
            r = self.cli("lookup", "east.web.production", "A", *self.dns(), "--json",
                         "--resolver", resolver)
            self.assertEqual(r.returncode, 0, resolver + r.stderr)
            self.assertEqual([a["data"] for a in json.loads(r.stdout)["answer"]], ["10.0.0.5"])
            r = self.cli("lookup", "nothing.production", *self.dns(), "--resolver", resolver)
            self.assertEqual(r.returncode, 1, resolver)
            self.assertIn("NXDOMAIN", r.stderr)

        # Without --dns, lookup asks the node SKYDNS_SERVER names where it answers DNS.
        r = self.cli("lookup", "web.production", "--timeout", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("10 100 8000 e2e-1.skydns.local.", r.stdout)

        r = self.cli("regions", "--json")
        self.assertEqual((r.returncode, json.loads(r.stdout).get("east")), (0, 1))
        r = self.cli("cluster", "status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("leader", json.loads(r.stdout))

        r = self.cli("unregister", "e2e-1")
        self.assertEqual((r.returncode, r.stdout), (0, "unregistered e2e-1\n"))
        r = self.cli("get", "e2e-1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("404", r.stderr)

    def test_drain_undrain_and_rfc2782(self) -> None:
        """drain takes an instance out of DNS (NXDOMAIN), list shows it
        drained, undrain puts it back; a udp instance answers under _udp."""
        r = self.cli("register", "e2e-d", "--name", "drainme", "--environment", "production",
                     "--host", "10.0.0.7", "--port", "53", "--ttl", "60", "--protocol", "udp")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cli("lookup", "_drainme._udp.production", *self.dns())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"10 100 53 e2e-d\.skydns\.local\.")
        self.assertEqual(self.cli("lookup", "_drainme._tcp.production", *self.dns()).returncode,
                         1)  # fmt: skip
        r = self.cli("drain", "e2e-d")
        self.assertEqual((r.returncode, r.stdout), (0, "drained e2e-d\n"), r.stderr)
        r = self.cli("lookup", "drainme.production", *self.dns())
        self.assertEqual(r.returncode, 1)
        self.assertIn("NXDOMAIN", r.stderr)
        r = self.cli("list", "drainme.production")
        self.assertEqual(r.stdout.splitlines()[0].split()[-1], "DNS")
        self.assertEqual(r.stdout.splitlines()[1].split()[-1], "drained")
        self.assertTrue(json.loads(self.cli("get", "e2e-d", "--json").stdout)["Drain"])
        r = self.cli("undrain", "e2e-d")
        self.assertEqual((r.returncode, r.stdout), (0, "undrained e2e-d\n"), r.stderr)
        self.assertEqual(self.cli("lookup", "drainme.production", *self.dns()).returncode, 0)
        self.cli("unregister", "e2e-d")

    def test_usage_and_unreachable(self) -> None:
        """Exit 2 for usage errors and 3 when nothing listens at --server."""
        self.assertEqual(self.cli("get").returncode, 2)
        from tests.e2e.harness import free_port

        r = self.cli("--server", f"http://127.0.0.1:{free_port()}", "list")
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot reach", r.stderr)

    def test_heartbeat_until_sigterm(self) -> None:
        """heartbeat renews until SIGTERM, then unregisters (if asked) and exits 0."""
        r = self.cli("register", "e2e-hb", "--name", "hb", "--environment", "production",
                     "--region", "east", "--version", "1", "--host", "10.0.0.9",
                     "--port", "1", "--ttl", "60")
        self.assertEqual(r.returncode, 0, r.stderr)
        env = dict(os.environ, SKYDNS_SERVER=self.node.url)
        env.pop("SKYDNS_SECRET", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "skydns.cli", "heartbeat", "e2e-hb", "--ttl", "60",
             "--interval", "0.2", "--unregister-on-exit"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(2)]
            self.assertEqual(lines, ["renewed e2e-hb for 60s\n"] * 2)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertTrue(out.endswith("unregistered e2e-hb\n"), out)
        self.assertEqual(self.cli("get", "e2e-hb").returncode, 1)

    def test_example_service(self) -> None:
        """examples/example_service.py stays registered past its TTL and unregisters on SIGTERM."""
        import time

        from tests.e2e.harness import free_port, http

        port = free_port()
        url = self.node.url + "/skydns/services/example-1"
        proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "examples", "example_service.py"),
             "--port", str(port), "--skydns", self.node.url, "--uuid", "example-1",
             "--ttl", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "SKYDNS_SECRET"})
        try:
            deadline = time.monotonic() + 15
            while http("GET", url)[0] != 200:
                self.assertLess(time.monotonic(), deadline, "example never registered")
                self.assertIsNone(proc.poll(), "example exited")
                time.sleep(0.05)
            registered = time.monotonic()
            self.assertEqual(http("GET", f"http://127.0.0.1:{port}/"), (200, "hello\n"))
            while time.monotonic() < registered + 3:  # longer than the TTL: renewals work
                self.assertEqual(http("GET", url)[0], 200)
                time.sleep(0.25)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(http("GET", url)[0], 404)


class DNSSECCommandTests(SynchronousTestCase):
    def test_keygen_then_ds(self) -> None:
        """skydns dnssec keygen writes BIND's pair of files and prints their
        prefix and DS; skydns dnssec ds prints the same DS from the files."""
        import tempfile

        directory = tempfile.mkdtemp(prefix="skydns-cli-keys-")
        out = io.StringIO()
        runner = Runner(out=out, err=io.StringIO(), environ={})
        code = self.successResultOf(runner.run(["dnssec", "keygen", "--algorithm", "ed25519",
                                                "--domain", "example.internal",
                                                "--dir", directory]))  # fmt: skip
        self.assertEqual(code, 0)
        base, ds = out.getvalue().splitlines()
        self.assertTrue(base.startswith(directory + "/Kexample.internal.+015+"))
        self.assertRegex(ds, r"^example\.internal\. IN DS \d+ 15 2 [0-9A-F]{64}$")
        out2 = io.StringIO()
        runner = Runner(out=out2, err=io.StringIO(), environ={})
        self.assertEqual(self.successResultOf(runner.run(
            ["dnssec", "ds", base + ".private", "--domain", "example.internal"])), 0)
        self.assertEqual(out2.getvalue().strip(), ds)
        out3 = io.StringIO()
        runner = Runner(out=out3, err=io.StringIO(), environ={})
        self.assertEqual(self.successResultOf(runner.run(
            ["dnssec", "ds", base + ".private", "--domain", "example.internal",
             "--reverse-zone", "0.10.IN-ADDR.ARPA."])), 0)  # fmt: skip
        first, reverse = out3.getvalue().splitlines()
        self.assertEqual(first, ds)
        self.assertEqual(reverse.split()[:4], ["0.10.in-addr.arpa.", "IN", "DS", ds.split()[3]])
        err = io.StringIO()
        runner = Runner(out=io.StringIO(), err=err, environ={})
        self.assertEqual(self.successResultOf(runner.run(
            ["dnssec", "ds", base + ".private", "--domain", "example.internal",
             "--reverse-zone", "example.org"])), 2)  # fmt: skip
        self.assertIn("reverse zone", err.getvalue())
        err = io.StringIO()
        runner = Runner(out=io.StringIO(), err=err, environ={})
        self.assertEqual(self.successResultOf(runner.run(["dnssec", "ds", "/nonexistent"])), 2)
        self.assertIn("cannot read", err.getvalue())
