"""The reply a forwarded question's client gets: its id, flags and question
(its letter case included), the upstream answer's records, RA, an OPT record
when the client sent one, made to fit the client's UDP payload size."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.names import dns

from skydns.dns.edns import ClientEDNS, fit
from skydns.dns.rcache import Answer

#: Without EDNS0 a UDP DNS message is at most 512 bytes (RFC 1035 §4.2.1).
CLASSIC_UDP_SIZE = 512


def relay_reply(request: dns.Message, answer: Answer, tcp: bool, edns: ClientEDNS,
                udp_payload: int) -> dns.Message:  # fmt: skip
    """The reply to ``request`` carrying ``answer`` (``udp_payload``: the
    UDP size we offer and accept)."""
    reply = dns.Message(
        id=request.id,
        answer=1,
        opCode=request.opCode,
        recDes=request.recDes,
        recAv=1,
        rCode=answer.rcode,
        # RFC 6840 §5.8: AD only for clients that asked for DNSSEC data (DO or AD).
        authenticData=int(answer.authentic_data and (edns.dnssec_ok or request.authenticData)),
        checkingDisabled=request.checkingDisabled,
    )
    reply.timeReceived = getattr(request, "timeReceived", None)
    reply.queries = list(request.queries)
    if request.queries:
        reply.answers = _renamed(answer.answers, request.queries[0])
    reply.authority = list(answer.authority)
    reply.additional = list(answer.additional)
    limit: int | None = None
    if edns.present:
        reply.additional.append(
            dns._OPTHeader(  # type: ignore[arg-type]
                udpPayloadSize=udp_payload, dnssecOK=edns.dnssec_ok
            )
        )
        if not tcp:
            limit = max(CLASSIC_UDP_SIZE, min(edns.payload, udp_payload))
    elif not tcp:
        limit = CLASSIC_UDP_SIZE
    return fit(reply, limit)


def _renamed(records: Sequence[dns.RRHeader], query: dns.Query) -> list[dns.RRHeader]:
    """``records`` with owner names equal to the question written as the client wrote it."""
    wanted = query.name.name
    lower = wanted.lower()
    out = []
    for r in records:
        if r.name.name != wanted and r.name.name.lower() == lower:
            r = dns.RRHeader(wanted, r.type, r.cls, r.ttl, r.payload, r.auth)
        out.append(r)
    return out
