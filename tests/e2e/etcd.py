"""A real etcd on loopback for the end-to-end tests of ``--store etcd``:
started on free ports with its own data dir, waited for with a bound,
stopped with SIGTERM (killed if it does not stop).  Tests skip, saying so,
where no etcd binary exists."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from twisted.trial.unittest import SkipTest

from tests.e2e.harness import free_port

#: Where the binary is looked for (Debian's etcd-server installs /usr/bin/etcd).
ETCD = os.environ.get("SKYDNS_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"


def etcd_missing() -> str | None:
    """Why the etcd tests cannot run here, or None."""
    if not os.access(ETCD, os.X_OK):
        return f"no etcd binary ({ETCD}): install etcd-server (.ci/run does) to run these"
    return None


def skip_without_etcd() -> None:
    """Skip the test (or class) calling this, saying why, where there is no etcd."""
    missing = etcd_missing()
    if missing:
        raise SkipTest(missing)


class EtcdProcess:
    """One etcd member on 127.0.0.1; with ``tls`` (paths of the CA, etcd's
    certificate and key, and a client's certificate and key), its client
    port is HTTPS and takes only clients with a certificate from that CA."""

    def __init__(self, tls: tuple[str, str, str, str, str] | None = None) -> None:
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="skydns-etcd-")
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = tls

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    def _health(self) -> bool:
        context = None
        if self.tls is not None:
            import ssl

            ca, _, _, cert, key = self.tls
            context = ssl.create_default_context(cafile=ca)
            context.load_cert_chain(cert, key)
        with urllib.request.urlopen(self.url + "/health", timeout=1, context=context) as answer:
            return b"true" in answer.read()

    def start(self, timeout: float = 20.0) -> EtcdProcess:
        peer = f"http://127.0.0.1:{self.peer_port}"
        tls: list[str] = []
        if self.tls is not None:
            ca, cert, key, _, _ = self.tls
            tls = ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
                   "--client-cert-auth"]  # fmt: skip
        with open(os.path.join(self.data_dir, "etcd.log"), "ab") as log:
            self.process = subprocess.Popen(
                [ETCD, "--name", "t", "--data-dir", os.path.join(self.data_dir, "d"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"t={peer}", *tls],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._health():
                    return self
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"etcd did not start within {timeout}s (log in {self.data_dir})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
