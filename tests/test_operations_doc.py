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
    def test_systemd_accepts_the_units(self) -> None:
        """systemd-analyze verify passes skydns.service and skydns.socket
        (with ExecStart pointed at this twistd), and rates the service's
        exposure below 2.0 ("OK")."""
        import shutil
        import subprocess
        import sys

        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        directory = self.mktemp()
        os.makedirs(directory)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        with open(os.path.join(directory, "skydns.service"), "w") as f:
            f.write(read("skydns.service").replace("/opt/skydns/bin/twistd", twistd))
        with open(os.path.join(directory, "skydns.socket"), "w") as f:
            f.write(read("skydns.socket"))
        verified = subprocess.run([analyze, "verify", "skydns.service", "skydns.socket"],
                                  cwd=directory, capture_output=True, text=True, timeout=60)
        self.assertEqual((verified.returncode, verified.stderr), (0, ""))
        rated = subprocess.run([analyze, "security", "--offline=true", "./skydns.service"],
                               cwd=directory, capture_output=True, text=True, timeout=60)
        score = re.search(r"Overall exposure level for skydns.service: ([0-9.]+)", rated.stdout)
        if score is None:
            self.skipTest(f"this systemd-analyze cannot rate a unit offline: {rated.stderr}")
        self.assertLess(float(score.group(1)), 2.0)

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
        """The example's SkyDNS options, with its settings file
        (docs/skydns.toml), are accepted by `twistd skydns`."""
        args = exec_start()
        args = args[args.index("skydns") + 1 :]
        key = self.mktemp()
        with open(key, "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        settings = self.mktemp()
        with open(settings, "w") as f:
            f.write(read("skydns.toml").replace("/etc/skydns/cluster.key", key))
        self.assertEqual(args, ["--config", "/etc/skydns/skydns.toml"])
        args = ["--config", settings]
        options = Options()
        options.parseOptions(args + ["--nameserver", "192.0.2.53:53"])
        self.assertEqual(options["cluster-key"], b"0123456789abcdef0123456789abcdef")
        self.assertEqual(options["node-id"], "n1")
        self.assertEqual([p.node_id for p in options["peers"]], ["n1", "n2", "n3"])
