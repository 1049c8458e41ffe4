"""DNS queries per second and per server CPU-second: SkyDNS, nsd, stock twisted.names.

Starts each server on 127.0.0.1 (free ports, temporary directories) pinned
to one CPU, runs ``dnsperf`` pinned to the other, and prints a table: the
median of ``--runs`` runs of each workload against each server.

- ``skydns``: ``twistd -n skydns`` with ``--instances`` services registered
  over the HTTP API (two instances per service name, IPv4 hosts).
- ``nsd``: ``nsd -d`` serving a static zone with the same records
  (``rrl-ratelimit: 0``, one server process).
- ``twisted``: ``twistd -n dns --bindzone`` serving that zone: a stock
  twisted.names server.

Workloads (``dnsperf -l SECONDS``):

- ``srv``: SRV for every service name (cached after the first pass);
- ``a``: A for every service name (cached);
- ``miss``: SRV and A for every service name and SRV and A for every
  instance name (3,000 names for 1,000 instances), shuffled, while the bench
  renews leases through the HTTP API (``--changes`` a second, on a fixed
  schedule, by eight threads): every renewal clears SkyDNS's answer cache.
  dnsperf goes through its file in order, so while ``q/change`` (queries
  per applied renewal, printed) is below the number of names, every query
  is the first for its name since a registry change: a miss.  Where the
  server exports ``skydns_dns_cache_total`` the share of hits (``hits``)
  and of misses answered by revalidating an answer set aside at the change
  (``reval``; the rest are built anew) are printed too.  The renewals' own
  cost is in SkyDNS's CPU time.  The other servers get the same queries
  (they have no cache, nor any change to make).
- ``names10k``, ``names100k``: every name of the first 10,000 (100,000)
  instances asked, in a shuffled order, uniformly: A for each instance's
  ``<uuid>`` name and SRV for each service name.  The registry holds at
  least as many instances (``--instances`` is raised to it), so run these
  apart from the others (``--workloads names10k,names100k``).  After each
  SkyDNS run the node's RSS is printed beside its RSS with the registry
  loaded and no DNS asked (``rss_mb`` / ``registry_mb``).

``srv`` and ``a`` are the cache-hit workloads.

``cpu qps`` is queries completed per second of CPU time the server process
used (user + system, from /proc/<pid>/stat) during the run: what a query
costs, independent of how much of the CPU the server got.

    python bench/dns_qps.py [--instances 1000] [--seconds 5] [--runs 3]

With ``--dnssec`` every query sets DO and SkyDNS signs its answers with a
key made for the run (nsd serves the zone unsigned: signed SkyDNS against
unsigned nsd).  The first pass through the names, untimed, signs each
answer once; ``srv`` and ``a`` then measure signed answers from the cache.

With ``--before DIR`` (a tree holding ``skydns/`` and ``twisted/plugins/``,
e.g. ``git worktree add /tmp/before <commit>``), SkyDNS from that tree
(``before``) and from this checkout (``skydns``) are compared instead,
interleaved: each run starts a fresh server of each, alternately, and
measures every workload once.

    python bench/dns_qps.py --before /tmp/before --runs 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

DOMAIN = "skydns.local"
HZ = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
CLIENT_CPU = "1"


#: Whether every query carries the DO bit and SkyDNS signs (``--dnssec``).
DNSSEC = False


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        return port
    raise RuntimeError("no free port")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime, stime


def rss_mb(pid: int) -> float:
    """The resident set of process ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for_dns(port: int, timeout: float = 30.0) -> None:
    """Until the server answers a query on ``port`` (any answer)."""
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x00\x00\x06\x00\x01"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", port))
                s.recvfrom(4096)
                return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"no DNS server answered on port {port}")


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The data set.


def instances(count: int) -> list[dict[str, Any]]:
    """``count`` services, two per service name, IPv4 hosts."""
    out = []
    for i in range(count):
        out.append(
            {
                "UUID": f"u{i:05d}",
                "Name": f"svc{i // 2}",
                "Environment": "production",
                "Region": "east",
                "Version": "1.0.0",
                "Host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                "Port": 8080,
                "TTL": 3600,
            }
        )
    return out


