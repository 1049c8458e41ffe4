"""The client's EDNS0 (RFC 6891) as the forwarder reads it, and fitting a
reply into the size the client can take."""

from __future__ import annotations

from typing import Any

from twisted.names import dns


class ClientEDNS:
    """What the client's OPT record (RFC 6891) says: present or not, its UDP
    payload size and its DO bit."""

    __slots__ = ("present", "payload", "dnssec_ok")

    def __init__(self, present: bool = False, payload: int = 0, dnssec_ok: bool = False):
        self.present = present
        self.payload = payload
        self.dnssec_ok = dnssec_ok

    @classmethod
    def of(cls, message: Any) -> ClientEDNS:
        """The EDNS of a `dns.Message` (OPT in additional) or a `dns._EDNSMessage`."""
        if isinstance(message, dns._EDNSMessage):
            if message.ednsVersion is None:
                return cls()
            return cls(True, message.maxSize, bool(message.dnssecOK))
        for record in message.additional:
            if record.type == dns.OPT:
                if isinstance(record, dns._OPTHeader):
                    return cls(True, record.udpPayloadSize, bool(record.dnssecOK))
                # Read the fixed fields only: the options may be malformed
                # (a client's bytes), and they are not forwarded anyway.  The
                # class is the payload size, the TTL holds the DO bit (RFC 6891 §6.1.3).
                return cls(True, record.cls, bool(record.ttl & 0x8000))
        return cls()


def fit(message: dns.Message, limit: int | None) -> dns.Message:
    """Make ``message`` encode within ``limit`` bytes (None: no limit, TCP).

    Additional records are dropped first without setting TC (RFC 2181 §9: TC
    is only for records the client needs).  If it still does not fit, the
    answer and authority sections go as well and TC is set, so the client asks
    again over TCP.  The OPT record always stays.  ``maxSize`` is left at
    ``limit`` (0 for none), which the message now fits.
    """
    # Twisted's encoder would cut the bytes mid-record at maxSize: measure without it,
    # and leave the limit set afterwards for servers that read it (the reply fits).
    message.maxSize = 0
    if limit is not None and len(message.toStr()) > limit:
        message.additional = [r for r in message.additional if r.type == dns.OPT]
        if len(message.toStr()) > limit:
            message.answers, message.authority = [], []
            message.trunc = 1
    message.maxSize = limit or 0
    return message
