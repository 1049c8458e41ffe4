"""The bytes of the cluster-key handshake (`skydns.raft.net.auth` runs it):
each side's ``HELLO``, the transcript both proofs and the session keys are
bound to, and the proofs."""

from __future__ import annotations

import hashlib
import hmac

#: First bytes of every authenticated Raft connection (protocol version 2).
MAGIC = b"SKYDNS-RAFTAUTH2"
NONCE_SIZE = 32
PROOF_SIZE = hashlib.sha256().digest_size
#: MAGIC and the nonce; the two ids follow, each after its length byte.
HELLO_SIZE = len(MAGIC) + NONCE_SIZE

def hello(nonce: bytes, own_id: str, peer_id: str) -> bytes:
    """A side's first bytes: its nonce, its id, and the id it means to reach."""
    own, peer = own_id.encode("utf-8"), peer_id.encode("utf-8")
    return MAGIC + nonce + bytes([len(own)]) + own + bytes([len(peer)]) + peer


def parse_hello(data: bytes) -> tuple[bytes, str, str, int] | None:
    """(nonce, own id, id meant, bytes used) of a whole ``HELLO`` at the
    start of ``data``; None while incomplete; `ValueError` if malformed."""
    if not MAGIC.startswith(data[: len(MAGIC)]):
        raise ValueError("it did not start the cluster-key handshake")
    at = HELLO_SIZE
    ids = []
    for _ in range(2):
        if len(data) <= at:
            return None
        end = at + 1 + data[at]
        if len(data) < end:
            return None
        ids.append(data[at + 1 : end].decode("utf-8"))
        at = end
    return data[len(MAGIC) : HELLO_SIZE], ids[0], ids[1], at


def transcript(client_nonce: bytes, server_nonce: bytes, client_id: str, server_id: str) -> bytes:
    """What both proofs and the session keys are bound to."""
    client, server = client_id.encode("utf-8"), server_id.encode("utf-8")
    return (client_nonce + server_nonce + bytes([len(client)]) + client
            + bytes([len(server)]) + server)  # fmt: skip


def proof(key: bytes, role: bytes, handshake: bytes) -> bytes:
    """What the side playing ``role`` (``b"C"`` or ``b"S"``) sends, for a
    handshake whose `transcript` is ``handshake``."""
    return hmac.new(key, MAGIC + role + handshake, hashlib.sha256).digest()
