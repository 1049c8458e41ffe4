"""Ask a SkyDNS node's DNS side, for ``skydns lookup``.

dnspython is used when it is importable (it runs in a thread: its queries
block); otherwise ``twisted.names``.  Both give a `DNSAnswer`, so the command
formats one shape.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable, Optional

from attrs import frozen
from twisted.internet.defer import Deferred


class LookupFailed(Exception):
    """No answer from the nameserver (timeout, refused)."""


@frozen
class DNSRecord:
    name: str
    ttl: int
    type: str
    data: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ttl": self.ttl, "type": self.type, "data": self.data}


@frozen
class DNSAnswer:
    """A response: its rcode name and the records of each section."""

    rcode: str
    answer: tuple[DNSRecord, ...] = ()
    authority: tuple[DNSRecord, ...] = ()
    additional: tuple[DNSRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rcode": self.rcode,
            "answer": [r.to_json() for r in self.answer],
            "authority": [r.to_json() for r in self.authority],
            "additional": [r.to_json() for r in self.additional],
        }


#: (nameserver host, port, fully qualified name, type, timeout) -> Deferred[DNSAnswer]
Resolve = Callable[[str, int, str, str, float], "Deferred[DNSAnswer]"]


def qualify(name: str, domain: str) -> str:
    """The absolute name to ask for: a name ending in ``.`` is taken as is; a
    name already under ``domain`` gets the final dot; anything else is taken
    as relative to ``domain``."""
    domain = domain.strip(".")
    if name.endswith("."):
        return name
    lower = name.lower()
    if lower == domain.lower() or lower.endswith("." + domain.lower()):
        return name + "."
    return f"{name}.{domain}."


#: The DNS port a node listens on unless told otherwise.
DEFAULT_DNS_PORT = 8053


async def dns_address_of(client: Any, server: str) -> tuple[str, int]:
    """Where the node at ``server`` (its HTTP API URL) answers DNS: the
    address its cluster status reports (``dns``), with the URL's host when
    it listens on every interface; the URL's host at port 8053 when it
    reports none or cannot be asked."""
    from urllib.parse import urlsplit

    from skydns.client.errors import ConnectionFailed, SkyDNSError

    host = urlsplit(server).hostname or "127.0.0.1"
    port = DEFAULT_DNS_PORT
    try:
        reported = (await client.cluster_status()).raw.get("dns")
        listening, port = parse_nameserver(str(reported))
    except (SkyDNSError, ConnectionFailed, ValueError):
        port = DEFAULT_DNS_PORT
    else:
        if not ipaddress.ip_address(listening).is_unspecified:
            host = listening
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = socket.gethostbyname(host)  # a host name in --server
    return host, port


def parse_nameserver(text: str, default_port: int = 53) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``HOST``; the host must be an IP or localhost."""
    text = text.strip()
    host, port = text, str(default_port)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: unclosed [")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected :PORT after ]")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{port!r} is not a port number")
    return host, int(port)


def dnspython_resolver(reactor: Any) -> Optional[Resolve]:
    """A `Resolve` running dnspython in ``reactor``'s thread pool, or None without it."""
    try:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdatatype
    except ImportError:
        return None
    from twisted.internet.threads import deferToThreadPool

    def section(rrsets: Any) -> tuple[DNSRecord, ...]:
        return tuple(
            DNSRecord(rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype),
                      rdata.to_text())
            for rrset in rrsets
            for rdata in rrset
        )

    def blocking(host: str, port: int, name: str, rdtype: str, timeout: float) -> DNSAnswer:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=4096)
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
        except (dns.exception.Timeout, OSError) as e:
            raise LookupFailed(f"no answer from {host}:{port}: {e or 'timed out'}") from e
        return DNSAnswer(
            dns.rcode.to_text(response.rcode()),
            section(response.answer),
            section(response.authority),
            section(response.additional),
        )

    def resolve(host: str, port: int, name: str, rdtype: str, timeout: float) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), blocking, host, port, name,
                                 rdtype, timeout)

    return resolve


def twisted_resolver(reactor: Any) -> Resolve:
    """A `Resolve` on ``twisted.names.client`` (UDP, then TCP when truncated)."""
    from twisted.names import client, dns, error

    def text(record: Any) -> DNSRecord:
        payload = record.payload
        kind = dns.QUERY_TYPES.get(record.type, str(record.type))
        if record.type == dns.A:
            data = payload.dottedQuad()
        elif record.type == dns.AAAA:
            data = socket.inet_ntop(socket.AF_INET6, payload.address)
        elif record.type == dns.SRV:
            data = f"{payload.priority} {payload.weight} {payload.port} {payload.target}."
        elif record.type in (dns.NS, dns.CNAME, dns.PTR):
            data = f"{payload.name}."
        elif record.type == dns.SOA:
            data = (f"{payload.mname}. {payload.rname}. {payload.serial} {payload.refresh} "
                    f"{payload.retry} {payload.expire} {payload.minimum}")
        else:
            data = str(payload)
        return DNSRecord(f"{record.name}.", record.ttl, kind, data)

    rcodes = {
        error.DNSNameError: "NXDOMAIN",
        error.DNSServerError: "SERVFAIL",
        error.DNSQueryRefusedError: "REFUSED",
        error.DNSFormatError: "FORMERR",
        error.DNSNotImplementedError: "NOTIMP",
    }

    async def ask(host: str, port: int, name: str, rdtype: str, timeout: float) -> DNSAnswer:
        qtype = dns.REV_TYPES.get(rdtype.upper())
        if qtype is None:
            raise ValueError(f"unknown record type {rdtype!r}")
        resolver = client.Resolver(servers=[(host, port)], reactor=reactor)
        query = dns.Query(name.rstrip("."), qtype, dns.IN)
        try:
            answers, authority, additional = await resolver.query(query, timeout=(timeout,))
        except tuple(rcodes) as e:
            return DNSAnswer(rcodes[type(e)])
        except (error.DNSQueryTimeoutError, OSError) as e:
            raise LookupFailed(f"no answer from {host}:{port}: {e}") from e
        return DNSAnswer(
            "NOERROR",
            tuple(text(r) for r in answers),
            tuple(text(r) for r in authority),
            tuple(text(r) for r in additional),
        )

    def resolve(host: str, port: int, name: str, rdtype: str, timeout: float) -> Deferred[Any]:
        return Deferred.fromCoroutine(ask(host, port, name, rdtype, timeout))

    return resolve


def default_resolver(reactor: Any) -> Resolve:
    """dnspython if importable, else twisted.names."""
    return dnspython_resolver(reactor) or twisted_resolver(reactor)
