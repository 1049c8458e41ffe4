"""Hostile input against real `twistd skydns` processes: a cluster that
requires a cluster key keeps working, and stays consistent, while strangers
send random bytes, wrong-key handshakes and malformed AMP boxes to its Raft
ports; the API over TLS with a secret; a damaged data dir stops start-up."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import struct
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.net.handshake import HELLO_SIZE, PROOF_SIZE, hello, parse_hello, proof, transcript
from tests.e2e.harness import SkyDNSProcess, dns_query, free_port, http, udp_flood
from tests.e2e.test_cluster import BOUND, wait_until

KEY = b"0123456789abcdef0123456789abcdef"


def _service(host: str) -> dict[str, object]:
    return {
        "Name": "web", "Environment": "prod", "Region": "east",
        "Version": "1", "Host": host, "Port": 80, "TTL": 600,
    }  # fmt: skip


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the other side closes the connection within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _handshake(sock: socket.socket, key: bytes) -> bool:
    """Play the connecting side of the handshake with ``key`` (as a node
    that does not know whom it reaches); whether the server's proof matches."""
    nonce = os.urandom(32)
    sock.sendall(hello(nonce, "stranger", ""))
    received = _recv_exact(sock, HELLO_SIZE + 1)
    received += _recv_exact(sock, received[-1] + 1)
    received += _recv_exact(sock, received[-1])
    parsed = parse_hello(received)
    assert parsed is not None
    handshake = transcript(nonce, parsed[0], "stranger", parsed[1])
    sock.sendall(proof(key, b"C", handshake))
    try:
        return _recv_exact(sock, PROOF_SIZE) == proof(key, b"S", handshake)
    except ConnectionResetError:  # a wrong proof is answered by a reset
        return False


def _box(*pairs: tuple[bytes, bytes]) -> bytes:
    parts = [struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v for k, v in pairs]
    return b"".join(parts) + b"\x00\x00"


#: AMP boxes no honest peer sends: each must cost the sender its connection
#: (or, for an asked unknown command, an error answer), never a log entry.
MALFORMED_BOXES = [
    _box((b"_command", b"AppendEntries"), (b"src", b"x"), (b"dst", b"y"), (b"term", b"abc")),
    _box((b"_command", b"AppendEntries"), (b"src", b""), (b"dst", b"y"), (b"term", b"-1")),
    _box((b"_command", b"AppendEntries"), (b"term", b"1")),
    _box((b"_command", b"NoSuchCommand"), (b"_ask", b"1")),
    _box((b"_command", b"NoSuchCommand")),
    _box(
        (b"_command", b"RequestVote"),
        (b"src", b"a" * 64),
        (b"dst", b"b"),
        (b"term", b"1"),
        (b"last_log_index", b"1"),
        (b"last_log_term", b"1"),
        (b"prevote", b"maybe"),
        (b"transfer", b"False"),
    ),  # fmt: skip
    _box((b"_answer", b"999"), (b"index", b"1")),
    _box((b"_error", b"1"), (b"_error_code", b"NOT_LEADER")),
    b"\x01\x00" + b"k" * 256 + b"\x00\x01v\x00\x00",  # a key longer than 255 bytes
    b"\x00\x08_command\xff\xff" + b"v" * 100,  # a value shorter than its length
]


