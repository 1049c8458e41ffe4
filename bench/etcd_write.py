"""Writes and renewals with ``--store etcd`` beside SkyDNS's own Raft, on loopback.

Starts one real etcd (its defaults: fsync on) with three ``twistd skydns``
nodes on it, and, as the reference in the same invocation, a three-node
SkyDNS Raft cluster (fsync on).  For each, alternately (``--runs`` rounds):

- registrations per second and p50/p99 latency with 1, 16 and 64 concurrent
  clients, spread over the three nodes;
- SkyDNS 1 heartbeats (``PATCH {"TTL": n}``) with 64 clients;
- the time from a write acknowledged on one node to its name answered by
  DNS on another (median and p99 of 200 writes);
- CPU per request of each SkyDNS node (and of etcd).

    python bench/etcd_write.py [--seconds 5] [--runs 3] [--clients 1,16,64]

Figures are medians over the runs.  Only loopback addresses are used; every
loop is bounded in time.  Needs an etcd binary (Debian: etcd-server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from raft_write import (  # noqa: E402
    BODY,
    cpu_seconds,
    load,
    percentile,
    register_body,
    show,
    show_medians,
)

from tests.e2e.etcd import EtcdProcess, etcd_missing  # noqa: E402
from tests.e2e.harness import SkyDNSProcess, dns_query, free_port, http  # noqa: E402


class Setup:
    """Three SkyDNS nodes on one etcd (``store`` "etcd") or on their own Raft."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.etcd: EtcdProcess | None = None
        ids = ["n1", "n2", "n3"]
        if store == "etcd":
            self.etcd = EtcdProcess()
            args = ["--store", f"etcd://127.0.0.1:{self.etcd.client_port}"]
            self.nodes = [SkyDNSProcess(["--no-forward", *args], node_id=i) for i in ids]
        else:
            ports = {i: free_port() for i in ids}
            peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
            self.nodes = [SkyDNSProcess(["--no-forward", "--peers", peers], node_id=i,
                                        raft_port=ports[i]) for i in ids]  # fmt: skip

    def start(self) -> None:
        if self.etcd is not None:
            self.etcd.start()
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_for("/ready", 30)

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except AssertionError:
                node.cleanup()
        if self.etcd is not None:
            self.etcd.cleanup()

    def pids(self) -> dict[str, int]:
        pids = {n.node_id or "?": n.process.pid for n in self.nodes if n.process is not None}
        if self.etcd is not None and self.etcd.process is not None:
            pids["etcd"] = self.etcd.process.pid
        return pids


def cpu_report(pids: dict[str, int], before: dict[str, float], ok: int) -> str:
    spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return ", ".join(f"{name} {s * 1e3 / max(ok, 1):.3f}" for name, s in spent.items())


def measure(setup: Setup, seconds: float, client_counts: list[int], run: int) -> None:
    label = setup.store
    ports = [n.http_port for n in setup.nodes]
    uuids: list[str] = []
    for clients in client_counts:
        prefix = f"{label}{run}-{clients}-"
        paths = [f"/skydns/services/{prefix}{i}" for i in range(1_000_000)]
        pids = setup.pids()
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        ok, failed, lat, elapsed = asyncio.run(
            load(ports, clients, seconds, "PUT", paths, register_body))
        uuids += [p.rsplit("/", 1)[1] for p in paths[:ok]]
        show(f"{label:<4} register {clients:3d} clients", ok, failed, lat, elapsed)
        print(f"    CPU ms per request: {cpu_report(pids, before, ok)}", flush=True)
    paths = [f"/skydns/services/{uuids[i % len(uuids)]}" for i in range(1_000_000)]
    pids = setup.pids()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ok, failed, lat, elapsed = asyncio.run(load(ports, 64, seconds, "PATCH", paths, {"TTL": 600}))
    show(f"{label:<4} heartbeat 64 clients", ok, failed, lat, elapsed)
    print(f"    CPU ms per request: {cpu_report(pids, before, ok)}", flush=True)
    visible(setup, run)


VISIBLE: dict[str, list[float]] = {}


def visible(setup: Setup, run: int, writes: int = 200) -> None:
    """Seconds from a write acknowledged by one node to its name in another
    node's DNS answers."""
    delays = []
    for i in range(writes):
        writer, reader = setup.nodes[i % 3], setup.nodes[(i + 1) % 3]
        name = f"v{run}x{i}"
        body: dict[str, Any] = dict(BODY, Name=name)
        code, _ = http("PUT", f"{writer.url}/skydns/services/{name}", body)
        assert code == 201, code
        start = time.perf_counter()
        deadline = start + 5
        while not dns_query(f"{name}.production.skydns.local", "SRV", reader.dns_port).answer:
            if time.perf_counter() > deadline:
                raise AssertionError(f"{name} not in {reader.node_id}'s answers in 5 s")
            time.sleep(0.0005)
        delays.append(time.perf_counter() - start)
    VISIBLE.setdefault(setup.store, []).extend(delays)
    print(f"{setup.store:<4} write on one node -> DNS on another: median "
          f"{statistics.median(delays) * 1e3:.1f} ms, p99 {percentile(delays, 0.99) * 1e3:.1f} ms",
          flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", default="1,16,64")
    args = parser.parse_args()
    missing = etcd_missing()
    if missing:
        raise SystemExit(missing)
    clients = [int(c) for c in args.clients.split(",")]
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    for run in range(args.runs):
        for store in ("etcd", "raft"):
            setup = Setup(store)
            try:
                setup.start()
                measure(setup, args.seconds, clients, run)
            finally:
                setup.stop()
    print(f"\nmedians over {args.runs} runs (load average now {os.getloadavg()[0]:.2f}):")
    show_medians()
    for store, delays in VISIBLE.items():
        print(f"{store:<4} write on one node -> DNS on another: median "
              f"{statistics.median(delays) * 1e3:.1f} ms, p99 "
              f"{percentile(delays, 0.99) * 1e3:.1f} ms ({len(delays)} writes)")  # fmt: skip


if __name__ == "__main__":
    main()
