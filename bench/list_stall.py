"""DNS latency while clients list a big registry over HTTP.

One ``twistd skydns`` node (loopback, fsync on) is given ``--instances``
services, then a DNS client asks for one SRV name every 10 ms (answered
from the cache: what is measured is whether the reactor is free to answer)
while ``--listers`` HTTP clients (``curl``, each its own process) fetch
``GET /skydns/services/`` (every instance) again and again.  Prints DNS
p50/p99/max latency, and the listing time, for this tree and, with
``--before DIR``, for another tree, interleaved (``--runs`` rounds).

    python bench/list_stall.py [--instances 100000] [--listers 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.harness import SkyDNSProcess, dns_query, http  # noqa: E402


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def fill(node: SkyDNSProcess, count: int) -> None:
    def put(n: int) -> int:
        body = {"Name": f"svc{n % 100}", "Environment": "prod", "Region": "east",
                "Version": "1", "Host": "127.0.0.9", "Port": 80, "TTL": 3600}  # fmt: skip
        return http("PUT", f"{node.url}/skydns/services/i{n}", body, timeout=30.0)[0]

    with ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(put, range(count)))
    bad = [c for c in codes if c != 201]
    if bad:
        raise SystemExit(f"{len(bad)} registrations failed: {bad[:5]}")


def dns_latencies(node: SkyDNSProcess, seconds: float) -> list[float]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        dns_query("svc7.prod.skydns.local", "SRV", node.dns_port, timeout=5.0)
        samples.append(time.monotonic() - started)
        time.sleep(max(0.0, 0.01 - (time.monotonic() - started)))
    return samples


def measure(tree: str | None, args: Any) -> dict[str, float]:
    saved = os.environ.get("PYTHONPATH")
    if tree is not None:
        os.environ["PYTHONPATH"] = tree + (os.pathsep + saved if saved else "")
    node = SkyDNSProcess()
    try:
        node.start()
    finally:
        if tree is not None:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    try:
        fill(node, args.instances)
        quiet = dns_latencies(node, 3.0)
        stop = threading.Event()
        listings: list[float] = []

        def lister() -> None:
            # curl in its own process: a Python thread reading 23 MB would
            # hold the GIL the DNS client in this process needs, and the
            # client's own delays would be counted as the server's.
            while not stop.is_set():
                started = time.monotonic()
                subprocess.run(["curl", "-sf", "-o", "/dev/null", f"{node.url}/skydns/services/"],
                               check=False, timeout=120)  # fmt: skip
                listings.append(time.monotonic() - started)

        threads = [threading.Thread(target=lister, daemon=True) for _ in range(args.listers)]
        for thread in threads:
            thread.start()
        busy = dns_latencies(node, args.seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
        return {
            "quiet_p99": percentile(quiet, 0.99) * 1000,
            "p50": statistics.median(busy) * 1000,
            "p99": percentile(busy, 0.99) * 1000,
            "max": max(busy) * 1000,
            "listing": statistics.median(listings) if listings else float("nan"),
            "listings": len(listings),
        }
    finally:
        node.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--listers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--before", help="a tree with skydns/ to compare with, interleaved")
    parser.add_argument("--runs", type=int, default=1, help="rounds (medians are printed)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    trees: list[tuple[str, str | None]] = [("this tree", None)]
    if args.before:
        trees.insert(0, ("before", os.path.abspath(args.before)))
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    for _ in range(args.runs):
        for label, tree in trees:
            r = measure(tree, args)
            results[label].append(r)
            print(
                f"{label:10} DNS p99 quiet {r['quiet_p99']:6.1f} ms; while {args.listers} "
                f"clients list {args.instances}: p50 {r['p50']:6.1f} ms, p99 {r['p99']:7.1f} ms, "
                f"max {r['max']:7.1f} ms; a listing takes {r['listing']:.2f} s "
                f"({r['listings']:.0f} done)",
                flush=True,
            )
    if args.runs > 1:
        for label, runs in results.items():
            median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{label:10} medians of {args.runs}: p50 {median['p50']:.1f} ms, "
                  f"p99 {median['p99']:.1f} ms, max {median['max']:.1f} ms, "
                  f"listing {median['listing']:.2f} s")  # fmt: skip
    print(f"load average (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
