"""The data of a replicated command: a session tag around the command bytes.

Every proposal carries ``(client_id, seq)`` so that the apply loop can run it
through the session table (`skydns.raft.node.sessions`): a proposal that a
follower forwarded twice, because the first answer was lost, is applied
once (Raft thesis §6.3).  Layout: a 2-byte length and the UTF-8 client id,
an 8-byte sequence number, then the command exactly as
`skydns.commands.encode` made it.
"""

from __future__ import annotations

import struct

from attrs import frozen

_ID_LENGTH = struct.Struct(">H")
_SEQ = struct.Struct(">Q")
#: Bytes an envelope adds to a command with a client id of ``n`` bytes: 10 + n.
OVERHEAD = _ID_LENGTH.size + _SEQ.size


class EnvelopeError(ValueError):
    """The bytes are not an enveloped command."""


@frozen
class Envelope:
    client_id: str
    seq: int
    payload: bytes


def wrap(client_id: str, seq: int, payload: bytes) -> bytes:
    raw_id = client_id.encode("utf-8")
    return _ID_LENGTH.pack(len(raw_id)) + raw_id + _SEQ.pack(seq) + payload


def unwrap(data: bytes) -> Envelope:
    if len(data) < _ID_LENGTH.size:
        raise EnvelopeError("shorter than an envelope header")
    (length,) = _ID_LENGTH.unpack_from(data)
    start = _ID_LENGTH.size
    if len(data) < start + length + _SEQ.size:
        raise EnvelopeError("envelope truncated")
    try:
        client_id = data[start : start + length].decode("utf-8")
    except UnicodeDecodeError as e:
        raise EnvelopeError(f"client id is not UTF-8: {e}") from e
    (seq,) = _SEQ.unpack_from(data, start + length)
    return Envelope(client_id, seq, bytes(data[start + length + _SEQ.size :]))
