"""The shape of the code: no import circles among SkyDNS's modules, Raft as a
library that knows nothing of the registry, and modules small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "skydns"
#: The longest a module may be.
MAX_LINES = 400

#: What the Raft library may not import: the registry and what is built on it.
NOT_FOR_RAFT = ("skydns.registry", "skydns.commands", "skydns.names", "skydns.patterns",
                "skydns.bodies", "skydns.presentation", "skydns.audit", "skydns.cluster",
                "skydns.store", "skydns.http", "skydns.dns", "skydns.tap")  # fmt: skip


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every SkyDNS module ``path`` imports, anywhere in it (under
    ``TYPE_CHECKING`` and inside functions too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in known else node.module for n in names]
        else:
            continue
        out |= {n for n in names if n in known}
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


class ArchitectureTests(SynchronousTestCase):
    def test_no_import_circles(self) -> None:
        """No SkyDNS module imports, directly or not, one that imports it
        back, counting imports under TYPE_CHECKING and inside functions."""
        self.assertEqual(cycles(graph()), [])

    def test_the_checker_finds_a_circle(self) -> None:
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}),
                         [["a", "b", "c"]])  # fmt: skip

    def test_raft_is_a_library(self) -> None:
        """Nothing in skydns.raft imports the registry, its commands, names,
        or anything built on them: it replicates any IStateMachine."""
        bad = {
            (name, target)
            for name, targets in graph().items()
            if name.startswith("skydns.raft")
            for target in targets
            if target.startswith(NOT_FOR_RAFT)
        }
        self.assertEqual(bad, set())

    def test_modules_are_small_enough_to_read(self) -> None:
        """No module under skydns/ is over 400 lines: one past that does two
        jobs, or tells a story that belongs in docs/."""
        long = {
            name: count
            for name, path in modules().items()
            if (count := len(path.read_text().splitlines())) > MAX_LINES
        }
        self.assertEqual(long, {})
