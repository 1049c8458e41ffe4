"""The DNS server: UDP and TCP on one address, answering from a resolver.

`SkyDNSServerFactory` is a `twisted.names.server.DNSServerFactory` that

- sets AA on every answer whose answer or authority records come from the
  authority (NODATA and NXDOMAIN included), and puts the SOA of a
  `NameNotFound` in the authority section (RFC 2308 §2.1);
- answers REFUSED when no resolver claims the name (a bare
  `twisted.names.error.DomainError` out of the chain: no forwarder);
- never lets a malformed packet escape: undecodable packets are dropped,
  responses are ignored, a question count other than one gets FORMERR,
  other opcodes NOTIMP (with the request's opcode, RFC 1035 §4.1.1), an
  EDNS version above 0 BADVERS (RFC 6891 §6.1.3);
- limits UDP answers to 512 bytes, or to the payload size the client
  advertises with EDNS0 (at most ``max_udp_size``, 1232 by default): a bigger answer is sent
  as the question alone with TC set, so the client asks again over TCP
  (RFC 1035 §4.2.1, RFC 6891 §6.2.5).  A request with an OPT record gets one
  back.

`skydns.dns.service.DNSService` listens with it on UDP and TCP, same address
and port.

The fast path (`skydns.dns.answercache`): a repeated plain query is answered
from the `AnswerCache` before anything is decoded; a first one for a name in
the domain is answered by the factory's `DirectPath` (an answer set aside at
the last registry change and revalidated, or one built by the authority
without Deferreds or `dns.Message`) and cached until its TTLs would tick; the
rest comes here with its `Request`.  Both
produce the bytes the twisted.names path (``fast_path=False``, and every
unusual packet) produces, because that path, too, resolves the lower-cased
name and copies the client's question into the encoded answer.  Answers for
names outside the domain (REFUSED, or forwarded) are cached for a second at
most (less when a TTL is shorter), and not at all when the forwarder's
replies depend on the client (`Forwarder.client_specific`).  Every registry
change clears the cache.
"""

from __future__ import annotations

import math
import time
from io import BytesIO
from typing import Any, Callable, Optional

from twisted.logger import Logger
from twisted.names import dns, error
from twisted.names.server import DNSServerFactory
from twisted.python.failure import Failure

from skydns.dns.amplification import AmplificationLimiter
from skydns.dns.answercache import DEFAULT_MAX_ENTRIES, AnswerCache
from skydns.dns.authority import NameNotFound, SkyDNSAuthority
from skydns.dns.caching import answer_cache_for
from skydns.dns.dependencies import EVERYTHING
from skydns.dns.direct import DirectPath
from skydns.dns.edns import ClientEDNS
from skydns.dns.forward import Forwarder
from skydns.dns.protocols import (
    DEFAULT_MAX_UDP,
    MAX_TCP_MESSAGE,
    MIN_UDP_PAYLOAD,
    TCP_IDLE_TIMEOUT,
    DatagramProtocol,
    StreamProtocol,
    encode_reply,
    udp_limit,
)
from skydns.dns.records import to_header
from skydns.dns.request import Request, rcode_for
from skydns.dns.rrl import ResponseRateLimiter
from skydns.dns.stats import DNSStats
from skydns.dns.wirequery import restore_question
from skydns.slots import ConnectionSlots

log = Logger()

_ANY_CHANGE = (EVERYTHING,)

#: Open DNS TCP connections at most; more are closed at once (a client that
#: holds many idle connections must not exhaust the process's descriptors).
MAX_TCP_CONNECTIONS = 1024

#: The EDNS version we speak (RFC 6891 §6.1.3); a request of a higher one
#: gets the extended rcode `BADVERS`.
EDNS_VERSION = 0
BADVERS = 16

#: Longest a forwarded (or REFUSED) answer is served from the answer cache.
FORWARDED_MAX_AGE = 1.0


