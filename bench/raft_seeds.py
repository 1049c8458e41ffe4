"""Run every simulated scenario family over many seeds and summarize.

    python bench/raft_seeds.py                      # every scenario, 200 seeds each
    python bench/raft_seeds.py --seeds 5000 --scenario nemesis --jobs 2
    python bench/raft_seeds.py --start 100000 --seeds 200

The scenarios (``tests/raft/scenarios.py``) run real nodes over a simulated
disk and network.  Prints, per scenario: seeds run, simulation events,
faults injected (by kind with --verbose), client operations checked, and
violations.  Each failing seed is listed with the command that replays it
alone.  Exits 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.raft.invariants import SafetyViolation  # noqa: E402
from tests.raft.scenarios import SCENARIOS  # noqa: E402


def _quiet() -> None:
    """Until logging begins, Twisted writes critical events (a node finding
    its log damaged, which scenarios do on purpose) to the stderr it saw at
    import: begin logging to nowhere instead (the world still observes)."""
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([lambda event: None], discardBuffer=True,
                                     redirectStandardIO=False)  # fmt: skip


def run_one(job: tuple[str, int]) -> tuple[str, int, int, Counter[str], int, str | None, bool]:
    name, seed = job
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the nodes' own log lines
            run = SCENARIOS[name](seed)
    except SafetyViolation as e:
        return name, seed, 0, Counter(), 0, f"SAFETY: {e}", True
    except Exception as e:  # a liveness expectation, or a crash of the core
        return name, seed, 0, Counter(), 0, f"{type(e).__name__}: {e}", False
    return name, seed, run.events, run.faults, run.operations, None, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds per scenario")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--verbose", action="store_true", help="faults by kind")
    args = parser.parse_args()
    names = args.scenario or list(SCENARIOS)
    jobs = [(n, s) for n in names for s in range(args.start, args.start + args.seeds)]
    began = time.monotonic()
    totals: dict[str, dict[str, int]] = {
        n: {"seeds": 0, "steps": 0, "faults": 0, "ops": 0, "violations": 0, "failures": 0}
        for n in names
    }
    faults: dict[str, Counter[str]] = {n: Counter() for n in names}
    failed: list[tuple[str, int, str]] = []
    with ProcessPoolExecutor(args.jobs, initializer=_quiet) as pool:
        for name, seed, steps, fault, ops, error, safety in pool.map(run_one, jobs, chunksize=4):
            t = totals[name]
            t["seeds"] += 1
            t["steps"] += steps
            t["faults"] += sum(fault.values())
            t["ops"] += ops
            faults[name].update(fault)
            if error is not None:
                t["violations" if safety else "failures"] += 1
                failed.append((name, seed, error))
    print(
        f"{'scenario':30} {'seeds':>6} {'events':>11} {'faults':>9} {'ops':>8}"
        f" {'viol':>5} {'fail':>5}"
    )
    for name, t in totals.items():
        print(
            f"{name:30} {t['seeds']:>6} {t['steps']:>11} {t['faults']:>9} {t['ops']:>8}"
            f" {t['violations']:>5} {t['failures']:>5}"
        )
        if args.verbose:
            for kind, count in sorted(faults[name].items()):
                print(f"    {kind:34} {count}")
    seeds = sum(t["seeds"] for t in totals.values())
    steps = sum(t["steps"] for t in totals.values())
    injected = sum(t["faults"] for t in totals.values())
    violations = sum(t["violations"] for t in totals.values())
    print(
        f"\n{seeds} seeds, {steps} events, {injected} faults injected, {violations} safety"
        f" violations, {len(failed) - violations} other failures"
        f" in {time.monotonic() - began:.0f}s"
    )
    for name, seed, error in failed:
        print(f"\n{name} seed {seed}: {error[:500]}")
        print(
            f"  re-run: SKYDNS_SEED={seed} python -m pytest tests/raft/test_scenarios.py"
            f" -k test_{name}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
