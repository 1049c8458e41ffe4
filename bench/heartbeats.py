"""Heartbeats at scale on a 3-node cluster (SPEC.md §7, issue #22).

Starts three real ``twistd skydns`` nodes (fsync on, loopback only,
``--no-forward``), then:

1. **Leases**: grants ``--leases`` leases (TTL ``--ttl``) and registers
   ``--per-lease`` instances under each (100,000 by default), then renews
   every lease once per ``--interval`` seconds, spread evenly over the
   interval and sent round-robin to all three nodes, for ``--seconds``;
   then again with renewals twice as often.
2. **SkyDNS 1 heartbeats**: registers ``--v1`` instances with their own TTL
   and PATCHes each once per interval, the same way, at both rates.
3. **Failover**: the lease load again; ``kill -9`` of the leader halfway;
   meanwhile a prober asks every live node, over and over, for a sample of
   instances by name (``<uuid>.skydns.local`` A) and counts NXDOMAIN.

For each load it prints renewals answered per second (and failures, p99),
the leader's CPU as a share of one core, log entries per second (the
leader's commit index), instances lost (removed by expiry on any node, and
the registered count on every node against what was registered), and the
load generator's own CPU (on a shared machine the load generator and three
nodes compete for the same cores: say what else ran).

    python bench/heartbeats.py [--leases 2000] [--per-lease 50] [--v1 10000]
                               [--interval 10] [--seconds 40] [--ttl 30]
                               [--before DIR] [--store etcd]

``--before DIR`` (a ``git worktree`` of an earlier commit) runs the SkyDNS
1 heartbeat load, the one both trees have, against that tree too, for the
reference beside it.  ``--store etcd`` runs the nodes on one local etcd
(docs/etcd.md); "leader" is then the node that sends callbacks.  Only
loopback addresses are used; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from typing import Any

#: This checkout (the tree measured unless --before names another).
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "bench"))

from raft_write import Client, cpu_seconds  # noqa: E402

from tests.e2e.etcd import EtcdProcess  # noqa: E402
from tests.e2e.harness import SkyDNSProcess, dns_query, free_port, http  # noqa: E402

#: Service names instances spread over (the per-name limit is 10,000).
NAMES = 64


class Nodes:
    """Three nodes started with the same --peers, or (``etcd``) on one etcd."""

    def __init__(self, root: str, etcd: bool = False) -> None:
        ids = ["n1", "n2", "n3"]
        ports = {i: free_port() for i in ids}
        peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
        self.etcd = EtcdProcess().start() if etcd else None
        store = (["--store", f"etcd://127.0.0.1:{self.etcd.client_port}"] if self.etcd
                 else ["--peers", peers])  # fmt: skip
        self.nodes = [
            SkyDNSProcess(extra_args=[*store, "--no-forward"], node_id=i,
                          raft_port=ports[i], data_dir=tempfile.mkdtemp(prefix=f"{i}-", dir=root))
            for i in ids
        ]  # fmt: skip
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_for("/ready", 60)

    def alive(self) -> list[SkyDNSProcess]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def leader(self) -> SkyDNSProcess:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for node in self.alive():
                try:
                    _, status = http("GET", node.url + "/skydns/cluster", timeout=2.0)
                except OSError:
                    continue
                if isinstance(status, dict) and status.get("leader") == node.node_id:
                    return node
            time.sleep(0.05)
        raise RuntimeError("no leader")

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.stop()
        if self.etcd is not None:
            self.etcd.cleanup()


def metric(node: SkyDNSProcess, name: str, labels: str = "") -> float:
    """One sample of ``node``'s /metrics (0 if absent)."""
    _, text = http("GET", node.url + "/metrics", timeout=10.0)
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.M)
    found = pattern.search(text if isinstance(text, str) else "")
    return float(found.group(1)) if found else 0.0


def changes(node: SkyDNSProcess) -> float:
    """Commands ``node`` has applied (every op): what the log has carried."""
    _, text = http("GET", node.url + "/metrics", timeout=10.0)
    found = re.findall(r"^skydns_registry_changes_total\{[^}]*\} (\S+)$",
                       text if isinstance(text, str) else "", re.M)  # fmt: skip
    return sum(float(v) for v in found)


