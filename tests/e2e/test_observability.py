"""Observability of a real `twistd skydns` process: /health, /ready, /metrics
scraped and parsed after real HTTP and DNS traffic, and the log lines of
registration changes.

Parts that depend on wiring in ``skydns/tap.py`` (the apply listeners, the
``--log-format`` option, the DNS counters) are checked strictly once the
wiring is there, and skipped with a reason until then.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
from typing import Any, Optional

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

import skydns.tap
from tests.e2e.harness import TWISTD, SkyDNSProcess, dns_query, http

#: Exit statuses of a clean stop: twistd re-raises the SIGTERM it handled
#: once the reactor has stopped, so the process ends "killed by SIGTERM".
STOPPED = (0, -signal.SIGTERM)

SERVICE = {
    "Name": "rails", "Environment": "production", "Region": "east",
    "Version": "1.0.1", "Host": "127.0.0.10", "Port": 8080, "TTL": 30,
}  # fmt: skip


def wired(text: str) -> bool:
    """Whether the composition root mentions ``text`` (a listener or option)."""
    return text in inspect.getsource(skydns.tap)


def scrape(node: SkyDNSProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics, parsed: {(sample name, labels): value}."""
    status, body = http("GET", node.url + "/metrics")
    assert status == 200, (status, body)
    assert isinstance(body, str), body
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> Optional[float]:
    return samples.get((name, frozenset(labels.items())))


class MetricsAndHealthTests(SynchronousTestCase):
    """One node, real clients, the Prometheus text format parsed back."""

    def setUp(self) -> None:
        self.node = SkyDNSProcess()
        self.addCleanup(self.node.cleanup)
        self.node.start()
        self.node.wait_for("/ready")  # a fresh node elects itself first

    def register_and_query(self) -> None:
        url = self.node.url + "/skydns/services/1001"
        self.assertEqual(http("PUT", url, SERVICE)[0], 201)
        self.assertEqual(http("GET", url)[0], 200)
        self.assertEqual(http("GET", self.node.url + "/skydns/services/nope")[0], 404)
        answer = dns_query("rails.production.skydns.local", "SRV", self.node.dns_port)
        self.assertEqual(len(answer.answer[0]), 1)

    def test_health_and_ready(self) -> None:
        """/health answers 200 while the process runs; a one-node cluster that
        has elected itself is ready; neither needs the secret."""
        self.assertEqual(http("GET", self.node.url + "/health"), (200, {"status": "ok"}))
        self.assertEqual(http("GET", self.node.url + "/ready"), (200, {"ready": True}))

    def test_metrics_after_traffic(self) -> None:
        """After a registration and a DNS query, /metrics parses, shows one
        registered instance and the HTTP requests by route template and code."""
        self.register_and_query()
        samples = scrape(self.node)
        self.assertEqual(value(samples, "skydns_registered_instances"), 1.0)
        route = "/skydns/services/{uuid}"
        requests = "skydns_http_requests_total"
        self.assertEqual(value(samples, requests, route=route, method="PUT", code="201"), 1.0)
        self.assertEqual(value(samples, requests, route=route, method="GET", code="200"), 1.0)
        self.assertEqual(value(samples, requests, route=route, method="GET", code="404"), 1.0)
        count = value(samples, "skydns_http_request_duration_seconds_count", route=route)
        self.assertEqual(count, 3.0)
        # The scrape itself is counted once it has been answered.
        again = scrape(self.node)
        self.assertEqual(
            value(again, requests, route="/metrics", method="GET", code="200"), 1.0
        )

    def test_dns_queries_counted(self) -> None:
        """A DNS query over UDP is counted by type and transport, with its rcode."""
        self.register_and_query()
        samples = scrape(self.node)
        if not any(name == "skydns_dns_requests_total" for name, _ in samples):
            self.skipTest("the DNS server does not export its counters in this build yet")
        self.assertGreaterEqual(
            value(samples, "skydns_dns_requests_total", type="SRV", proto="udp") or 0, 1.0
        )
        self.assertGreaterEqual(value(samples, "skydns_dns_responses_total", rcode="NOERROR")
                                or 0, 1.0)  # fmt: skip

    def test_registry_changes_counted(self) -> None:
        """Applied commands are counted by op and status."""
        if not wired("metrics.on_applied"):
            self.skipTest("tap.py does not register metrics.on_applied yet")
        self.register_and_query()
        url = self.node.url + "/skydns/services/1001"
        self.assertEqual(http("PUT", url, SERVICE)[0], 409)
        self.assertEqual(http("DELETE", url)[0], 200)
        samples = scrape(self.node)
        changes = "skydns_registry_changes_total"
        self.assertEqual(value(samples, changes, op="register", status="ok"), 1.0)
        self.assertEqual(value(samples, changes, op="register", status="conflict"), 1.0)
        self.assertEqual(value(samples, changes, op="unregister", status="ok"), 1.0)
        self.assertEqual(value(samples, "skydns_registered_instances"), 0.0)


