"""The cluster key (``--cluster-key-file`` or ``$SKYDNS_CLUSTER_KEY``): read
and checked once at start-up, with a clear error for a key that is missing,
unreadable or too short to resist guessing."""

from __future__ import annotations

import hashlib
import hmac

#: The environment variable that may hold the key instead of a file.
ENV_KEY = "SKYDNS_CLUSTER_KEY"
#: The shortest key accepted (bytes, after stripping surrounding whitespace).
MIN_KEY_SIZE = 16


def check_key(key: bytes) -> bytes:
    """``key`` without surrounding whitespace; `ValueError` when too short."""
    key = key.strip()
    if len(key) < MIN_KEY_SIZE:
        raise ValueError(
            f"the cluster key must be at least {MIN_KEY_SIZE} bytes "
            f"(e.g. openssl rand -hex 32), not {len(key)}"
        )
    return key


def read_key_file(path: str) -> bytes:
    """The cluster key in the file at ``path``; `ValueError` if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read(64 * 1024 + 1)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > 64 * 1024:
        raise ValueError(f"{path} is larger than 64 KiB: not a key file")
    try:
        return check_key(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def key_from_secret(secret: str) -> bytes:
    """The cluster key of a node given only ``--secret``: every member of a
    cluster shares the secret, so they share this key, and a process that
    knows neither cannot speak on the Raft port.  (Derived, so the key
    proven in handshakes is not the secret that HTTP requests carry.)"""
    digest = hmac.new(b"skydns raft cluster key v1", secret.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest().encode("ascii")
