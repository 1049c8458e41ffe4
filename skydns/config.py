"""Parsing and checking of command-line values (SPEC.md §4).

Each parser raises `ValueError` with a message that names the bad value; the
twistd `Options` in `skydns.tap` turns it into a usage error naming the flag.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from attrs import frozen
from twisted.python import usage

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")


@frozen
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@frozen
class Peer:
    node_id: str
    address: HostPort


def parse_port(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a port number")
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return port


def parse_hostport(text: str, default_port: int | None = None) -> HostPort:
    """``HOST:PORT``, ``[IPV6]:PORT``, or a bare host when a default port is given."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        host, port_text = text, ""  # a bare IPv6 literal
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r}: missing host")
    if port_text:
        port = parse_port(port_text)
    elif default_port is not None:
        port = default_port
    else:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    return HostPort(host, port)


def parse_ip_hostport(text: str, default_port: int | None = None) -> HostPort:
    """Like `parse_hostport`, but the host must be an IP literal (a listening address)."""
    hp = parse_hostport(text, default_port)
    try:
        ipaddress.ip_address(hp.host)
    except ValueError:
        raise ValueError(f"{hp.host!r} is not an IP address") from None
    return hp


def check_node_id(node_id: str) -> str:
    """A node id is one DNS label: it names the node's NS record."""
    if not _LABEL.match(node_id):
        raise ValueError(
            f"node id {node_id!r} must be one DNS label (letters, digits, '-' or '_', "
            "at most 63 characters)"
        )
    return node_id


def parse_peers(text: str) -> list[Peer]:
    """``ID=HOST:PORT,...`` (etcd's initial-cluster form)."""
    peers: list[Peer] = []
    seen: set[str] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"{item!r}: expected ID=HOST:PORT")
        node_id, address = item.split("=", 1)
        check_node_id(node_id)
        if node_id in seen:
            raise ValueError(f"node id {node_id!r} is listed twice")
        seen.add(node_id)
        peers.append(Peer(node_id, parse_hostport(address)))
    if not peers:
        raise ValueError("no peers listed")
    return peers


def check_domain(domain: str) -> str:
    """A domain of one or more labels, returned lower-cased without the final dot."""
    name = domain.strip().rstrip(".").lower()
    if not name:
        raise ValueError("empty domain")
    if len(name) > 253:
        raise ValueError(f"domain {domain!r} is longer than 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"domain {domain!r} has an invalid label {label!r}")
    return name


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def check_endpoint(description: str) -> str:
    """Reject a server endpoint description that Twisted cannot parse."""
    from twisted.internet.endpoints import _parseServer as parse_server

    try:
        kind, args, kwargs = parse_server(description, None)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{description!r} is not an endpoint description ({e})") from None
    port = args[0] if args else kwargs.get("port")
    if endpoint_kind(kind) in ("tcp", "tcp6") and not str(port).isdigit():
        raise ValueError(f"{description!r}: a tcp endpoint needs a port number")
    return description


def local_endpoint(description: str) -> bool:
    """Whether a server endpoint takes connections from this host only: a
    TCP one bound to a loopback address, or a UNIX socket."""
    import ipaddress

    from twisted.internet.endpoints import _parseServer as parse_server

    kind, _, kwargs = parse_server(description, None)
    name = endpoint_kind(kind)
    if name == "unix":
        return True
    try:
        address = ipaddress.ip_address(kwargs.get("interface", ""))
    except ValueError:
        return False  # every interface, or a host name
    return name in ("tcp", "tcp6") and address.is_loopback


def endpoint_kind(kind: object) -> str:
    """An endpoint's type: its name, or the prefix of a plugin's parser
    (``tcp6``, ``systemd``, ...)."""
    return str(kind if isinstance(kind, str) else getattr(kind, "prefix", "")).lower()


#: Milliseconds per Raft tick: timeouts are whole ticks.


def negative_ttl(text: str) -> int:
    value = non_negative_int(text)
    if value > 10800:
        raise ValueError(f"must be 0 to 10800 (seconds), not {value}")
    return value


def udp_size(text: str) -> int:
    value = non_negative_int(text)
    if not 512 <= value <= 4096:
        raise ValueError(f"must be 512 to 4096 (bytes), not {value}")
    return value


def instances_limit(text: str) -> int:
    from skydns.registry import MAX_INSTANCES_PER_NAME

    value = non_negative_int(text)
    if not 1 <= value <= MAX_INSTANCES_PER_NAME:
        raise ValueError(f"must be 1 to {MAX_INSTANCES_PER_NAME}, not {value}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds above 0, at most an hour."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise ValueError(f"must be above 0 and at most 3600 seconds, not {text}")
    return value


def checked(flag: str, parse: Callable[[str], Any], value: str) -> Any:
    """``parse(value)``, a `ValueError` turned into a usage error naming ``--flag``."""
    try:
        return parse(value)
    except ValueError as e:
        raise usage.UsageError(f"--{flag}: {e}") from None