class HostileRaftPortTests(SynchronousTestCase):
    def leader_of(self, nodes: list[SkyDNSProcess]) -> SkyDNSProcess:
        def find() -> SkyDNSProcess | None:
            for node in nodes:
                code, body = http("GET", node.url + "/skydns/cluster", timeout=2.0)
                if code == 200 and body["leader"] == node.node_id:
                    return node
            return None

        leader: SkyDNSProcess = wait_until(find, "a leader is elected")
        return leader

    def put(self, node: SkyDNSProcess, uuid: str, host: str) -> int:
        code, _ = http("PUT", f"{node.url}/skydns/services/{uuid}", _service(host), timeout=5.0)
        return code

    def key_file(self) -> str:
        fd, path = tempfile.mkstemp(prefix="skydns-key-")
        os.write(fd, KEY + b"\n")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        return path

    def start_keyed_cluster(self) -> list[SkyDNSProcess]:
        ids = ["n1", "n2", "n3"]
        ports = {node_id: free_port() for node_id in ids}
        peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
        key = self.key_file()
        nodes = [
            SkyDNSProcess(
                extra_args=["--peers", peers, "--cluster-key-file", key],
                node_id=i,
                raft_port=ports[i],
            )  # fmt: skip
            for i in ids
        ]
        for node in nodes:
            self.addCleanup(node.cleanup)
            node.start(wait=False)
        for node in nodes:
            node.wait_for("/ready", BOUND)
        return nodes

    def connect(self, node: SkyDNSProcess) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", node.raft_port), timeout=5.0)
        self.addCleanup(sock.close)
        return sock

    def assert_consistent(self, nodes: list[SkyDNSProcess], uuids: list[str]) -> None:
        """Every node holds exactly ``uuids`` (nothing a stranger slipped in)."""
        for node in nodes:

            def holds(n: SkyDNSProcess = node) -> bool:
                code, body = http("GET", n.url + "/skydns/services/", timeout=2.0)
                return code == 200 and sorted(s["UUID"] for s in body) == sorted(uuids)

            wait_until(holds, f"{node.node_id} holds exactly {uuids}")

    def test_strangers_on_the_raft_ports_change_nothing(self) -> None:
        """Random bytes, a wrong-key handshake, an AMP client that skips the
        handshake, and (after a correct handshake) malformed AMP boxes: every
        such connection ends, the cluster keeps its leader, takes writes,
        and every node holds the same services; the drops are logged."""
        nodes = self.start_keyed_cluster()
        leader = self.leader_of(nodes)
        self.assertEqual(self.put(leader, "before", "127.0.0.31"), 201)
        for node in nodes:
            sock = self.connect(node)
            sock.sendall(os.urandom(2048))
            self.assertTrue(_closed_by_peer(sock), f"random bytes kept open on {node.node_id}")

            sock = self.connect(node)
            self.assertFalse(_handshake(sock, b"not the cluster key at all!!"))
            self.assertTrue(_closed_by_peer(sock), "a wrong key kept open")

            sock = self.connect(node)
            sock.sendall(MALFORMED_BOXES[0])  # AMP with no handshake
            self.assertTrue(_closed_by_peer(sock), "a box without handshake kept open")

            for box in MALFORMED_BOXES:
                sock = self.connect(node)
                self.assertTrue(_handshake(sock, KEY))
                sock.sendall(box)
                sock.shutdown(socket.SHUT_WR)
                self.assertTrue(_closed_by_peer(sock), f"{box[:40]!r} kept open")
        self.assertEqual(self.leader_of(nodes).node_id, leader.node_id)
        follower = next(n for n in nodes if n is not leader)
        self.assertEqual(self.put(follower, "after", "127.0.0.32"), 201)
        self.assert_consistent(nodes, ["after", "before"])
        for node in nodes:
            log = node.log()
            self.assertIn("dropped an unauthenticated Raft connection", log)
            self.assertIn("wrong cluster key", log)
            self.assertNotIn("Unhandled Error", log)

    def test_a_relayed_handshake_commits_nothing(self) -> None:
        """Issue 17's attack: n3 is down and a process holds its address. It
        takes the connections the others open to n3, opens its own to the
        leader for each, passes every byte along both ways, then adds a
        ForwardProposal of its own.  The handshake meant for n3 fails at the
        leader; nothing is committed anywhere."""
        import selectors
        import threading

        nodes = self.start_keyed_cluster()
        self.assertEqual(self.put(self.leader_of(nodes), "before", "127.0.0.34"), 201)
        down = next(n for n in nodes if n is not self.leader_of(nodes))
        down.stop()
        live = [n for n in nodes if n is not down]
        leader = self.leader_of(live)
        listener = socket.create_server(("127.0.0.1", down.raft_port))
        self.addCleanup(listener.close)
        listener.settimeout(0.2)
        stop = threading.Event()
        self.addCleanup(stop.set)
        relayed: list[int] = []

        def relay(inbound: socket.socket) -> None:
            outbound = socket.create_connection(("127.0.0.1", leader.raft_port), timeout=5.0)
            chooser = selectors.DefaultSelector()
            chooser.register(inbound, selectors.EVENT_READ, outbound)
            chooser.register(outbound, selectors.EVENT_READ, inbound)
            sent = 0
            injected = False
            while not stop.is_set():
                for key, _ in chooser.select(0.1):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:
                        inbound.close()
                        outbound.close()
                        return
                    relayed.append(len(data))
                    sent += len(data)
                    key.data.sendall(data)
                if not injected and sent > 400:  # past the handshake
                    outbound.sendall(_forward_proposal("relayed"))
                    injected = True

        def accept() -> None:
            while not stop.is_set():
                try:
                    inbound, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=relay, args=(inbound,), daemon=True).start()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5.0)
        wait_until(lambda: bool(relayed), "a member dials the stopped one and the relay passes")
        meant = f"meant to reach '{down.node_id}'"
        wait_until(lambda: meant in leader.log(), "the leader refuses a handshake for another")
        self.assertEqual(self.put(leader, "after", "127.0.0.35"), 201)
        time.sleep(1.0)  # time for anything the relay slipped in to commit
        for node in live:

            def holds(n: SkyDNSProcess = node) -> bool:
                code, body = http("GET", n.url + "/skydns/services/", timeout=2.0)
                return code == 200 and sorted(s["UUID"] for s in body) == ["after", "before"]

            wait_until(holds, f"{node.node_id} holds exactly before and after")

    def test_a_node_with_the_wrong_key_cannot_join(self) -> None:
        """A fourth process listed nowhere but dialling in with another key
        is refused on every connection; the cluster is unaffected."""
        nodes = self.start_keyed_cluster()
        leader = self.leader_of(nodes)
        for _ in range(20):
            sock = self.connect(leader)
            self.assertFalse(_handshake(sock, b"y" * 32))
            sock.close()
        self.assertEqual(self.put(leader, "k1", "127.0.0.33"), 201)
        self.assert_consistent(nodes, ["k1"])
        # Twenty drops within seconds: logged once, the rest counted.
        self.assertIn(leader.log().count("wrong cluster key"), (1, 2))