def commit_index(node: SkyDNSProcess) -> int:
    _, status = http("GET", node.url + "/skydns/cluster", timeout=5.0)
    return int(status["commit_index"])


async def send_all(ports: list[int], requests: list[tuple[str, str, Any]],
                   clients: int = 48) -> tuple[int, int]:  # fmt: skip
    """Send each request once, as fast as ``clients`` connections go."""
    todo = iter(requests)
    ok = failed = 0

    async def run(number: int) -> None:
        nonlocal ok, failed
        client = Client(ports[number % len(ports)])
        try:
            for method, path, body in todo:
                code = await client.request(method, path, body)
                ok, failed = (ok + 1, failed) if 200 <= code < 300 else (ok, failed + 1)
        finally:
            client.close()

    await asyncio.gather(*(run(i) for i in range(clients)))
    return ok, failed


async def paced(ports: list[int], requests: list[tuple[str, str, Any]], interval: float,
                seconds: float, clients: int = 64) -> dict[str, Any]:  # fmt: skip
    """Send every request once per ``interval``, spread evenly over it and
    round-robin over ``ports``, for ``seconds``."""
    count = len(requests)
    step = interval / count
    start = time.perf_counter()
    total = int(seconds / step)
    slot = iter(range(total))
    latencies: list[float] = []
    failed = 0
    late = 0.0

    dead: set[int] = set()

    async def run(number: int) -> None:
        nonlocal failed, late
        clients_by_port = [Client(p) for p in ports]
        try:
            for n in slot:
                due = start + n * step
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late = max(late, -wait)
                method, path, body = requests[n % count]
                t = time.perf_counter()
                code = 0
                for attempt in range(len(ports)):  # a node that is gone: the next one
                    at = (n + attempt) % len(ports)
                    if at in dead:
                        continue
                    try:
                        code = await clients_by_port[at].request(method, path, body)
                        break
                    except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                        dead.add(at)
                if 200 <= code < 300:
                    latencies.append(time.perf_counter() - t)
                else:
                    failed += 1
        finally:
            for client in clients_by_port:
                client.close()

    await asyncio.gather(*(run(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    return {"ok": len(latencies), "failed": failed, "elapsed": elapsed, "p99": p99, "late": late}


async def register_renewing(ports: list[int], registrations: list[tuple[str, str, Any]],
                            renew: list[tuple[str, str, Any]],
                            interval: float) -> tuple[int, int]:  # fmt: skip
    """`send_all` of ``registrations`` while ``renew`` goes once an interval."""
    done = asyncio.Event()

    async def renewing() -> None:
        while not done.is_set():
            await send_all(ports, renew, clients=8)
            try:
                await asyncio.wait_for(done.wait(), interval)
            except TimeoutError:
                pass

    keeper = asyncio.ensure_future(renewing())
    try:
        return await send_all(ports, registrations)
    finally:
        done.set()
        await keeper


def measure(nodes: Nodes, requests: list[tuple[str, str, Any]], interval: float,
            seconds: float, expected: int, kill_at: float | None = None,
            probe: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run one paced load; the figures."""
    leader = nodes.leader()
    ports = [n.http_port for n in nodes.alive()]
    expired = {n.node_id: metric(n, "skydns_expirations_total") for n in nodes.alive()}
    commit0, changes0, t0 = commit_index(leader), changes(leader), time.monotonic()
    cpu0 = {n.node_id: cpu_seconds(n.process.pid) for n in nodes.alive()}  # type: ignore[union-attr]
    etcd_pid = nodes.etcd.process.pid if nodes.etcd and nodes.etcd.process else None
    etcd0 = cpu_seconds(etcd_pid) if etcd_pid else 0.0
    gen0 = time.process_time()
    missing: list[Any] = []
    unanswered: list[Any] = []
    stop = threading.Event()

    def prober() -> None:
        while probe and not stop.is_set():
            for node in nodes.alive():
                for name in probe:
                    if stop.is_set():
                        return
                    try:
                        answer = dns_query(name, "A", node.dns_port, timeout=1.0)
                    except Exception:
                        if node.process is not None and node.process.poll() is None:
                            unanswered.append((node.node_id, name))
                        continue  # a killed node stops answering
                    if answer.rcode() != 0 or not answer.answer:
                        missing.append((node.node_id, name))
            time.sleep(0.05)

    def killer() -> None:
        assert kill_at is not None
        if not stop.wait(kill_at):
            leader.kill()

    threads = [threading.Thread(target=prober)]
    if kill_at is not None:
        threads.append(threading.Thread(target=killer))
    for thread in threads:
        thread.start()
    try:
        result = asyncio.run(paced(ports, requests, interval, seconds))
        # Counted at once: once the renewals stop, instances lapse a TTL later.
        wall = time.monotonic() - t0
        alive = nodes.alive()
        result["expired"] = sum(metric(n, "skydns_expirations_total") - expired[n.node_id]
                                for n in alive)  # fmt: skip
        result["held"] = [int(metric(n, "skydns_registered_instances")) for n in alive]
        result["lost"] = max(expected - min(result["held"]), 0)
        now_leader = nodes.leader()
        result["entries/s"] = (commit_index(now_leader) - commit0) / wall
        result["commands/s"] = (changes(now_leader) - changes0) / wall
        measured = now_leader if kill_at is not None else leader
        result["leader cpu"] = (cpu_seconds(measured.process.pid)  # type: ignore[union-attr]
                                - cpu0[measured.node_id]) / wall  # fmt: skip
        result["loadgen cpu"] = (time.process_time() - gen0) / wall
        if etcd_pid:
            result["etcd cpu"] = (cpu_seconds(etcd_pid) - etcd0) / wall
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    result["missing"] = len(missing)
    result["unanswered"] = len(unanswered)
    return result


def show(label: str, r: dict[str, Any]) -> None:
    rate = r["ok"] / r["elapsed"]
    print(f"  {label:<34} {rate:7.0f} renewals/s answered ({r['failed']} failed, p99 "
          f"{r['p99'] * 1e3:.0f} ms)  leader CPU {r['leader cpu'] * 100:4.0f}% of a core  "
          f"log {r['commands/s']:6.1f} commands/s in {r['entries/s']:4.1f} entries/s  "
          f"lost {r['lost']} (expired {r['expired']:.0f}, "
          f"held {r['held']})  loadgen CPU {r['loadgen cpu'] * 100:.0f}%"
          + (f"  etcd CPU {r['etcd cpu'] * 100:.0f}%" if "etcd cpu" in r else "")
          + (f"  DNS misses {r['missing']} (unanswered {r['unanswered']})" if "missing" in r
             else ""), flush=True)


def run_tree(root: str, args: argparse.Namespace, kind: str) -> dict[str, dict[str, Any]]:
    """One cluster of the tree on PYTHONPATH, one ``kind`` of load
    (``leases`` or ``v1``): its figures by load."""
    nodes = Nodes(tempfile.mkdtemp(prefix="hb-", dir=root), etcd=args.store == "etcd")
    figures: dict[str, dict[str, Any]] = {}
    ports = [n.http_port for n in nodes.nodes]
    try:
        started = time.monotonic()
        if kind == "leases":
            ids: list[str] = []
            for _ in range(args.leases):
                code, body = http("POST", nodes.nodes[len(ids) % 3].url + "/skydns/leases",
                                  {"TTL": args.ttl}, timeout=20.0)  # fmt: skip
                if code != 201:
                    raise SystemExit(f"grant failed: {code} {body}")
                ids.append(body["ID"])
            registrations = [
                ("PUT", f"/skydns/services/l{n}", {
                    "Name": f"svc{n % NAMES}", "Environment": "bench", "Host": "10.0.0.1",
                    "Port": 80, "Lease": ids[n // args.per_lease]})
                for n in range(args.leases * args.per_lease)
            ]  # fmt: skip
            renew: list[tuple[str, str, Any]] = [("PUT", f"/skydns/leases/{i}", None) for i in ids]
            what = f"{len(ids)} leases"
            probe = [f"l{n}.skydns.local" for n in range(0, len(registrations), 997)][:100]
        else:
            registrations = [("PUT", f"/skydns/services/v{n}", {
                "Name": f"old{n % NAMES}", "Environment": "bench", "Host": "10.0.0.2", "Port": 80,
                "TTL": args.ttl}) for n in range(args.v1)]  # fmt: skip
            renew = [("PATCH", f"/skydns/services/v{n}", {"TTL": args.ttl})
                     for n in range(args.v1)]  # fmt: skip
            what = f"{args.v1} PATCH heartbeats"
            probe = [f"v{n}.skydns.local" for n in range(0, args.v1, 101)][:100]
        if kind == "leases":
            # Registering takes longer than a TTL: the leases are renewed meanwhile.
            expected, failed = asyncio.run(register_renewing(ports, registrations, renew,
                                                             args.interval))  # fmt: skip
        else:
            expected, failed = asyncio.run(send_all(ports, registrations))
        print(f"  registered {expected} instances ({failed} failed"
              + (f", under {len(ids)} leases" if kind == "leases" else ", each its own TTL")
              + f") in {time.monotonic() - started:.0f} s", flush=True)
        for interval in (args.interval, args.interval / 2):
            figures[f"{kind} every {interval:g}s"] = r = measure(
                nodes, renew, interval, args.seconds, expected)
            show(f"{what}, every {interval:g} s", r)
        if args.failover:
            figures[f"{kind} failover"] = r = measure(
                nodes, renew, args.interval, args.seconds, expected,
                kill_at=args.seconds / 2, probe=probe)  # fmt: skip
            show(f"{what}, leader killed at {args.seconds / 2:g} s", r)
    finally:
        nodes.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leases", type=int, default=2000)
    parser.add_argument("--per-lease", type=int, default=50)
    parser.add_argument("--v1", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--ttl", type=int, default=30)
    parser.add_argument("--before", help="an earlier tree: its SkyDNS 1 heartbeat load too")
    parser.add_argument("--no-failover", dest="failover", action="store_false",
                        help="skip the leader kill runs")
    parser.add_argument("--only", choices=("v1", "leases"), help="run one of the two loads")
    parser.add_argument("--store", choices=("raft", "etcd"), default="raft",
                        help="etcd: the nodes keep the registry in one local etcd; "
                             "'leader' is then the node that sends callbacks")  # fmt: skip
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="skydns-heartbeats-")
    # The nodes run ``python -c``, which puts the working directory first on
    # sys.path: away from this checkout, --before's tree is the one imported.
    os.chdir(root)
    lost: list[str] | None = None
    before: dict[str, dict[str, Any]] = {}
    try:
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} cores, load average {load:.2f} at start", flush=True)
        if args.before:
            saved = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.path.abspath(args.before) + os.pathsep + (saved or "")
            print(f"before ({args.before}):", flush=True)
            try:
                before = run_tree(root, args, "v1")
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH")
                else:
                    os.environ["PYTHONPATH"] = saved
        os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
        print("this tree:", flush=True)
        after: dict[str, dict[str, Any]] = {}
        for kind in ("v1", "leases"):
            if args.only in (None, kind):
                after |= run_tree(root, args, kind)
        if args.before:
            print("SkyDNS 1 heartbeats, before -> after:")
            for key in (k for k in after if k in before):
                b, a = before[key], after[key]
                print(f"  {key}: log {b['commands/s']:.1f} -> {a['commands/s']:.1f} commands/s "
                      f"({b['entries/s']:.1f} -> {a['entries/s']:.1f} entries/s), leader CPU "
                      f"{b['leader cpu'] * 100:.0f}% -> {a['leader cpu'] * 100:.0f}%")
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        lost = [key for figures in ([after, before] if args.before else [after])
                for key, r in figures.items() if r["lost"] or r["missing"]]  # fmt: skip
    finally:
        if lost is None or not lost:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"instances were lost in {lost}: the nodes' logs are kept in {root}")


if __name__ == "__main__":
    main()
