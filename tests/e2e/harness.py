"""Real `twistd skydns` processes on loopback, for end-to-end tests.

Every wait is bounded; processes are stopped with SIGTERM and killed if they
do not stop.  Only loopback addresses are ever used.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

START_TIMEOUT = 30.0

#: twistd of this interpreter's environment (tox's venv, or the developer's).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
STOP_TIMEOUT = 10.0


#: Ports handed out come from below the kernel's ephemeral range (usually
#: 32768-60999), so that no node's outgoing connection can take the port
#: another node is about to listen on.
PORTS = range(20000, 32000)
_rng = random.Random()


#: Ports this process handed out: never twice, since a port handed out may
#: not be bound yet when the next is asked for (a node's Raft and DNS ports).
_given: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both TCP and UDP on ``host`` right now, and
    not handed out before by this process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = _rng.choice(PORTS)
        if port in _given:
            continue
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tcp.bind((host, port))
            udp.bind((host, port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        _given.add(port)
        return port
    raise RuntimeError("no free port found")


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One HTTP request over a real socket; returns (status, decoded JSON or text)."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class SkyDNSProcess:
    """One `twistd -n skydns` node with its own ports and data dir."""

    def __init__(
        self,
        extra_args: list[str] | None = None,
        data_dir: str | None = None,
        dns_port: int | None = None,
        http_port: int | None = None,
        raft_port: int | None = None,
        node_id: str | None = None,
    ) -> None:
        self.dns_port = dns_port or free_port()
        self.http_port = http_port or free_port()
        self.raft_port = raft_port or free_port()
        self.node_id = node_id
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="skydns-e2e-")
        self.extra_args = list(extra_args or [])
        self.log_path = os.path.join(self.data_dir, "..", os.path.basename(self.data_dir) + ".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def args(self) -> list[str]:
        args = [
            *TWISTD, "--nodaemon", "--pidfile=",
            "--logfile", self.log_path, "skydns",
            "--dns", f"127.0.0.1:{self.dns_port}",
            "--http", f"tcp:{self.http_port}:interface=127.0.0.1",
            "--raft", f"tcp:{self.raft_port}:interface=127.0.0.1",
            "--data-dir", self.data_dir,
        ]  # fmt: skip
        if self.node_id:
            args += ["--node-id", self.node_id]
        return args + self.extra_args

    def start(self, wait: bool = True) -> SkyDNSProcess:
        env = dict(os.environ)
        env.pop("SKYDNS_SECRET", None)
        with open(self.log_path + ".out", "ab") as output:
            self.process = subprocess.Popen(
                self.args(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if wait:
            self.wait_healthy()
        return self

    def log(self) -> str:
        """The node's log, then whatever it printed (usage errors, tracebacks)."""
        text = ""
        for path in (self.log_path, self.log_path + ".out"):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        self.wait_for("/health", timeout)

    def wait_for(self, path: str, timeout: float = START_TIMEOUT) -> None:
        """Poll ``path`` until it answers 200; fail with the node's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"skydns exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                status, _ = http("GET", self.url + path, timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{path} not 200 within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not stopped in time; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            raise AssertionError(f"skydns did not stop on SIGTERM:\n{self.log()[-4000:]}") from None

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def dns_query(
    name: str, rdtype: str, port: int, tcp: bool = False, timeout: float = 3.0, **make: Any
) -> Any:
    """Ask 127.0.0.1:port with dnspython; returns the dns.message.Message."""
    import dns.message
    import dns.query

    query = dns.message.make_query(name, rdtype, **make)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=port, timeout=timeout)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)


def start_cluster(test: Any, size: int = 3, timeout: float = 20.0) -> list[SkyDNSProcess]:
    """``size`` nodes started with the same ``--peers``, all ready; stopped
    when ``test`` ends."""
    ids = [f"n{i}" for i in range(1, size + 1)]
    ports = {node_id: free_port() for node_id in ids}
    peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
    nodes = [
        SkyDNSProcess(extra_args=["--peers", peers], node_id=i, raft_port=ports[i]) for i in ids
    ]
    for node in nodes:
        test.addCleanup(node.cleanup)
        node.start(wait=False)
    for node in nodes:
        node.wait_for("/ready", timeout)
    return nodes


def status(node: SkyDNSProcess) -> dict[str, Any]:
    """``GET /skydns/cluster`` of ``node``."""
    code, body = http("GET", node.url + "/skydns/cluster", timeout=2.0)
    assert code == 200 and isinstance(body, dict), (code, body)
    return body


def udp_flood(port: int, wire: bytes, count: int, quiet: float = 0.5) -> tuple[int, int, int]:
    """Send ``wire`` ``count`` times to 127.0.0.1:``port`` over UDP as fast
    as one socket can, reading replies meanwhile, until ``quiet`` seconds
    pass without one: (bytes sent, bytes received, replies received)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        sent = received = replies = 0

        def drain() -> None:
            """Read replies until none is waiting (until ``quiet`` passes
            without one, once the socket has a timeout)."""
            nonlocal received, replies
            while True:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, TimeoutError):
                    return
                received += len(data)
                replies += 1

        while sent < count * len(wire):
            for _ in range(min(32, count - sent // len(wire))):
                try:
                    sock.send(wire)
                except BlockingIOError:
                    break
                sent += len(wire)
            drain()
        sock.settimeout(quiet)
        drain()
        return sent, received, replies
    finally:
        sock.close()


def callback_receiver(test: Any) -> tuple[int, list[str]]:
    """An HTTP server on 127.0.0.1 recording the path of each DELETE it gets
    (a SkyDNS callback), for as long as ``test`` runs: (port, paths)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_DELETE(self) -> None:  # noqa: N802 - http.server's hook name
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test.addCleanup(server.server_close)
    test.addCleanup(server.shutdown)
    return port, received