def _forward_proposal(uuid: str) -> bytes:
    """A plain AMP ``ForwardProposal`` of a Register, as any local process
    could send it to a Raft port."""
    from skydns.commands import Register, encode
    from skydns.names import Service
    from skydns.raft.node.envelope import wrap

    service = Service(uuid, "web", "prod", "east", "1", "127.0.0.61", 80, 600)
    data = wrap("intruder", 1, encode(Register(service, time.time())))
    return _box((b"_command", b"ForwardProposal"), (b"_ask", b"1"), (b"data", data))


class UnkeyedRaftPortTests(SynchronousTestCase):
    def send_forward_proposal(self, node: SkyDNSProcess, uuid: str) -> bytes:
        """What the node answers a plain ForwardProposal with (empty if it
        closes the connection without an answer)."""
        sock = socket.create_connection(("127.0.0.1", node.raft_port), timeout=5.0)
        self.addCleanup(sock.close)
        sock.sendall(_forward_proposal(uuid))
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if answer.endswith(b"\x00\x00"):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return answer

    def test_only_a_secret_closes_the_raft_port(self) -> None:
        """Issue 17: with only --secret, a plain AMP ForwardProposal from a
        local process commits nothing (the port requires a key derived from
        the secret).  Without any, on the loopback one-node default, the
        same box is taken: the control that shows the test can fail."""
        secured = SkyDNSProcess(extra_args=["--secret", "s3cret"])
        self.addCleanup(secured.cleanup)
        secured.start(wait=False)
        secured.wait_for("/ready", BOUND)
        self.assertNotIn(b"_answer", self.send_forward_proposal(secured, "intruder1"))
        code, body = http("GET", secured.url + "/skydns/services/",
                          headers={"Authorization": "s3cret"})  # fmt: skip
        self.assertEqual((code, body), (200, []))
        self.assertIn("dropped an unauthenticated Raft connection", secured.log())

        open_node = SkyDNSProcess()
        self.addCleanup(open_node.cleanup)
        open_node.start(wait=False)
        open_node.wait_for("/ready", BOUND)
        self.assertIn(b"_answer", self.send_forward_proposal(open_node, "intruder2"))

        def taken() -> bool:
            code, body = http("GET", open_node.url + "/skydns/services/")
            return code == 200 and [s["UUID"] for s in body] == ["intruder2"]

        wait_until(taken, "the open node applies the proposal")

    def test_malformed_boxes_on_a_lone_node(self) -> None:
        """Without a cluster key the AMP layer itself drops malformed boxes;
        the node keeps serving and its registry is untouched."""
        node = SkyDNSProcess()
        self.addCleanup(node.cleanup)
        node.start(wait=False)
        node.wait_for("/ready", BOUND)
        self.assertEqual(http("PUT", node.url + "/skydns/services/u1",
                              _service("127.0.0.41"))[0], 201)  # fmt: skip
        for box in [*MALFORMED_BOXES, os.urandom(4096)]:
            sock = socket.create_connection(("127.0.0.1", node.raft_port), timeout=5.0)
            try:
                sock.sendall(box)
                sock.shutdown(socket.SHUT_WR)
                self.assertTrue(_closed_by_peer(sock), f"{box[:40]!r} kept open")
            finally:
                sock.close()
        code, body = http("GET", node.url + "/skydns/services/")
        self.assertEqual((code, [s["UUID"] for s in body]), (200, ["u1"]))
        self.assertEqual(http("GET", node.url + "/ready")[0], 200)


