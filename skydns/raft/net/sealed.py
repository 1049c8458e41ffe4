"""Integrity for every byte of a Raft connection after the cluster-key
handshake (`skydns.raft.net.auth`): each write is one frame, its length, its
bytes and a MAC under a key of that connection and direction, over a running
frame counter.  A byte injected, changed, dropped, replayed or reflected by
anyone between the two members (who does not know the session keys, which
only the two ends derive) fails the next MAC, and the connection is dropped.
It authenticates; it does not encrypt (TLS does, docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

#: Bytes of each frame's MAC (HMAC-SHA256 cut to 128 bits).
TAG_SIZE = 16
#: The longest frame accepted: well over the largest AMP box sent.
MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_COUNTER = struct.Struct(">Q")


class BadFrame(Exception):
    """A frame whose MAC or length is wrong: the connection is not to be trusted."""


def session_keys(key: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """The (client to server, server to client) keys of a connection whose
    handshake is ``transcript`` (both nonces and both members' ids)."""
    return (
        hmac.new(key, b"skydns raft c2s\0" + transcript, hashlib.sha256).digest(),
        hmac.new(key, b"skydns raft s2c\0" + transcript, hashlib.sha256).digest(),
    )


class Sealer:
    """Frames and MACs what one side writes."""

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._count = 0

    def seal(self, data: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(_COUNTER.pack(self._count))
        mac.update(data)
        self._count += 1
        return _HEADER.pack(len(data)) + data + mac.digest()[:TAG_SIZE]


class Opener:
    """Checks and unframes what the other side wrote, in order."""

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._count = 0
        self._buffer = bytearray()

    def open(self, data: bytes) -> list[bytes]:
        """The payloads of the whole frames received so far; `BadFrame` if
        one fails its check (nothing of it, nor after it, is given)."""
        buffer = self._buffer
        buffer += data
        out = []
        while len(buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer)
            if length > MAX_FRAME:
                raise BadFrame(f"a frame of {length} bytes")
            end = _HEADER.size + length + TAG_SIZE
            if len(buffer) < end:
                break
            payload = bytes(buffer[_HEADER.size : end - TAG_SIZE])
            mac = self._mac.copy()
            mac.update(_COUNTER.pack(self._count))
            mac.update(payload)
            tag = bytes(buffer[end - TAG_SIZE : end])
            if not hmac.compare_digest(mac.digest()[:TAG_SIZE], tag):
                raise BadFrame("a frame failed its MAC")
            self._count += 1
            del buffer[:end]
            out.append(payload)
        return out
