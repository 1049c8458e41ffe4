"""Interleaved before/after comparison of write throughput and CPU per write.

On a shared machine the speed of the CPU changes from one minute to the
next, so two runs of ``bench/raft_write.py`` an hour apart compare the
machine as much as the code.  This script alternates between two code
trees, a fresh 3-node cluster (fsync on) for each, and prints the medians:

    git worktree add /tmp/before <commit>
    python bench/raft_ab.py --before /tmp/before [--rounds 4] [--seconds 5]

Each round, for each tree: 64 clients register via the leader for
``--seconds``, then renew those instances for ``--seconds`` - 1.  Printed per
run and as medians: writes per second, p99 of each, and the CPU each process
spent per write (the load generator's is a gauge of how fast the machine was).
``--before`` is a directory holding ``skydns/`` and ``twisted/plugins/`` (a
worktree or ``git archive`` of the other commit); it is put first on the
nodes' ``PYTHONPATH``.  The "after" tree is this checkout.

Only loopback addresses are used; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from raft_write import BODY, Cluster, CPUMeter, load, percentile, register_body  # noqa: E402

#: Figure name -> how it is printed.
FIGURES = {
    "register/s": "{:.0f}", "p99 ms": "{:.0f}", "leader ms": "{:.3f}",
    "follower ms": "{:.3f}", "loadgen ms": "{:.3f}", "renew/s": "{:.0f}",
    "renew p99 ms": "{:.0f}", "leader ms/renew": "{:.3f}",
}  # fmt: skip


def one_run(root: str, seconds: float) -> dict[str, float]:
    cluster = Cluster(tempfile.mkdtemp(prefix="ab-", dir=root))
    cluster.start()
    try:
        leader = cluster.leader()
        paths = [f"/skydns/services/ab{i}" for i in range(1_000_000)]
        meter = CPUMeter(cluster, leader)
        ok, _, lat, elapsed = asyncio.run(
            load(leader.http_port, 64, seconds, "PUT", paths, register_body)
        )
        spent = [b - a for a, b in zip(meter.start, meter.now(), strict=True)]
        renew = [f"/skydns/services/ab{i % max(ok, 1)}" for i in range(1_000_000)]
        meter = CPUMeter(cluster, leader)
        renewed, _, renew_lat, renew_elapsed = asyncio.run(
            load(leader.http_port, 64, max(1.0, seconds - 1), "PATCH", renew, {"TTL": BODY["TTL"]})
        )
        renew_spent = [b - a for a, b in zip(meter.start, meter.now(), strict=True)]
    finally:
        cluster.stop()
    per = 1e3 / max(ok, 1)
    return {
        "register/s": ok / elapsed, "p99 ms": percentile(lat, 0.99) * 1e3 if lat else 0.0,
        "leader ms": spent[0] * per, "follower ms": spent[1] * per, "loadgen ms": spent[-1] * per,
        "renew/s": renewed / renew_elapsed,
        "renew p99 ms": percentile(renew_lat, 0.99) * 1e3 if renew_lat else 0.0,
        "leader ms/renew": renew_spent[0] * 1e3 / max(renewed, 1),
    }  # fmt: skip


def show(label: str, figures: dict[str, float]) -> None:
    text = "  ".join(f"{name} {FIGURES[name].format(value)}" for name, value in figures.items())
    print(f"{label:<8} {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="directory with the other code tree")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.before, "skydns")):
        parser.error(f"--before: {args.before} holds no skydns/ directory")
    # Each tree goes first on the nodes' PYTHONPATH, and the nodes run away
    # from this checkout: ``python -c`` puts the working directory before
    # PYTHONPATH on sys.path, so run from here they would all import this tree.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"before": os.path.abspath(args.before), "after": here}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    saved = os.environ.get("PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="skydns-ab-") as root:
        os.chdir(root)
        for _ in range(args.rounds):
            for name, tree in trees.items():
                os.environ["PYTHONPATH"] = tree + (os.pathsep + saved if saved else "")
                figures = one_run(root, args.seconds)
                results[name].append(figures)
                show(name, figures)
    for name, runs in results.items():
        show(f"median {name}", {f: statistics.median(r[f] for r in runs) for f in FIGURES})


if __name__ == "__main__":
    main()