def _self_signed(directory: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))  # fmt: skip
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class HTTPSTests(SynchronousTestCase):
    def https(
        self, context: ssl.SSLContext, method: str, url: str, body: Any = None,
        secret: str | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        import json

        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5.0, context=context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_api_over_tls_with_a_secret(self) -> None:
        """``--http ssl:...`` serves the API over TLS (the client verifies
        the certificate); a wrong or missing secret gets 401 and registers
        nothing; plain HTTP on that port gets no answer."""
        directory = tempfile.mkdtemp(prefix="skydns-tls-")
        key_path, cert_path = _self_signed(directory)
        port = free_port()
        node = SkyDNSProcess(
            extra_args=[
                "--http", f"ssl:{port}:interface=127.0.0.1:privateKey={key_path}"
                f":certKey={cert_path}",
                "--secret", "s3cret",
            ],
            http_port=port,
        )  # fmt: skip
        self.addCleanup(node.cleanup)
        node.start(wait=False)
        context = ssl.create_default_context(cafile=cert_path)
        base = f"https://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return self.https(context, "GET", base + "/ready")[0] == 200
            except (OSError, ValueError):
                return False

        wait_until(ready, "the API answers over TLS")
        url = base + "/skydns/services/t1"
        self.assertEqual(self.https(context, "PUT", url, _service("127.0.0.51"), "wrong")[0], 401)
        self.assertEqual(self.https(context, "PUT", url, _service("127.0.0.51"))[0], 401)
        self.assertEqual(self.https(context, "GET", base + "/skydns/services/", secret="s3cret"),
                         (200, []))  # fmt: skip
        code, body = self.https(context, "PUT", url, _service("127.0.0.51"), "s3cret")
        self.assertEqual((code, body["Host"]), (201, "127.0.0.51"))
        self.assertEqual(self.https(context, "GET", url, secret="s3cret")[0], 200)
        self.assertEqual(self.https(context, "DELETE", url, secret="nope")[0], 401)
        self.assertEqual(self.https(context, "GET", url, secret="s3cret")[0], 200)
        with self.assertRaises(OSError):
            http("GET", f"http://127.0.0.1:{port}/health", timeout=2.0)
        unverified = ssl.create_default_context()  # does not trust the self-signed cert
        with self.assertRaises(urllib.error.URLError):
            self.https(unverified, "GET", base + "/health")


class DamagedDataDirTests(SynchronousTestCase):
    def refuses(self, data_dir: str) -> str:
        """Start on ``data_dir``; it must exit non-zero; return its output."""
        node = SkyDNSProcess(data_dir=data_dir)
        self.addCleanup(node.cleanup)
        node.start(wait=False)
        assert node.process is not None
        deadline = time.monotonic() + BOUND
        while node.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIsNotNone(node.process.returncode, "still running on a damaged data dir")
        self.assertNotEqual(node.process.returncode, 0)
        output = node.log()
        self.assertNotIn("Traceback", output)
        with self.assertRaises(OSError):
            http("GET", node.url + "/health", timeout=1.0)
        return output

    def test_foreign_file_in_the_wal_directory(self) -> None:
        data_dir = tempfile.mkdtemp(prefix="skydns-e2e-")
        os.mkdir(os.path.join(data_dir, "wal"))
        foreign = os.path.join(data_dir, "wal", "notes.txt")
        with open(foreign, "w") as f:
            f.write("not a segment\n")
        output = self.refuses(data_dir)
        self.assertIn(f"skydns: cannot start: data dir {data_dir}: {foreign}: corrupt data at "
                      "byte offset 0: foreign file in the WAL directory", output)  # fmt: skip

    def test_a_segment_from_something_else(self) -> None:
        data_dir = tempfile.mkdtemp(prefix="skydns-e2e-")
        os.mkdir(os.path.join(data_dir, "wal"))
        segment = os.path.join(data_dir, "wal", "0000000000000000-0000000000000000.wal")
        with open(segment, "wb") as f:
            f.write(b"PK\x03\x04" + os.urandom(4096))
        output = self.refuses(data_dir)
        self.assertIn(f"{segment}: corrupt data at byte offset 0: bad magic", output)

    def test_a_flipped_byte_inside_the_log(self) -> None:
        """Registrations made, the node stopped, one byte in the middle of its
        segment flipped: it refuses to start, naming the file and an offset
        past the header, rather than serve a shortened log."""
        node = SkyDNSProcess()
        self.addCleanup(node.cleanup)
        node.start(wait=False)
        node.wait_for("/ready", BOUND)
        for i in range(20):
            self.assertEqual(http("PUT", f"{node.url}/skydns/services/f{i}",
                                  _service(f"127.0.1.{i}"))[0], 201)  # fmt: skip
        node.stop()
        [name] = os.listdir(os.path.join(node.data_dir, "wal"))
        segment = os.path.join(node.data_dir, "wal", name)
        with open(segment, "r+b") as f:
            data = f.read()
            middle = len(data) // 2
            f.seek(middle)
            f.write(bytes([data[middle] ^ 0xFF]))
        output = self.refuses(node.data_dir)
        self.assertIn(f"{segment}: corrupt data at byte offset ", output)
        offset = int(output.split(f"{segment}: corrupt data at byte offset ")[1].split(":")[0])
        self.assertTrue(0 < offset <= middle, (offset, middle))


class ResponseRateLimitTests(SynchronousTestCase):
    def test_a_udp_burst_is_limited_and_tcp_still_answers(self) -> None:
        """With ``--rrl-rate 5`` a burst of 40 UDP queries from 127.0.0.1 gets
        about five answers; of the rest every second one gets an empty TC
        reply and the others nothing.  TCP still answers, and /metrics counts
        what was dropped and slipped."""
        import dns.flags
        import dns.message

        node = SkyDNSProcess(["--no-forward", "--rrl-rate", "5"])
        self.addCleanup(node.cleanup)
        node.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.connect(("127.0.0.1", node.dns_port))
        started = time.monotonic()
        for n in range(40):
            query = dns.message.make_query("skydns.local", "SOA")
            query.id = n
            sock.send(query.to_wire())
        replies = []
        sock.settimeout(0.5)  # after the last reply, half a second of silence ends it
        while time.monotonic() - started < 5.0:
            try:
                replies.append(dns.message.from_wire(sock.recv(4096)))
            except TimeoutError:
                break
        elapsed = time.monotonic() - started
        answered = [r for r in replies if not r.flags & dns.flags.TC]
        slipped = [r for r in replies if r.flags & dns.flags.TC]
        # The burst of 5, and 5 a second more while the burst was sent.
        self.assertGreaterEqual(len(answered), 5)
        self.assertLessEqual(len(answered), 5 + 5 * elapsed + 1)
        self.assertTrue(all(r.answer for r in answered))
        self.assertTrue(all(not r.answer for r in slipped))
        dropped = 40 - len(replies)
        self.assertGreaterEqual(len(slipped), 15)
        self.assertLessEqual(abs(dropped - len(slipped)), 1)
        reply = dns_query("skydns.local", "SOA", node.dns_port, tcp=True)
        self.assertFalse(reply.flags & dns.flags.TC)
        self.assertEqual(len(reply.answer), 1)
        _, metrics = http("GET", node.url + "/metrics")
        self.assertIn(f'skydns_dns_rrl_responses_total{{action="slipped"}} {len(slipped)}.0',
                      metrics)  # fmt: skip
        self.assertIn(f'skydns_dns_rrl_responses_total{{action="dropped"}} {dropped}.0', metrics)


class AmplificationTests(SynchronousTestCase):
    def test_a_flood_of_the_worst_query_draws_at_most_3x(self) -> None:
        """With the defaults (only ``--no-forward``), 3,000 EDNS SRV queries
        for a 19-instance service, each drawing 1,216 bytes unlimited (21x),
        sent from 127.0.0.1 as fast as one socket can, get back at most 3x
        their own size; one query alone still gets the whole answer over TCP."""
        import dns.message

        node = SkyDNSProcess(["--no-forward"])
        self.addCleanup(node.cleanup)
        node.start()
        for n in range(19):
            code, _ = http("PUT", f"{node.url}/skydns/services/a{n}", _service(f"127.0.1.{n + 1}"))
            self.assertEqual(code, 201)
        query = dns.message.make_query("web.prod.skydns.local", "SRV", use_edns=0, payload=4096)
        wire = query.to_wire()
        whole = dns_query("web.prod.skydns.local", "SRV", node.dns_port, tcp=True)
        self.assertEqual(len(whole.answer[0]), 19)
        self.assertGreater(len(whole.to_wire()), 20 * len(wire))
        sent, received, replies = udp_flood(node.dns_port, wire, 3000)
        self.assertLessEqual(received / sent, 3.0, (sent, received, replies))
        # At least the budget's whole answers came back (a socket buffer on
        # either side may drop some of the flood, as a network would).
        self.assertGreaterEqual(replies, 100)
        _, metrics = http("GET", node.url + "/metrics")
        self.assertIn('skydns_dns_rrl_responses_total{action="truncated"}', metrics)
