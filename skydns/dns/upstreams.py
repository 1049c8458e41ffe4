"""The upstream nameservers SkyDNS forwards to: who they are.

Upstreams come from ``--nameserver IP:PORT,...`` or, by default, from the
``nameserver`` lines of /etc/resolv.conf.  When SkyDNS is itself the host's
nameserver, resolv.conf names SkyDNS's own address: forwarding there would
send every unknown name round in a circle, so `without_self` drops any
upstream that is the address SkyDNS's DNS listens on.  Loops this cannot see
(our LAN address, a second hop) are stopped at run time by the forwarder
(see `skydns.dns.forward`).

How they are asked is `skydns.dns.exchange`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from attrs import frozen
from twisted.logger import Logger

DEFAULT_PORT = 53
#: The port of DNS over TLS (RFC 7858 §3.1).
DOT_PORT = 853
RESOLV_CONF = "/etc/resolv.conf"

log = Logger()

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@frozen
class Upstream:
    """One upstream nameserver: an IP literal and a port; with ``tls_name``,
    reached over DNS over TLS (RFC 7858) and its certificate checked
    against that name."""

    host: str
    port: int = DEFAULT_PORT
    tls_name: str | None = None

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        text = f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"
        return text if self.tls_name is None else f"tls://{text}#{self.tls_name}"


def _parse_ip(text: str, whole: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"nameserver {whole!r}: {text!r} is not an IP address") from None


def _parse_port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"nameserver {whole!r}: {text!r} is not a port number (1-65535)")
    return int(text)


def parse_upstream(text: str) -> Upstream:
    """``IPV4[:PORT]``, ``[IPV6][:PORT]`` or a bare IPv6 literal; the port defaults to 53.
    ``tls://IP[:PORT]#NAME`` is a DNS-over-TLS upstream (port 853) whose
    certificate must be valid for NAME.

    Raises ValueError naming the bad value.
    """
    item = text.strip()
    if item.lower().startswith("tls://"):
        address, sep, name = item[len("tls://"):].partition("#")
        if not sep or not name.strip():
            raise ValueError(f"nameserver {item!r}: a TLS upstream is tls://IP[:PORT]#NAME")
        if address.startswith("["):
            has_port = "]:" in address
        elif address.count(":") > 1:  # a bare IPv6 literal
            address, has_port = f"[{address}]", False
        else:
            has_port = ":" in address
        if not has_port:
            address += f":{DOT_PORT}"
        plain = parse_upstream(address)
        return Upstream(plain.host, plain.port, name.strip().lower())
    if not item:
        raise ValueError("empty nameserver address")
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise ValueError(f"nameserver {item!r}: missing ']' after the IPv6 address")
        host, rest = item[1:end], item[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"nameserver {item!r}: expected ':PORT' after ']'")
        port = _parse_port(rest[1:], item) if rest else DEFAULT_PORT
        host = _parse_ip(host, item)
        if ":" not in host:
            raise ValueError(f"nameserver {item!r}: brackets are for IPv6 addresses")
        return Upstream(host, port)
    if item.count(":") == 1:
        host, port_text = item.split(":")
        return Upstream(_parse_ip(host, item), _parse_port(port_text, item))
    return Upstream(_parse_ip(item, item), DEFAULT_PORT)


def parse_nameservers(text: str) -> list[Upstream]:
    """The comma-separated ``--nameserver`` value, in order, duplicates dropped."""
    upstreams: list[Upstream] = []
    for item in text.split(","):
        if item.strip():
            upstream = parse_upstream(item)
            if upstream not in upstreams:
                upstreams.append(upstream)
    if not upstreams:
        raise ValueError(f"--nameserver {text!r} lists no nameserver")
    return upstreams


def parse_resolv_conf(content: str) -> list[Upstream]:
    """The ``nameserver`` lines of a resolv.conf, in order, port 53.

    Like the C library, lines it cannot use are skipped (with a warning), not
    fatal: the file belongs to the system, not to SkyDNS.  A scope suffix
    (``fe80::1%eth0``) is kept: Twisted's IPv6 sockets accept it.
    """
    upstreams: list[Upstream] = []
    for number, line in enumerate(content.splitlines(), 1):
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            upstream = Upstream(str(ipaddress.ip_address(fields[1])), DEFAULT_PORT)
        except ValueError:
            log.warn(
                "resolv.conf line {number}: {value!r} is not an IP address; ignored",
                number=number,
                value=fields[1],
            )
            continue
        if upstream not in upstreams:
            upstreams.append(upstream)
    return upstreams


def read_resolv_conf(path: str = RESOLV_CONF) -> list[Upstream]:
    """`parse_resolv_conf` of the file at ``path``; no file means no upstreams.

    Read once at start-up (a small file), so a synchronous read is fine.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except FileNotFoundError:
        log.warn("{path} does not exist: no upstream nameservers", path=path)
        return []


