"""The walkthroughs of docs/quickstart.md, docs/cluster.md and
docs/membership.md, run as written, so the docs cannot drift from the product.

A code block preceded by a ``<!-- walkthrough ... -->`` comment is one step;
the steps of a page run in order in one bash session (variables and shell
functions carry over), with ``twistd`` and ``skydns`` from this environment
on the PATH.  Directives, separated by ``;``:

- ``background``: start the block and go on (a server in the foreground);
- ``wait URL...``: after the block, each URL answers 200 within 30 s;
- ``expect TEXT``: the block's output contains TEXT;
- ``name NAME``: another page may run it first with ``after PAGE#NAME``.

The session runs in network and PID namespaces of its own (``unshare``):
the pages' own ports (8080, 8081, ...) are free there, no packet can leave
loopback, and every process it started dies with it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from attrs import frozen
from twisted.trial.unittest import SynchronousTestCase

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "docs")
#: A walkthrough comment and the code block after it (indented or fenced).
_STEP = re.compile(
    r"<!-- walkthrough(?::(?P<directives>.*?))? -->\n\n"
    r"(?:```\n(?P<fenced>.*?)\n```|(?P<indented>(?:    [^\n]*\n|\n(?=    ))+))",
    re.S,
)
WAIT_SECONDS = 30


@frozen
class Step:
    page: str
    code: str
    directives: tuple[tuple[str, str], ...]

    def values(self, key: str) -> list[str]:
        return [value for name, value in self.directives if name == key]


def steps(page: str) -> list[Step]:
    """The walkthrough steps of ``docs/<page>``, in order."""
    with open(os.path.join(DOCS, page)) as f:
        text = f.read()
    found = []
    for match in _STEP.finditer(text):
        code = match.group("fenced")
        if code is None:
            code = "\n".join(line[4:] for line in match.group("indented").splitlines())
        directives = []
        for part in (match.group("directives") or "").split(";"):
            name, _, value = part.strip().partition(" ")
            if name:
                directives.append((name, value.strip()))
        found.append(Step(page, code.strip() + "\n", tuple(directives)))
    return found


def script(page: str) -> str:
    """The bash script that runs the steps of ``page`` (and the steps of
    other pages they name with ``after``), checking each."""
    lines = ["set -u", "fail() { echo \"WALKTHROUGH FAILED: $*\"; exit 1; }"]
    for number, step in enumerate(_with_prerequisites(page)):
        label = f"{step.page} step {number}"
        out = f"step{number}.out"
        lines.append(f"echo '### {label}'")
        if ("background", "") in step.directives:
            lines.append(f"{{\n{step.code}}} > {out} 2>&1 &")
        else:
            lines.append(f"{{\n{step.code}}} > {out} 2>&1 || "
                         f"{{ status=$?; cat {out}; fail {shlex.quote(label)} exited $status; }}")
            lines.append(f"cat {out}")
        for url in " ".join(step.values("wait")).split():
            lines.append(
                f"for i in $(seq {WAIT_SECONDS * 5}); do curl -sf -o /dev/null {url} && break; "
                f"sleep 0.2; done; curl -sf -o /dev/null {url} || "
                f"{{ cat {out} *.log 2>/dev/null | tail -50; fail {shlex.quote(label)}: {url}; }}"
            )
        for text in step.values("expect"):
            lines.append(f"grep -qF -- {shlex.quote(text)} {out} || "
                         f"fail {shlex.quote(label)}: no {shlex.quote(text)}")  # fmt: skip
    lines.append("echo 'WALKTHROUGH PASSED'")
    return "\n".join(lines) + "\n"


def _with_prerequisites(page: str) -> list[Step]:
    own = steps(page)
    before: list[Step] = []
    for step in own:
        for reference in step.values("after"):
            other, _, name = reference.partition("#")
            before += [s for s in steps(other) if name in s.values("name")]
    return before + own


class WalkthroughTests(SynchronousTestCase):
    def run_page(self, page: str) -> None:
        missing = [tool for tool in ("unshare", "ip", "curl", "dig") if shutil.which(tool) is None]
        if missing:
            self.skipTest(f"needs {', '.join(missing)} (Debian: util-linux, iproute2, curl, "
                          "bind9-dnsutils)")  # fmt: skip
        if os.getuid() != 0:
            self.skipTest("needs root to make network and PID namespaces (unshare)")
        workdir = tempfile.mkdtemp(prefix="skydns-walkthrough-")
        self.addCleanup(shutil.rmtree, workdir, True)
        with open(os.path.join(workdir, "walkthrough.sh"), "w") as f:
            f.write(script(page))
        env: dict[str, Any] = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.pop("SKYDNS_SECRET", None)
        env.pop("SKYDNS_SERVER", None)
        # Forwarding, should a page ask an outside name, goes to loopback.
        with open(os.path.join(workdir, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        env["SKYDNS_RESOLV_CONF"] = os.path.join(workdir, "resolv.conf")
        result = subprocess.run(
            ["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c",
             "ip link set lo up && exec bash walkthrough.sh"],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        output = result.stdout + result.stderr
        if "Operation not permitted" in output and "WALKTHROUGH" not in output:
            self.skipTest(f"cannot make namespaces here: {output.strip()[:200]}")
        self.assertIn("WALKTHROUGH PASSED", output, output[-6000:])

    def test_quickstart(self) -> None:
        self.assertGreaterEqual(len(steps("quickstart.md")), 6)
        self.run_page("quickstart.md")

    def test_cluster(self) -> None:
        self.assertGreaterEqual(len(steps("cluster.md")), 5)
        self.run_page("cluster.md")

    def test_membership(self) -> None:
        self.assertGreaterEqual(len(steps("membership.md")), 2)
        self.run_page("membership.md")