class SkyDNSServerFactory(DNSServerFactory):
    """Serves ``resolver`` (see `skydns.dns.authority.make_resolver`) to
    `DatagramProtocol` and `StreamProtocol` connections.

    Names no resolver in the chain claims go to ``forwarder`` (over the
    client's transport) when there is one, else get REFUSED.  With
    ``fast_path`` and no ``answer_cache`` given, one is made by
    `answer_cache_for`.
    """

    protocol = StreamProtocol  # type: ignore[assignment]
    noisy = False  # no "Starting factory <...>" line

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "DNS TCP"

    def __init__(
        self,
        resolver: Any,
        reactor: Any,
        can_recurse: bool = False,
        idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
        forwarder: Optional[Forwarder] = None,
        fast_path: bool = True,
        authority: Optional[SkyDNSAuthority] = None,
        metrics: Any = None,
        cache_size: int = DEFAULT_MAX_ENTRIES,
        timer: Callable[[], float] = time.perf_counter,
        max_tcp_connections: int = MAX_TCP_CONNECTIONS,
        rate_limiter: Optional[ResponseRateLimiter] = None,
        answer_cache: Optional[AnswerCache] = None,
        max_tcp_per_client: Optional[int] = None,
        max_udp_size: int = DEFAULT_MAX_UDP,
        large_limiter: Optional[AmplificationLimiter] = None,
    ) -> None:
        super().__init__()
        self.resolver = resolver
        self.reactor = reactor
        #: TCP connections held at most, in all and (half by default) per client.
        self.slots = ConnectionSlots(reactor, "DNS TCP", max_tcp_connections, max_tcp_per_client)
        #: The largest UDP answer sent, whatever a client offers.
        self.max_udp_size = max_udp_size
        #: Limits UDP answers per client network when set (`skydns.dns.rrl`).
        self.rate_limiter = rate_limiter
        #: Budgets UDP answers over 3x their query (`skydns.dns.amplification`).
        self.large_limiter = large_limiter
        self.forwarder = forwarder
        self.canRecurse = can_recurse or forwarder is not None
        self.idle_timeout = idle_timeout
        #: Measures latency only (never decides anything).
        self.timer = timer
        self.authority = authority if authority is not None else find_authority(resolver)
        if answer_cache is None and fast_path:
            answer_cache = answer_cache_for(self.authority, reactor, cache_size, max_udp_size)
        self.answer_cache = answer_cache
        self.stats = DNSStats(answer_cache, rate_limiter, large_limiter, forwarder)
        if metrics is not None:
            self.stats.bind(metrics)
        self.direct = DirectPath(
            self.authority, answer_cache, self.stats, timer, self._response, self.canRecurse,
            self.messageReceived, max_udp_size,
        )  # fmt: skip
        #: What the protocols call for every request the cache did not answer.
        self.packet_received = self.direct.packet_received

    def buildProtocol(self, addr: Any) -> Any:
        host = getattr(addr, "host", None)
        if not self.slots.take(host):
            return None  # Twisted closes a connection whose factory builds no protocol.
        protocol = StreamProtocol(self, self.reactor)
        protocol.factory = self
        protocol.client = host
        return protocol

    def connectionLost(self, protocol: Any) -> None:
        super().connectionLost(protocol)
        self.slots.give_back(getattr(protocol, "client", None))

    def datagram_protocol(self) -> DatagramProtocol:
        """A UDP protocol answering through this factory."""
        return DatagramProtocol(self, self.reactor)

    # The twisted.names path.

    def messageReceived(
        self, message: dns.Message, proto: Any, address: Any = None,
        request: Optional[Request] = None,
    ) -> None:  # fmt: skip
        if message.answer:
            return  # A response is not a question: answering it could loop.
        if request is None:
            request = Request(None, self.timer(), -1)
        message.maxSize = (
            MAX_TCP_MESSAGE if address is None else udp_limit(message, self.max_udp_size)
        )
        options = [r for r in message.additional if r.type == dns.OPT]
        if message.opCode != dns.OP_QUERY:
            self._reply_error(message, proto, address, request, dns.ENOTIMP)
        elif len(message.queries) != 1 or len(options) > 1:
            # One question per message (RFC 9619); one OPT (RFC 6891 §6.1.1).
            self._reply_error(message, proto, address, request, dns.EFORMAT)
        elif options and options[0].ttl >> 16 & 0xFF > EDNS_VERSION:
            # RFC 6891 §6.1.3: BADVERS, in an OPT record of our version.
            self._reply_error(message, proto, address, request, BADVERS)
        elif message.queries[0].cls not in (dns.IN, dns.ANY):
            self._reply_error(message, proto, address, request, dns.EREFUSED)
        else:
            self._lower_question(message, request)
            self._resolve(message, proto, address, request)

    def _lower_question(self, message: dns.Message, request: Request) -> None:
        """Resolve the lower-cased name, and remember the client's spelling
        to copy into the answer: names in the answer equal to the question
        are then compressed to pointers at it, so the bytes are the same
        however the client cased the name (and so are the fast path's)."""
        query = message.queries[0]
        name = query.name.name
        lowered = name.lower()
        if lowered == name:
            return
        out = BytesIO()
        query.encode(out)
        request.question = out.getvalue()
        message.queries[0] = dns.Query(lowered, query.type, query.cls)

    def _resolve(self, message: dns.Message, protocol: Any, address: Any, request: Request) -> None:
        d = self.resolver.query(message.queries[0])
        d.addCallback(self._resolved, protocol, message, address, request)
        d.addErrback(self._failed, protocol, message, address, request)
        d.addErrback(
            lambda reason: log.failure("could not answer {query}", reason, query=message.queries[0])
        )

    def _resolved(
        self, result: Any, protocol: Any, message: dns.Message, address: Any, request: Request
    ) -> None:
        rcode, (answers, authority, additional) = self._signed(message, dns.OK, result)
        response = self._reply_to(message, rcode, answers, authority, additional)
        self.send_reply(protocol, response, address, request)

    def _signed(self, message: dns.Message, rcode: int, sections: Any) -> tuple[int, Any]:
        """``sections`` signed as the fast path signs them, for a DO query
        in one of the signer's zones; as they are otherwise."""
        signer = self.direct.signer
        query = message.queries[0] if message.queries else None
        if signer is None or query is None or not ClientEDNS.of(message).dnssec_ok:
            return rcode, sections
        name = query.name.name.lower().rstrip(b".")
        if signer.zone_of(name) is None:
            return rcode, sections
        rcode, signed = signer.sign(name, query.type, rcode, tuple(list(s) for s in sections))
        return rcode, tuple([to_header(r) for r in section] for section in signed)

    def _forward(
        self, message: dns.Message, protocol: Any, address: Any, request: Request
    ) -> None:
        forwarder = self.forwarder
        assert forwarder is not None
        if forwarder.client_specific:
            request.cacheable = False  # the reply is this client's alone
        d = forwarder.handle_query(message, protocol, address)
        d.addCallback(lambda reply: self.send_reply(protocol, reply, address, request))
        d.addErrback(lambda f: log.failure("sending a forwarded reply failed", f))

    def _failed(
        self, failure: Failure, protocol: Any, message: dns.Message, address: Any,
        request: Request,
    ) -> None:  # fmt: skip
        reason: Any = failure.value
        if type(reason) is error.DomainError and self.forwarder is not None:
            self._forward(message, protocol, address, request)
            return
        rcode = rcode_for(reason)
        if rcode is None:
            log.failure("lookup of {query} failed", failure, query=message.queries[0])
            rcode = dns.ESERVER
        sections: Any = ([], [], [])
        if isinstance(reason, NameNotFound):  # a denial: its SOA, signed for DO
            rcode, sections = self._signed(message, rcode, ([], reason.authority, []))
        response = self._reply_to(message, rcode, *sections)
        self.send_reply(protocol, response, address, request)

    def _reply_error(
        self, message: dns.Message, protocol: Any, address: Any, request: Request, rcode: int
    ) -> None:
        """Answer ``message`` with ``rcode`` alone; an extended one (above
        15, RFC 6891 §6.1.3) has its upper bits in our OPT record."""
        response = self._reply_to(message, rcode & 0x0F)
        if rcode > 0x0F:
            response.additional = [
                dns._OPTHeader(udpPayloadSize=self.max_udp_size, extendedRCODE=rcode >> 4)  # type: ignore[list-item]
            ]
        self.send_reply(protocol, response, address, request)

    def _reply_to(
        self,
        message: dns.Message,
        rcode: int,
        answers: Optional[list[dns.RRHeader]] = None,
        authority: Optional[list[dns.RRHeader]] = None,
        additional: Optional[list[Any]] = None,
    ) -> dns.Message:
        edns = ClientEDNS.of(message)
        response = self._response(
            message.id,
            list(message.queries),
            message.recDes,
            message.maxSize,
            edns.present,
            rcode,
            list(answers or ()),
            list(authority or ()),
            list(additional or ()),
            dnssec_ok=edns.dnssec_ok,
        )
        # RFC 1035 §4.1.1: the opcode is copied into the response (NOTIMP
        # answers other opcodes with their own).
        response.opCode = message.opCode
        return response

    def _response(
        self,
        id: int,
        queries: list[dns.Query],
        recursion_desired: Any,
        max_size: int,
        edns: bool,
        rcode: int,
        answers: list[Any],
        authority: list[Any],
        additional: list[Any],
        dnssec_ok: bool = False,
    ) -> dns.Message:
        """The response both paths send (the same fields, so the same bytes);
        the OPT record carries DO back (RFC 3225 §3)."""
        # AA for NODATA and NXDOMAIN too, whose only records are the SOA.
        authoritative = any(r.isAuthoritative() for r in answers + authority)
        response = self._messageFactory(
            id=id, answer=True, recAv=self.canRecurse, rCode=rcode, auth=authoritative
        )
        response.queries = queries
        response.recDes = recursion_desired  # RFC 1035 §4.1.1: RD is copied.
        response.maxSize = max_size
        if edns:
            additional.append(dns._OPTHeader(udpPayloadSize=self.max_udp_size,
                                             dnssecOK=dnssec_ok))  # fmt: skip
        response.answers = answers
        response.authority = authority
        response.additional = additional
        return response

    def send_reply(
        self, protocol: Any, message: dns.Message, address: Any, request: Request
    ) -> None:
        """Encode ``message`` within the client's size limit, with the
        question as the client spelled it, cache it when it may be, count
        it and send it."""
        tcp = address is None
        wire = encode_reply(message, MAX_TCP_MESSAGE if tcp else message.maxSize or MIN_UDP_PAYLOAD)
        if request.question is not None and wire[4:6] == b"\x00\x01":
            wire = restore_question(wire, request.question)
        if request.query is not None and request.cacheable and self.answer_cache is not None:
            until = self._forwarded_until(message)
            # Forwarded answers and PTR (from the registry): any change drops them.
            self.answer_cache.store(
                request.query, wire, until, request.generation, tcp, tags=_ANY_CHANGE
            )
        if request.generation >= 0:
            self.stats.latency("full", self.timer() - request.started)
        qtype = message.queries[0].type if message.queries else 0
        rcode = message.rCode
        for record in message.additional:
            if type(record) is dns._OPTHeader:
                rcode |= record.extendedRCODE << 4
        self.stats.answer("tcp" if tcp else "udp", qtype, rcode)
        self.stats.sizes("tcp" if tcp else "udp", request.size, len(wire))
        protocol.send_wire(wire, address, request.size)

    def _forwarded_until(self, message: dns.Message) -> float:
        """How long an answer from outside the domain may be served from the
        cache: a second at most, never past a record's TTL; not at all for an
        error other than NXDOMAIN or REFUSED."""
        if message.rCode not in (dns.OK, dns.ENAME, dns.EREFUSED):
            return -math.inf
        age = FORWARDED_MAX_AGE
        for record in message.answers + message.authority + message.additional:
            if record.type != dns.OPT:
                age = min(age, record.ttl)
        cache = self.answer_cache
        return (cache.seconds() if cache is not None else float(self.reactor.seconds())) + age


def find_authority(resolver: Any) -> Optional[SkyDNSAuthority]:
    """The `SkyDNSAuthority` that ``resolver`` (or the first resolver of its
    chain) is, or None."""
    if isinstance(resolver, SkyDNSAuthority):
        return resolver
    chain = getattr(resolver, "resolvers", None)
    if chain and isinstance(chain[0], SkyDNSAuthority):
        return chain[0]
    return None