def service_names(services: list[dict[str, Any]]) -> list[str]:
    return sorted({f"{s['Name']}.production.{DOMAIN}" for s in services})


def zone_text(services: list[dict[str, Any]]) -> str:
    """A static zone answering like SkyDNS for the benchmarked names."""
    lines = [
        f"$ORIGIN {DOMAIN}.",
        "$TTL 3600",
        f"@ IN SOA node1.ns.dns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60",
        f"@ IN NS node1.ns.dns.{DOMAIN}.",
        "node1.ns.dns IN A 127.0.0.1",
    ]
    for s in services:
        owner = f"{s['Name']}.production"
        target = f"{s['UUID']}.{DOMAIN}."
        lines.append(f"{owner} IN SRV 10 50 {s['Port']} {target}")
        lines.append(f"{owner} IN A {s['Host']}")
        lines.append(f"{s['UUID']} IN A {s['Host']}")
        lines.append(f"{s['UUID']} IN SRV 10 100 {s['Port']} {target}")
    return "\n".join(lines) + "\n"


#: The "every name" workloads and how many instances' names each asks.
NAMES_WORKLOADS = {"names10k": 10_000, "names100k": 100_000}


def query_files(directory: str, services: list[dict[str, Any]]) -> dict[str, str]:
    names = service_names(services)
    files = {
        "srv": [f"{n} SRV" for n in names],
        "a": [f"{n} A" for n in names],
    }
    for workload, count in NAMES_WORKLOADS.items():
        if count <= len(services):
            first = services[:count]
            lines = [f"{s['UUID']}.{DOMAIN} A" for s in first]
            lines += [f"{n} SRV" for n in service_names(first)]
            random.Random(count).shuffle(lines)
            files[workload] = lines
    miss = [f"{n} SRV" for n in names] + [f"{n} A" for n in names]
    miss += [f"{s['UUID']}.{DOMAIN} {t}" for s in services for t in ("A", "SRV")]
    random.Random(7).shuffle(miss)
    files["miss"] = miss
    paths = {}
    for workload, lines in files.items():
        path = paths[workload] = os.path.join(directory, f"{workload}.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    return paths


# The servers.


class Server:
    name = ""
    process: subprocess.Popen[Any]
    port: int

    def start(self) -> None:
        raise NotImplementedError

    def during(self, workload: str) -> Optional[Callable[[], dict[str, float]]]:
        """Start background activity for ``workload``; return its stopper,
        which returns figures to report."""
        return None

    def stop(self) -> None:
        stop(self.process)


def pinned(argv: list[str]) -> list[str]:
    return ["taskset", "-c", SERVER_CPU, *argv]


class SkyDNS(Server):
    name = "skydns"
    #: More options (bench/dns_workers.py: ``--dns-workers``), and whether
    #: the node is pinned to `SERVER_CPU`.
    extra: list[str] = []
    pin = True

    def __init__(
        self, directory: str, services: list[dict[str, Any]], changes: float,
        tree: Optional[str] = None,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.services = services
        self.changes = changes
        #: Another code tree to run (its directory first on PYTHONPATH).
        self.tree = tree

    def start(self) -> None:
        self.port = free_port()
        self.http = free_port()
        raft = free_port()
        argv = [
            *TWISTD, "--pidfile", os.path.join(self.directory, "sky.pid"),
            "-n", "--logfile", os.path.join(self.directory, "skydns.log"), "skydns",
            "--domain", DOMAIN, "--dns", f"127.0.0.1:{self.port}",
            "--http", f"tcp:{self.http}:interface=127.0.0.1",
            "--raft", f"tcp:{raft}:interface=127.0.0.1",
            "--data-dir", os.path.join(self.directory, "data"), "--no-forward",
        ]  # fmt: skip
        root = self.tree or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "skydns", "options.py")) as f:
            if "rrl-large-rate" in f.read():
                # One client asking 100k times a second would spend the
                # large-answer budget; nsd runs with its RRL off too.
                argv += ["--rrl-large-rate", "0"]
        env = dict(os.environ)
        if self.tree is not None:
            saved = env.get("PYTHONPATH")
            env["PYTHONPATH"] = self.tree + (os.pathsep + saved if saved else "")
        if DNSSEC:
            from skydns.dnssec.keys import ECDSAP256SHA256, generate

            _, base = generate(DOMAIN, ECDSAP256SHA256, self.directory)
            argv += ["--dnssec-key", base + ".private"]
        argv += self.extra
        self.process = subprocess.Popen(pinned(argv) if self.pin else argv,
                                        cwd=self.directory, env=env)  # fmt: skip
        wait_for_dns(self.port)
        self._wait_http()
        with ThreadPoolExecutor(16) as pool:
            for status in pool.map(self._register, self.services):
                if status != 201:
                    raise RuntimeError(f"registration failed: HTTP {status}")
        #: The node's RSS with the registry loaded, before any DNS question.
        self.registry_mb = rss_mb(self.process.pid)

    def _request(self, method: str, path: str, body: Any = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http}{path}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)

    def _wait_http(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._request("GET", "/ready") == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("SkyDNS never became ready")
            time.sleep(0.2)

    def _register(self, service: dict[str, Any]) -> int:
        body = {k: v for k, v in service.items() if k != "UUID"}
        return self._request("PUT", f"/skydns/services/{service['UUID']}", body)

    def during(self, workload: str) -> Optional[Callable[[], dict[str, float]]]:
        before = self.cache_counts()
        if workload != "miss" or self.changes <= 0:
            return lambda: self.hit_ratio(before)
        done = threading.Event()
        applied = [0]
        uuids = [s["UUID"] for s in self.services]
        threads = 8
        start = time.monotonic()

        def renew(first: int) -> None:
            # On a fixed schedule (each thread every threads/changes seconds),
            # so slow requests do not lower the rate.
            i = first
            while not done.wait(max(0.0, start + (i + 1) / self.changes - time.monotonic())):
                path = f"/skydns/services/{uuids[i % len(uuids)]}"
                if self._request("PATCH", path, {"TTL": 3600}) == 200:
                    applied[0] += 1
                i += threads

        workers = [threading.Thread(target=renew, args=(n,), daemon=True) for n in range(threads)]
        for worker in workers:
            worker.start()

        def finish() -> dict[str, float]:
            done.set()
            for worker in workers:
                worker.join(30)
            return {"changes": applied[0], **self.hit_ratio(before)}

        return finish

    def cache_counts(self) -> Optional[tuple[float, float, float]]:
        """Answer cache (hits, misses, revalidated misses) from /metrics, if
        it exports them."""
        try:
            url = f"http://127.0.0.1:{self.http}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
        except OSError:
            return None
        found = {}
        for result in ("hit", "miss", "revalidated"):
            match = re.search(
                rf'^skydns_dns_cache_total{{cache="answer",result="{result}"}} (\S+)$', text, re.M
            )
            found[result] = float(match.group(1)) if match is not None else 0.0
        if not found["hit"] + found["miss"]:
            return None
        return found["hit"], found["miss"], found["revalidated"]

    def hit_ratio(self, before: Optional[tuple[float, float, float]]) -> dict[str, float]:
        after = self.cache_counts()
        if before is None or after is None:
            return {}
        hits, misses, again = (a - b for a, b in zip(after, before, strict=True))
        total = max(hits + misses, 1.0)
        return {"hit_ratio": hits / total, "revalidated": again / total}


class NSD(Server):
    name = "nsd"
    #: Serving processes (``server-count``, sharing the port with
    #: SO_REUSEPORT when more than one), and whether pinned to `SERVER_CPU`.
    servers = 1
    pin = True

    def __init__(self, directory: str, zone: str) -> None:
        self.directory = directory
        self.zone = zone

    def start(self) -> None:
        self.port = free_port()
        d = self.directory
        with open(os.path.join(d, "zone"), "w") as f:
            f.write(self.zone)
        conf = os.path.join(d, "nsd.conf")
        with open(conf, "w") as f:
            f.write(
                "server:\n"
                f"  ip-address: 127.0.0.1@{self.port}\n"
                f"  server-count: {self.servers}\n"
                f"  reuseport: {'yes' if self.servers > 1 else 'no'}\n"
                f'  zonesdir: "{d}"\n'
                f'  database: ""\n'
                f'  pidfile: "{d}/nsd.pid"\n'
                f'  xfrdfile: "{d}/xfrd.state"\n'
                f'  zonelistfile: "{d}/zone.list"\n'
                '  username: ""\n'
                "  rrl-ratelimit: 0\n"
                "  verbosity: 0\n"
                "remote-control:\n"
                "  control-enable: no\n"
                "zone:\n"
                f"  name: {DOMAIN}\n"
                "  zonefile: zone\n"
            )
        argv = ["nsd", "-d", "-c", conf]
        self.process = subprocess.Popen(pinned(argv) if self.pin else argv, cwd=d)
        wait_for_dns(self.port)

    def cpu_pids(self) -> list[int]:
        """nsd forks: its serving child does the work; count the whole tree."""
        return [self.process.pid, *children(self.process.pid)]


class TwistedNames(Server):
    name = "twisted"

    def __init__(self, directory: str, zone: str) -> None:
        self.directory = directory
        self.zone = zone

    def start(self) -> None:
        self.port = free_port()
        zone = os.path.join(self.directory, "zone")
        with open(zone, "w") as f:
            f.write(self.zone)
        argv = [
            *TWISTD, "--pidfile", os.path.join(self.directory, "t.pid"),
            "-n", "--logfile", os.path.join(self.directory, "twisted.log"),
            "dns", "--interface", "127.0.0.1", "-p", str(self.port), "--bindzone", zone,
        ]  # fmt: skip
        self.process = subprocess.Popen(pinned(argv), cwd=self.directory)
        wait_for_dns(self.port)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == pid:
                found.append(int(entry))
                found.extend(children(int(entry)))
    return found


# Running dnsperf.


def dnsperf(
    port: int, datafile: str, seconds: int, outstanding: int, once: bool = False
) -> dict[str, float]:
    """Run dnsperf for ``seconds`` (or, ``once``, through the file once)."""
    argv = [
        "taskset", "-c", CLIENT_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
        "-d", datafile, *(["-n", "1"] if once else ["-l", str(seconds)]),
        "-q", str(outstanding), "-c", "1", "-T", "1", "-t", "2", *(["-D"] if DNSSEC else []),
    ]  # fmt: skip
    timeout = 600 if once else seconds + 30
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout

    def number(label: str) -> float:
        match = re.search(rf"{label}:\s+([\d.]+)", out)
        if match is None:
            raise RuntimeError(f"dnsperf printed no {label!r}:\n{out}")
        return float(match.group(1))

    return {
        "completed": number("Queries completed"),
        "lost": number("Queries lost"),
        "qps": number("Queries per second"),
        "elapsed": number("Run time \\(s\\)"),
    }


def measure(
    server: Server, workload: str, datafile: str, seconds: int, outstanding: int
) -> dict[str, float]:
    pids = server.cpu_pids() if isinstance(server, NSD) else [server.process.pid]
    finish = server.during(workload)
    before = sum(cpu_seconds(p) for p in pids)
    extra: dict[str, float] = {}
    try:
        result = dnsperf(server.port, datafile, seconds, outstanding)
    finally:
        after = sum(cpu_seconds(p) for p in pids)
        if finish is not None:
            extra = finish()
    result.update(extra)
    if "changes" in result:
        result["per_change"] = result["completed"] / max(result["changes"], 1.0)
    cpu = max(after - before, 1.0 / HZ)
    result["cpu"] = cpu
    result["cpu_qps"] = result["completed"] / cpu
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--changes", type=float, default=20.0, help="renewals/s in 'miss'")
    parser.add_argument("--servers", default="skydns,nsd,twisted")
    parser.add_argument("--workloads", default="srv,a,miss")
    parser.add_argument("--before", help="compare with SkyDNS from this tree, interleaved")
    parser.add_argument("--workers", help="N,M,...: compare DNS on N, M, ... processes "
                        "(--dns-workers; see bench/dns_workers.py) instead")
    parser.add_argument("--dnssec", action="store_true",
                        help="every query with DO; SkyDNS signs with a fresh key (nsd's zone is "
                             "unsigned: the reference is nsd answering unsigned)")
    args = parser.parse_args()
    if args.workers is not None:
        import dns_workers

        processes = dns_workers.parse_processes(args.workers, parser)
        return dns_workers.run(processes, args.instances, args.seconds, args.runs)
    global DNSSEC
    DNSSEC = args.dnssec
    if args.before is not None and not os.path.isdir(os.path.join(args.before, "skydns")):
        parser.error(f"--before: {args.before} holds no skydns/ directory")
    for tool in ("dnsperf", "nsd", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2

    load_before = os.getloadavg()[0]
    top = tempfile.mkdtemp(prefix="dns-qps-")
    workloads = args.workloads.split(",")
    needed = max([args.instances] + [NAMES_WORKLOADS.get(w, 0) for w in workloads])
    services = instances(needed)
    zone = zone_text(services)
    files = query_files(top, services)
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    if args.before is not None:
        # One fresh server per run, alternately: (kind, run) pairs.
        plan = [(kind, run) for run in range(args.runs) for kind in ("before", "skydns")]
    else:
        plan = [(kind, -1) for kind in args.servers.split(",")]
    try:
        for kind, single in plan:
            directory = os.path.join(top, f"{kind}{single}")
            os.makedirs(directory)
            server: Server
            if kind == "skydns":
                server = SkyDNS(directory, services, args.changes)
            elif kind == "before":
                server = SkyDNS(directory, services, args.changes, os.path.abspath(args.before))
            elif kind == "nsd":
                server = NSD(directory, zone)
            elif kind == "twisted":
                server = TwistedNames(directory, zone)
            else:
                raise SystemExit(f"unknown server {kind!r}")
            print(f"starting {kind} ...", file=sys.stderr, flush=True)
            server.start()
            try:
                for workload in workloads:
                    # One untimed pass fills caches and warms the interpreter
                    # (through every name for the "every name" workloads).
                    once = workload in NAMES_WORKLOADS
                    dnsperf(server.port, files[workload], 1, args.outstanding, once)
                    for run in range(args.runs) if single < 0 else (single,):
                        r = measure(server, workload, files[workload], args.seconds,
                                    args.outstanding)  # fmt: skip
                        if isinstance(server, SkyDNS):
                            r["rss_mb"] = rss_mb(server.process.pid)
                            r["registry_mb"] = server.registry_mb
                        results.setdefault((kind, workload), []).append(r)
                        notes = "".join(
                            f"  {k} {r[k]:.2f}"
                            for k in ("changes", "per_change", "hit_ratio", "revalidated",
                                      "rss_mb", "registry_mb")
                            if k in r
                        )  # fmt: skip
                        print(
                            f"  {kind:8} {workload:5} run {run + 1}: {r['qps']:9.0f} q/s "
                            f"{r['cpu_qps']:9.0f} q/cpu-s  lost {r['lost']:.0f}{notes}",
                            file=sys.stderr,
                            flush=True,
                        )
            finally:
                server.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)

    print_table(results, workloads, args)
    if DNSSEC:
        signing_cost()
    for kind in ("before", "skydns"):
        for workload in workloads:
            runs = results.get((kind, workload), [])
            if runs and "rss_mb" in runs[0]:
                rss = statistics.median(r["rss_mb"] for r in runs)
                registry = statistics.median(r["registry_mb"] for r in runs)
                print(f"{kind} after {workload}: RSS {rss:.0f} MiB "
                      f"(registry loaded, before any DNS: {registry:.0f} MiB)")  # fmt: skip
    print(
        f"\nload average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"other processes on CPU {SERVER_CPU} inflate every server's CPU time per query."
    )
    return 0


def signing_cost(count: int = 2000) -> None:
    """What signing a new answer costs, in this process: an SRV answer for
    two instances with their A records (three RRsets: SRV, two A), each
    algorithm, median of five timed batches."""
    import time as clock

    from skydns.dnssec.keys import ECDSAP256SHA256, ED25519, generate
    from skydns.dnssec.signing import canonical_srv, rrsig_rdata

    directory = tempfile.mkdtemp(prefix="dnssec-cost-")
    try:
        for algorithm, label in ((ECDSAP256SHA256, "ECDSAP256SHA256"), (ED25519, "ED25519")):
            key, _ = generate(DOMAIN, algorithm, directory)
            srv = [canonical_srv(10, 50, 80, f"i{n}.{DOMAIN}") for n in range(2)]
            batches = []
            for _ in range(5):
                started = clock.perf_counter()
                for n in range(count):
                    now = 1.8e9 + n
                    rrsig_rdata(key, f"svc.prod.{DOMAIN}", 33, 30, srv, now)
                    for host in range(2):
                        rrsig_rdata(key, f"i{host}.{DOMAIN}", 1, 30, [bytes([10, 0, 0, host])],
                                    now)  # fmt: skip
                batches.append((clock.perf_counter() - started) / count)
            print(f"signing a new answer (3 RRsets) with {label}: "
                  f"{statistics.median(batches) * 1e6:.0f} us")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def print_table(
    results: dict[tuple[str, str], list[dict[str, float]]], workloads: list[str], args: Any
) -> None:
    def median(kind: str, workload: str, field: str) -> Optional[float]:
        values = [r[field] for r in results.get((kind, workload), []) if field in r]
        return statistics.median(values) if values else None

    count = max([args.instances] + [NAMES_WORKLOADS.get(w, 0) for w in workloads])
    names = 3 * count
    print(
        f"\n'miss': {names} names; every query misses while q/change < {names}."
        f"\n{count} instances, dnsperf -l {args.seconds} -q {args.outstanding}, "
        f"median of {args.runs} runs; server on CPU {SERVER_CPU}, dnsperf on CPU {CLIENT_CPU}\n"
    )
    header = f"{'workload':8} {'server':8} {'q/s':>9} {'lost':>6} {'q/cpu-s':>9} " \
             f"{'÷nsd':>6} {'÷twisted':>9} {'q/change':>9} {'hits':>5} {'reval':>5}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for workload in workloads:
        nsd = median("nsd", workload, "cpu_qps")
        stock = median("twisted", workload, "cpu_qps")
        before = median("before", workload, "cpu_qps")
        for kind in ("before", "skydns", "nsd", "twisted"):
            qps = median(kind, workload, "qps")
            if qps is None:
                continue
            cpu_qps = median(kind, workload, "cpu_qps") or 0.0
            lost = max(r["lost"] for r in results[(kind, workload)])
            vs_nsd = f"{cpu_qps / nsd:6.2f}" if nsd else f"{'-':>6}"
            vs_stock = f"{cpu_qps / stock:9.2f}" if stock else f"{'-':>9}"
            per_change = median(kind, workload, "per_change")
            hits = median(kind, workload, "hit_ratio")
            again = median(kind, workload, "revalidated")
            print(
                f"{workload:8} {kind:8} {qps:9.0f} {lost:6.0f} {cpu_qps:9.0f} {vs_nsd} {vs_stock}"
                + (f" {per_change:9.0f}" if per_change is not None else f" {'':9}")
                + (f" {hits:5.0%}" if hits is not None else "")
                + (f" {again:5.0%}" if again is not None else "")
                + (f"  {cpu_qps / before:.3f}x before" if before and kind == "skydns" else "")
            )


if __name__ == "__main__":
    sys.exit(main())
