"""DNS on every core (``--dns-workers``): queries per second of SkyDNS
answering with 1, 2, ... processes (the node, and the node with workers),
and of nsd with as many server processes.

Every server runs unpinned (it may use every core) and so does dnsperf,
with ``--clients`` sockets (SO_REUSEPORT spreads clients by address and
port, so one socket would reach one process).  The workloads are
``bench/dns_qps.py``'s cached ones (``srv``, ``a``; ``--instances``
registered over the HTTP API).  Runs are interleaved: each run starts a
fresh server of each configuration in turn and measures every workload
once; the table gives medians, each SkyDNS configuration's ratio to one
process (beside the bar of 0.8 x processes) and to nsd with as many
processes.  On a machine with few cores dnsperf competes with the servers:
say how many there were.  ``python bench/dns_qps.py --workers 1,2`` runs
this too.

    python bench/dns_workers.py [--workers 1,2] [--runs 3] [--seconds 5]
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


def server(kind: str, processes: int, directory: str, services: list[dict[str, Any]],
           zone: str) -> dns_qps.Server:  # fmt: skip
    """SkyDNS answering with ``processes`` processes (the node and
    ``processes - 1`` workers), or nsd with as many server processes."""
    if kind == "skydns":
        sky = dns_qps.SkyDNS(directory, services, 0.0)
        sky.pin = False
        sky.extra = ["--dns-workers", str(processes - 1)] if processes > 1 else []
        return sky
    nsd = dns_qps.NSD(directory, zone)
    nsd.pin = False
    nsd.servers = processes
    return nsd


def run(processes: list[int], instances: int = 1000, seconds: int = 5, runs: int = 3,
        clients: int = 8, outstanding: int = 200) -> int:  # fmt: skip
    """Measure and print (see the module); 2 if a tool is missing."""
    for tool in ("dnsperf", "nsd"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    load_before = os.getloadavg()[0]
    top = tempfile.mkdtemp(prefix="dns-workers-")
    services = dns_qps.instances(instances)
    zone = dns_qps.zone_text(services)
    files = dns_qps.query_files(top, services)
    configs = [(kind, count) for count in processes for kind in ("skydns", "nsd")]
    results: dict[tuple[str, int, str], list[float]] = {}
    stale: dict[int, list[float]] = {}
    try:
        for number in range(runs):
            for kind, count in configs:
                directory = os.path.join(top, f"{kind}{count}-{number}")
                os.makedirs(directory)
                running = server(kind, count, directory, services, zone)
                running.start()
                try:
                    for workload in ("srv", "a"):
                        dnsperf(running.port, files[workload], 1, clients,
                                outstanding)  # warm up (and start every worker's cache)
                        qps = dnsperf(running.port, files[workload], seconds, clients,
                                      outstanding)  # fmt: skip
                        results.setdefault((kind, count, workload), []).append(qps)
                    if kind == "skydns":
                        stale.setdefault(count, []).extend(freshness(running))  # type: ignore[arg-type]
                finally:
                    running.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print(f"\nmedian of {runs} interleaved runs, {seconds} s each; {os.cpu_count()} cores; "
          f"load before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; "
          f"dnsperf -c {clients} -q {outstanding}, nothing pinned\n")
    print(f"{'workload':8} {'processes':>9} {'skydns q/s':>11} {'÷one':>6} {'target':>7} "
          f"{'nsd q/s':>9} {'÷nsd':>6}")
    one = min(processes)
    for workload in ("srv", "a"):
        alone = statistics.median(results[("skydns", one, workload)])
        for count in processes:
            qps = statistics.median(results[("skydns", count, workload)])
            nsd = statistics.median(results[("nsd", count, workload)])
            target = 0.8 * count / one
            print(f"{workload:8} {count:9} {qps:11.0f} {qps / alone:6.2f} {target:7.2f} "
                  f"{nsd:9.0f} {qps / nsd:6.2f}")
    print("\n'÷one': throughput against one process; 'target': 0.8 x processes (the bar for a "
          "machine with a core to spare per process and for dnsperf).")
    print("\nfrom a registration's answer until 16 new sockets all find it (ms):")
    for count, delays in sorted(stale.items()):
        delays.sort()
        print(f"  skydns, {count} processes: median {statistics.median(delays):.1f}, "
              f"p99 {delays[int(len(delays) * 0.99) - 1]:.1f}, max {delays[-1]:.1f} "
              f"({len(delays)} registrations; 16 queries take time of their own)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2",
                        help="numbers of DNS processes to compare (1: the node alone; "
                             "N: the node and --dns-workers N-1)")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    args = parser.parse_args()
    return run(parse_processes(args.workers, parser), args.instances, args.seconds, args.runs,
               args.clients, args.outstanding)  # fmt: skip


def parse_processes(text: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        parser.error(f"--workers: expected numbers N,M,... not {text!r}")
    if not counts or counts[0] < 1:
        parser.error("--workers: at least one number, each 1 or more")
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
