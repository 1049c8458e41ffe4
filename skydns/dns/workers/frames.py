"""The stream a node sends each DNS worker on the worker's standard input:
frames of ``length (u32) | kind (1 byte) | payload``.  Kind ``S`` is a whole
registry (`Registry.snapshot` bytes: at the start, and after the node
installed a snapshot), kind ``C`` one applied command (`skydns.commands`
encoding, the log's own), in the order the node applied them."""

from __future__ import annotations

import struct
from collections.abc import Iterator

SNAPSHOT = b"S"
COMMAND = b"C"
_HEAD = struct.Struct("!Ic")
#: Largest frame a worker accepts (a registry of a few hundred thousand
#: instances); anything longer means the stream is broken.
MAX_FRAME = 1 << 30


class FrameError(ValueError):
    """The stream is not frames of this format."""


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload), kind) + payload


class FrameReader:
    """Splits a byte stream into (kind, payload) frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The frames ``data`` completes; `FrameError` for a broken stream."""
        self._buffer += data
        while len(self._buffer) >= _HEAD.size:
            length, kind = _HEAD.unpack_from(self._buffer)
            if kind not in (SNAPSHOT, COMMAND) or length > MAX_FRAME:
                raise FrameError(f"not a feed frame (kind {kind!r}, {length} bytes)")
            end = _HEAD.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEAD.size : end])
            del self._buffer[:end]
            yield kind, payload
