"""docs/operations.md and docs/skydns.service stay true to `twistd skydns`:
every option is documented, and the example unit's command line parses."""

from __future__ import annotations

import os
import re
import shlex

from twisted.trial.unittest import SynchronousTestCase

from skydns.tap import Options

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs")


def read(name: str) -> str:
    with open(os.path.join(DOCS, name)) as f:
        return f.read()


def option_names() -> set[str]:
    names = {str(p[0]) for p in Options.optParameters} | {str(f[0]) for f in Options.optFlags}
    return names - {"help", "version"}


def exec_start() -> list[str]:
    """The unit's ExecStart command line, continuation lines joined."""
    text = read("skydns.service").replace("\\\n", " ")
    [line] = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    return shlex.split(line[len("ExecStart="):])


class OperationsDocTests(SynchronousTestCase):
    def test_every_option_documented(self) -> None:
        """Each `twistd skydns` option has a row in the options table."""
        documented = set(re.findall(r"^\| `--([a-z-]+)", read("operations.md"), re.M))
        missing = option_names() - documented
        self.assertEqual(missing, set(), "options missing from docs/operations.md")


class SystemdUnitTests(SynchronousTestCase):
    def test_unit_runs_in_foreground_without_pidfile(self) -> None:
        args = exec_start()
        self.assertTrue(args[0].endswith("twistd"))
        skydns = args.index("skydns")
        self.assertEqual(set(args[1:skydns]), {"--nodaemon", "--pidfile="})
        unit = read("skydns.service")
        for setting in ["Type=simple", "Restart=on-failure", "KillSignal=SIGTERM",
                        "AmbientCapabilities=CAP_NET_BIND_SERVICE", "LimitNOFILE="]:  # fmt: skip
            self.assertIn("\n" + setting, unit)

    def test_unit_options_parse(self) -> None:
        """The example's SkyDNS options are accepted by `twistd skydns`."""
        args = exec_start()
        args = args[args.index("skydns") + 1 :]
        if "log-format" not in option_names():
            self.skipTest("tap.py has no --log-format option yet")
        key = self.mktemp()
        with open(key, "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        args = [key if a == "/etc/skydns/cluster.key" else a for a in args]
        options = Options()
        options.parseOptions(args + ["--nameserver", "192.0.2.53:53"])
        self.assertEqual(options["cluster-key"], b"0123456789abcdef0123456789abcdef")
        self.assertEqual(options["node-id"], "n1")
        self.assertEqual([p.node_id for p in options["peers"]], ["n1", "n2", "n3"])
