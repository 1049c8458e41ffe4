"""Which clients may use SkyDNS as a recursive resolver (``--forward-allow``).

An open resolver on a public address is a tool for reflection and
amplification attacks (RFC 5358), so forwarding is offered only to clients
in the allowed networks; the others get REFUSED for names outside the
domain.  Names in the domain (and reverse names of registered instances) are
answered to everyone: that is SkyDNS's own data.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from attrs import frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Loopback only: a host's own resolver.  Forwarding for other machines is
#: a choice (``--forward-allow``), since an open resolver amplifies attacks.
DEFAULT_FORWARD_ALLOW = ("127.0.0.0/8", "::1/128")


@frozen
class ClientNetworks:
    """A set of networks; `allows` says whether a client address is in one."""

    networks: tuple[Network, ...]

    @classmethod
    def of(cls, cidrs: Iterable[str]) -> ClientNetworks:
        """From CIDR strings (see `parse_network`)."""
        return cls(tuple(parse_network(c) for c in cidrs))

    def allows(self, host: str) -> bool:
        """Whether ``host`` (an IP literal, maybe with a ``%scope``) is in a
        network.  An IPv4-mapped IPv6 address (a client of a dual-stack socket)
        is read as its IPv4 address; anything that is not an address is not
        allowed."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def allows_everyone(self) -> bool:
        """Whether the networks include 0.0.0.0/0 and ::/0 (every client)."""
        # Only /0 covers every address of its family.
        return all(
            any(n.version == version and n.prefixlen == 0 for n in self.networks)
            for version in (4, 6)
        )

    def __str__(self) -> str:
        return ",".join(str(n) for n in self.networks)


def parse_network(text: str) -> Network:
    """``10.0.0.0/8``, ``fd00::/8``, or a bare address (one host).

    Raises ValueError naming the value, also when bits are set after the
    prefix (``10.0.0.1/8``: probably a typo for ``10.0.0.0/8``).
    """
    item = text.strip()
    try:
        return ipaddress.ip_network(item, strict=True)
    except ValueError as e:
        raise ValueError(f"{item!r} is not a network in CIDR notation ({e})") from None


def parse_networks(text: str) -> ClientNetworks:
    """The comma-separated ``--forward-allow`` value; it must name at least one network."""
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{text!r} lists no network")
    return ClientNetworks.of(items)


def default_networks() -> ClientNetworks:
    return ClientNetworks.of(DEFAULT_FORWARD_ALLOW)


_LOOPBACK = {4: ipaddress.ip_network("127.0.0.0/8"), 6: ipaddress.ip_network("::1/128")}


def needed(allow: ClientNetworks, listen_host: str) -> ClientNetworks | None:
    """``allow``, or None when it lets in every client that can reach a server
    listening on ``listen_host``: it includes every address, or the server
    listens on a loopback address (only this host can reach it) and ``allow``
    includes that family's whole loopback network.  None saves the check and
    lets the server cache forwarded answers for everyone."""
    if allow.allows_everyone():
        return None
    try:
        listen = ipaddress.ip_address(listen_host.split("%", 1)[0])
    except ValueError:
        return allow
    if listen.is_loopback:
        loopback = _LOOPBACK[listen.version]
        if any(
            n.version == loopback.version and loopback.subnet_of(n)  # type: ignore[arg-type]
            for n in allow.networks
        ):
            return None
    return allow
