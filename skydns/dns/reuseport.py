"""DNS sockets that several processes share (SO_REUSEPORT, Linux 3.9+):
with ``--dns-workers`` the node and each worker bind the same UDP and TCP
address, and the kernel spreads clients over them, so DNS uses every core.
Linux lets only processes of the same user join such a group."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp

from skydns.dns.protocols import DatagramProtocol, FastUDPPort


def _shared(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class SharedUDPPort(FastUDPPort):
    """A `FastUDPPort` whose address other processes may bind too."""

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 - Twisted's name
        return _shared(super().createInternetSocket())


class SharedTCPPort(tcp.Port):
    """A TCP port whose address other processes may bind too."""

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 - Twisted's name
        return _shared(super().createInternetSocket())


def listen_shared(reactor: Any, port: int, factory: Any, protocol: DatagramProtocol,
                  interface: str, max_packet_size: int) -> tuple[Any, Any]:  # fmt: skip
    """UDP and TCP listening ports on ``interface``:``port`` shared with
    other processes; `CannotListenError` as ``listenUDP``/``listenTCP``."""
    udp = SharedUDPPort(port, protocol, interface, max_packet_size, reactor)
    udp.startListening()
    try:
        stream = SharedTCPPort(udp.getHost().port, factory, interface=interface, reactor=reactor)
        stream.startListening()
    except BaseException:
        udp.stopListening()
        raise
    return udp, stream