def _canonical(address: _IPAddress) -> _IPAddress:
    """``0.0.0.0`` / ``::`` as a destination mean this host: read them as loopback;
    an IPv4-mapped IPv6 address is the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return address


_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def is_self(
    upstream: Upstream,
    listen_host: str,
    listen_port: int,
    local_addresses: Iterable[str] = (),
) -> bool:
    """Whether ``upstream`` is SkyDNS's own DNS listener at ``listen_host:listen_port``.

    Same port, and: the same address (0.0.0.0 / :: read as loopback), or
    SkyDNS listens on the wildcard address and the upstream is 127.0.0.1, ::1,
    or one of ``local_addresses`` (this host's interface addresses, when the
    caller knows them).  Other loopback addresses such as systemd-resolved's
    127.0.0.53 are separate servers and are kept.
    """
    if upstream.port != listen_port:
        return False
    target = _canonical(ipaddress.ip_address(upstream.host.split("%", 1)[0]))
    listen = ipaddress.ip_address(listen_host.split("%", 1)[0])
    if listen.is_unspecified:
        local = {_canonical(ipaddress.ip_address(a)) for a in local_addresses}
        return target in _LOOPBACKS or target in local
    return target == _canonical(listen)


def without_self(
    upstreams: Iterable[Upstream],
    listen_host: str,
    listen_port: int,
    local_addresses: Iterable[str] = (),
) -> list[Upstream]:
    """``upstreams`` minus SkyDNS itself (see `is_self`), each drop logged."""
    local = list(local_addresses)
    kept: list[Upstream] = []
    for upstream in upstreams:
        if is_self(upstream, listen_host, listen_port, local):
            log.warn(
                "not forwarding to {upstream}: it is this SkyDNS server", upstream=str(upstream)
            )
        else:
            kept.append(upstream)
    return kept


def configured_upstreams(
    nameserver: str | None,
    listen_host: str,
    listen_port: int,
    resolv_conf: str = RESOLV_CONF,
    local_addresses: Iterable[str] = (),
) -> list[Upstream]:
    """The upstreams to forward to: ``--nameserver`` if given, else resolv.conf's,
    without SkyDNS itself.

    Raises ValueError when ``--nameserver`` is malformed or names only SkyDNS
    itself.  An empty result from resolv.conf is not an error: the forwarder
    then answers SERVFAIL for names outside the domain.
    """
    if nameserver is not None:
        listed = parse_nameservers(nameserver)
        kept = without_self(listed, listen_host, listen_port, local_addresses)
        if not kept:
            raise ValueError(
                f"--nameserver {nameserver!r} names only this SkyDNS server "
                f"({listen_host}:{listen_port}); forwarding there would loop"
            )
        return kept
    kept = without_self(read_resolv_conf(resolv_conf), listen_host, listen_port, local_addresses)
    if not kept:
        log.warn(
            "no upstream nameservers in {path}: names outside the domain get SERVFAIL",
            path=resolv_conf,
        )
    return kept