class ExporterParityTests(SynchronousTestCase):
    """What every Prometheus exporter (and CoreDNS) shows, checked on a real
    node after local and forwarded DNS traffic, and by promtool when it is
    installed."""

    def test_families_and_promtool(self) -> None:
        from tests.dns_fakes import ThreadedUpstream, answering

        upstream = ThreadedUpstream(answering(count=1), "127.0.0.1", 0)
        address = upstream.start()
        self.addCleanup(upstream.stop)
        node = SkyDNSProcess(["--nameserver", f"{address.host}:{address.port}"])
        self.addCleanup(node.cleanup)
        node.start()
        node.wait_for("/ready")
        self.assertEqual(http("PUT", node.url + "/skydns/services/1001", SERVICE)[0], 201)
        for _ in range(3):
            dns_query("rails.production.skydns.local", "SRV", node.dns_port)
        dns_query("www.example.org", "A", node.dns_port)
        samples = scrape(node)
        names = {name for name, _ in samples}
        for family in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                       "process_open_fds", "python_info", "python_gc_objects_collected_total",
                       "skydns_dns_cache_entries"):  # fmt: skip
            self.assertIn(family, names)
        (build,) = [dict(labels) for name, labels in samples if name == "skydns_build_info"]
        self.assertEqual(sorted(build), ["python", "twisted", "version"])
        self.assertGreaterEqual(value(samples, "skydns_dns_request_size_bytes_count",
                                      proto="udp") or 0, 1)  # fmt: skip
        self.assertGreaterEqual(value(samples, "skydns_dns_response_size_bytes_count",
                                      proto="udp") or 0, 1)  # fmt: skip
        upstream_label = f"{address.host}:{address.port}"
        self.assertEqual(value(samples, "skydns_forward_requests_total",
                               upstream=upstream_label, zone="."), 1.0)  # fmt: skip
        self.assertEqual(value(samples, "skydns_forward_request_duration_seconds_count",
                               upstream=upstream_label), 1.0)  # fmt: skip
        self.assertEqual(value(samples, "skydns_dns_cache_entries", cache="forward"), 1.0)
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool is not installed (Debian: prometheus); families checked")
        _, body = http("GET", node.url + "/metrics")
        checked = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                                 capture_output=True, timeout=30)  # fmt: skip
        self.assertEqual((checked.returncode, checked.stdout + checked.stderr), (0, ""))


class JSONLogProcess(SkyDNSProcess):
    """A node writing JSON lines: with ``--log-format json`` into its log
    file when tap.py has the option, else through ``twistd --logger`` to
    stdout, which is captured into the same file."""

    option = wired('"log-format"')

    def args(self) -> list[str]:
        args = super().args()
        if self.option:
            return args + ["--log-format", "json"]
        n = len(TWISTD)
        return args[:n] + ["--logger", "skydns.logging.json_observer"] + args[n:]

    def start(self, wait: bool = True) -> SkyDNSProcess:
        if self.option:
            return super().start(wait)
        env = dict(os.environ)
        env.pop("SKYDNS_SECRET", None)
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                self.args(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        if wait:
            self.wait_healthy()
        return self

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]


class LogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = JSONLogProcess()
        self.addCleanup(self.node.cleanup)
        self.node.start()
        self.node.wait_for("/ready")

    def test_json_lines_one_per_change(self) -> None:
        """Every log line is a JSON object; a registration and a removal give
        one info line each with the instance's fields; renewals, reads and
        DNS queries none."""
        url = self.node.url + "/skydns/services/1001"
        self.assertEqual(http("PUT", url, SERVICE)[0], 201)
        self.assertEqual(http("PATCH", url, {"TTL": 30})[0], 200)
        self.assertEqual(http("GET", url)[0], 200)
        dns_query("rails.production.skydns.local", "SRV", self.node.dns_port)
        self.assertEqual(http("DELETE", url)[0], 200)
        self.assertIn(self.node.stop(), STOPPED)
        records = self.node.records()
        self.assertTrue(records)
        for record in records:
            self.assertEqual(set(record) >= {"time", "level", "namespace", "message"}, True)
        self.assertFalse([r for r in records if r["level"] == "debug"])
        if not wired("RegistryLog"):
            self.skipTest("tap.py does not register the RegistryLog listener yet")
        changes = [r for r in records if "change" in r]
        self.assertEqual([r["change"] for r in changes], ["register", "unregister"])
        for r in changes:
            self.assertEqual(
                (r["uuid"], r["name"], r["environment"], r["region"], r["host"], r["port"]),
                ("1001", "rails", "production", "east", "127.0.0.10", 8080),
            )
        if wired("make_site"):
            self.assertFalse([r for r in records if "/skydns/services/1001 HTTP" in r["message"]])

    def test_stops_cleanly(self) -> None:
        """SIGTERM stops the node cleanly: its last JSON line says so."""
        self.assertIn(self.node.stop(), STOPPED)
        self.assertIn("Server Shut Down.", [r["message"] for r in self.node.records()])
