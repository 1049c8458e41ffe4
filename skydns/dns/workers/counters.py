"""A DNS worker's counters, added into the node's metrics: each worker sends
the totals of its DNS counter families (requests, responses, answer cache,
malformed, rate limiting, forwarding) once a second as a JSON line on its
standard output; the node adds what grew since that worker's last report to
its own families, so ``skydns_dns_*_total`` on the node's ``/metrics`` count
every process's answers.  (Histograms and gauges stay the node's own.)"""

from __future__ import annotations

import json
from typing import Any

#: The `skydns.metrics.Metrics` counter families a worker reports.
SHARED = ("dns_queries", "dns_responses", "dns_cache", "dns_malformed", "dns_rrl",
          "forwarded", "forward_failures")  # fmt: skip


def report(metrics: Any) -> bytes:
    """This process's totals of the `SHARED` families, as one JSON line."""
    totals = []
    for name in SHARED:
        for metric in getattr(metrics, name).collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    totals.append([name, sample.labels, sample.value])
    return json.dumps(totals, separators=(",", ":")).encode() + b"\n"


class Reported:
    """What one worker reported last, to add only what grew."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def add(self, line: bytes, metrics: Any) -> None:
        """Add a report's growth to ``metrics``; ValueError for a line that
        is not a report (nothing is added then)."""
        entries = json.loads(line)
        checked = []
        for name, labels, value in entries:
            if name not in SHARED or not isinstance(labels, dict) or not isinstance(
                    value, (int, float)):  # fmt: skip
                raise ValueError(f"not a counter report: {name!r}")
            key = (name, tuple(sorted((str(k), str(v)) for k, v in labels.items())))
            checked.append((key, float(value)))
        for key, value in checked:
            grown = value - self.last.get(key, 0.0)
            self.last[key] = value
            if grown > 0:
                family = getattr(metrics, key[0])
                (family.labels(**dict(key[1])) if key[1] else family).inc(grown)
