"""How much a flood of forged worst-case queries draws back from SkyDNS.

One ``twistd skydns`` node (loopback, all defaults but ``--no-forward``)
holds a service with 19 instances, whose SRV answer (1,216 bytes or so,
with the A records) is the largest that fits ``--max-udp-size``'s default.
One UDP socket on 127.0.0.1 sends ``--queries`` EDNS SRV queries for it as
fast as it can, reading replies meanwhile.  Prints bytes sent, bytes
received and their ratio (the amplification), for the defaults and beside
them for ``--rrl-large-rate 0`` (the budget off), interleaved over
``--runs`` rounds; the medians last.

    python bench/amplification.py [--queries 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.harness import SkyDNSProcess, http, udp_flood  # noqa: E402

NAME = "web.prod.skydns.local"
INSTANCES = 19


def measure(extra: list[str], queries: int) -> tuple[int, int, int]:
    import dns.message

    node = SkyDNSProcess(["--no-forward", *extra])
    node.start()
    try:
        for n in range(INSTANCES):
            body = {"Name": "web", "Environment": "prod", "Region": "east", "Version": "1",
                    "Host": f"127.0.1.{n + 1}", "Port": 80, "TTL": 600}  # fmt: skip
            code, _ = http("PUT", f"{node.url}/skydns/services/i{n}", body)
            if code != 201:
                raise RuntimeError(f"registration failed: HTTP {code}")
        wire = dns.message.make_query(NAME, "SRV", use_edns=0, payload=4096).to_wire()
        return udp_flood(node.dns_port, wire, queries)
    finally:
        node.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    ratios: dict[str, list[float]] = {"defaults": [], "budget off": []}
    for run in range(args.runs):
        for kind, extra in (("defaults", []), ("budget off", ["--rrl-large-rate", "0"])):
            sent, received, replies = measure(extra, args.queries)
            ratio = received / sent
            ratios[kind].append(ratio)
            print(f"run {run + 1} {kind:10}  sent {sent:9,} B  received {received:10,} B"
                  f" in {replies:6,} replies  ratio {ratio:5.2f}x", flush=True)  # fmt: skip
    for kind, values in ratios.items():
        print(f"median {kind:10}  {statistics.median(values):5.2f}x")


if __name__ == "__main__":
    main()
