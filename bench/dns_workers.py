"""DNS on every core (``--dns-workers``): queries per second of one SkyDNS
node alone and with workers, nsd with as many server processes beside it.

Every server runs unpinned (it may use every core) and so does dnsperf,
with ``--clients`` sockets (SO_REUSEPORT spreads clients by address and
port, so one socket would reach one process).  The workloads are
``bench/dns_qps.py``'s cached ones (``srv``, ``a``; ``--instances``
registered over the HTTP API).  Runs are interleaved: each run starts a
fresh server of each configuration in turn and measures every workload
once; the table gives medians and each SkyDNS configuration's ratio to
SkyDNS alone and to nsd with the same number of processes.  On a machine
with few cores dnsperf competes with the servers: say how many there were.

    python bench/dns_workers.py [--workers 1] [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns_qps  # noqa: E402  (this directory's module)


def dnsperf(port: int, datafile: str, seconds: int, clients: int, outstanding: int) -> float:
    """Queries per second dnsperf reached (``clients`` sockets, unpinned)."""
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile, "-l", str(seconds),
            "-q", str(outstanding), "-c", str(clients), "-T", "1", "-t", "2"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"dnsperf printed no rate:\n{out}")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if lost is not None and int(lost.group(1)) > 0:
        print(f"  (dnsperf lost {lost.group(1)} queries)", file=sys.stderr)
    return float(match.group(1))


def freshness(sky: dns_qps.SkyDNS, count: int = 50, sockets: int = 16) -> list[float]:
    """Milliseconds from a registration's answer (the node has applied it)
    until ``sockets`` questions from new sockets (spread over the node and
    its workers) all find the new name, for ``count`` registrations."""
    import time

    import dns.message
    import dns.query

    delays = []
    for n in range(count):
        uuid = f"fresh{n}"
        status = sky._request("PUT", f"/skydns/services/{uuid}", {
            "Name": "fresh", "Environment": "bench", "Host": "10.9.0.1", "Port": 80, "TTL": 600})
        assert status == 201, status
        started = time.monotonic()
        query = dns.message.make_query(f"{uuid}.{dns_qps.DOMAIN}", "A")
        for _ in range(sockets):
            while not dns.query.udp(query, "127.0.0.1", port=sky.port, timeout=2).answer:
                pass
        delays.append((time.monotonic() - started) * 1000)
    return delays


def server(kind: str, workers: int, directory: str, services: list[dict[str, Any]],
           zone: str) -> dns_qps.Server:  # fmt: skip
    if kind == "skydns":
        sky = dns_qps.SkyDNS(directory, services, 0.0)
        sky.pin = False
        sky.extra = ["--dns-workers", str(workers)] if workers else []
        return sky
    nsd = dns_qps.NSD(directory, zone)
    nsd.pin = False
    nsd.servers = workers + 1
    return nsd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="workers beside the node")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    args = parser.parse_args()
    for tool in ("dnsperf", "nsd"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    load_before = os.getloadavg()[0]
    top = tempfile.mkdtemp(prefix="dns-workers-")
    services = dns_qps.instances(args.instances)
    zone = dns_qps.zone_text(services)
    files = dns_qps.query_files(top, services)
    configs = [("skydns", 0), ("skydns", args.workers), ("nsd", 0), ("nsd", args.workers)]
    results: dict[tuple[str, int, str], list[float]] = {}
    stale: dict[int, list[float]] = {}
    try:
        for run in range(args.runs):
            for kind, workers in configs:
                directory = os.path.join(top, f"{kind}{workers}-{run}")
                os.makedirs(directory)
                running = server(kind, workers, directory, services, zone)
                running.start()
                try:
                    for workload in ("srv", "a"):
                        dnsperf(running.port, files[workload], 1, args.clients,
                                args.outstanding)  # warm up (and start every worker's cache)
                        qps = dnsperf(running.port, files[workload], args.seconds,
                                      args.clients, args.outstanding)  # fmt: skip
                        results.setdefault((kind, workers, workload), []).append(qps)
                    if kind == "skydns":
                        stale.setdefault(workers, []).extend(freshness(running))  # type: ignore[arg-type]
                finally:
                    running.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print(f"\nmedian of {args.runs} interleaved runs, {args.seconds} s each; "
          f"{os.cpu_count()} cores; load before {load_before:.2f}, "
          f"after {os.getloadavg()[0]:.2f}; dnsperf -c {args.clients} -q {args.outstanding}\n")
    print(f"{'workload':8} {'server':22} {'q/s':>9} {'vs alone':>9} {'vs nsd':>7}")
    for workload in ("srv", "a"):
        alone = statistics.median(results[("skydns", 0, workload)])
        for kind, workers in configs:
            qps = statistics.median(results[(kind, workers, workload)])
            label = (f"skydns +{workers} workers" if kind == "skydns" and workers else
                     f"nsd {workers + 1} servers" if kind == "nsd" else "skydns alone")
            nsd = statistics.median(results[("nsd", workers, workload)])
            ratio = f"{qps / alone:9.2f}" if kind == "skydns" else " " * 9
            versus = f"{qps / nsd:7.2f}" if kind == "skydns" else ""
            print(f"{workload:8} {label:22} {qps:9.0f} {ratio} {versus}")
    print("\nfrom a registration's answer until 16 new sockets all find it (ms):")
    for workers, delays in sorted(stale.items()):
        delays.sort()
        print(f"  skydns +{workers} workers: median {statistics.median(delays):.1f}, "
              f"p99 {delays[int(len(delays) * 0.99) - 1]:.1f}, max {delays[-1]:.1f} "
              f"({len(delays)} registrations; 16 queries take time of their own)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
