"""Two nodes joining a running one at the same moment, under CPU load (issue 26).

    python bench/joins.py [--repetitions 20] [--load 2]

Each repetition starts one ``twistd skydns`` node, then two more with
``--join`` at once, while ``--load`` busy processes keep the CPUs loaded;
it measures how long until both are voters (as the first node's
``GET /skydns/cluster`` shows them), then writes through each joiner and
checks that the other has the write.  Prints one line per repetition and
the worst time; exits 1 if any repetition took over 5 s or lost a write.
Only loopback addresses are used; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.harness import SkyDNSProcess, http  # noqa: E402

BODY = {"Name": "join", "Environment": "bench", "Host": "127.0.0.20", "Port": 80, "TTL": 600}


def roles(node: SkyDNSProcess) -> dict[str, str]:
    try:
        status, body = http("GET", node.url + "/skydns/cluster", timeout=2.0)
    except OSError:
        return {}
    return {m["id"]: m["role"] for m in body["members"]} if status == 200 else {}


def repetition(number: int) -> tuple[float, bool]:
    nodes: list[SkyDNSProcess] = []
    try:
        first = SkyDNSProcess(node_id="n1")
        nodes.append(first)
        first.start().wait_for("/ready", 30.0)
        join = ["--join", f"127.0.0.1:{first.raft_port}"]
        joiners = [SkyDNSProcess(node_id=i, extra_args=join) for i in ("n2", "n3")]
        nodes += joiners
        began = time.monotonic()
        for node in joiners:
            node.start(wait=False)
        took = float("inf")
        while time.monotonic() - began < 30.0:
            seen = roles(first)
            if set(seen) == {"n1", "n2", "n3"} and "learner" not in seen.values():
                took = time.monotonic() - began
                break
            time.sleep(0.02)
        replicated = True
        for node in joiners:
            node.wait_for("/ready", 30.0)
        for n, (writer, reader) in enumerate(((joiners[0], joiners[1]), (joiners[1], joiners[0]))):
            status, _ = http("PUT", f"{writer.url}/skydns/services/r{number}-{n}", BODY)
            if status != 201:
                replicated = False
                continue
            deadline = time.monotonic() + 10.0
            while http("GET", f"{reader.url}/skydns/services/r{number}-{n}")[0] != 200:
                if time.monotonic() > deadline:
                    replicated = False
                    break
                time.sleep(0.02)
        return took, replicated
    finally:
        for node in nodes:
            try:
                node.stop()
            except AssertionError:
                node.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2,
                        help="busy processes loading the CPUs meanwhile")
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]  # fmt: skip
    print(f"{args.load} busy processes on {os.cpu_count()} CPUs", flush=True)
    results = []
    try:
        for number in range(args.repetitions):
            took, replicated = repetition(number)
            results.append((took, replicated))
            print(f"  repetition {number}: both voters after {took:.2f} s, writes through "
                  f"each reached the other: {'yes' if replicated else 'NO'}", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    times = [t for t, _ in results]
    bad = [r for r in results if r[0] > 5.0 or not r[1]]
    print(f"{len(results)} repetitions: median {statistics.median(times):.2f} s, worst "
          f"{max(times):.2f} s; {len(bad)} over 5 s or with a write not replicated")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
