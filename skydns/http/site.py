"""The HTTP site the API is served by: one HTTP/1.1 channel per connection,
connections bounded in all and per client (`skydns.slots`), request bodies
bounded before they are read, and an access log only when asked for."""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Site

from skydns.http.limits import MAX_BODY, limited_request
from skydns.slots import ConnectionSlots

#: HTTP connections held at most by default (``--max-http-connections``).
MAX_CONNECTIONS = 1024


class _BoundedChunks(http._ChunkedTransferDecoder):
    """A chunked body decoder that refuses a chunk longer than any body the
    API accepts as soon as its size line is read (the connection then gets
    400 and is closed), rather than waiting for data that never comes."""

    def _dataReceived_CHUNK_LENGTH(self) -> bool:  # noqa: N802 - Twisted's name
        done = super()._dataReceived_CHUNK_LENGTH()
        if done and self.length > MAX_BODY:
            raise http._MalformedChunkedDataError(f"a chunk of {self.length} bytes")
        return done


class _APIChannel(http.HTTPChannel):
    """An HTTP/1.1 connection that asks its socket for its own address once.

    Every twisted.web `Request` asks its channel for the local address, a
    ``getsockname`` system call each time: with keep-alive clients sending
    thousands of writes a second that is a visible share of a node's CPU.
    (The API is served as HTTP/1.1 directly rather than through the
    protocol twisted.web negotiates HTTP/2 with, which needs TLS with ALPN
    and the ``h2`` package; the API offers neither.)
    """

    _host: Any = None
    #: The client's host, for the site's connection slots.
    client: Any = None

    def getHost(self) -> Any:  # noqa: N802 - Twisted's name
        if self._host is None:
            self._host = self.transport.getHost()  # type: ignore[union-attr]
        return self._host

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        site: Any = getattr(self, "site", None)
        if site is not None and site.slots is not None:
            site.slots.give_back(self.client)

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:  # noqa: N802
        chosen: bool = super()._maybeChooseTransferDecoder(header, data)
        if type(self._transferDecoder) is http._ChunkedTransferDecoder:
            self._transferDecoder.__class__ = _BoundedChunks
        return chosen


class _APISite(Site):
    """The API's `Site`: Twisted logs "HTTP API starting on 8080" as it listens."""

    protocol = _APIChannel  # type: ignore[assignment]
    #: Connections held at most, in all and per client; None: unbounded.
    slots: Optional[ConnectionSlots] = None

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted's name
        host = getattr(addr, "host", None)
        if self.slots is not None and not self.slots.take(host):
            return None  # Twisted closes a connection whose factory builds no protocol.
        channel = super().buildProtocol(addr)
        channel.client = host
        return channel

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "HTTP API"


class QuietSite(_APISite):
    """A `Site` that writes no per-request access log line."""

    def log(self, request: http.Request) -> None:
        pass


def make_site(
    resource: Resource,
    access_log: Optional[str] = None,
    max_connections: Optional[int] = MAX_CONNECTIONS,
    clock: Any = None,
) -> Site:
    """The `Site` serving ``resource`` (`API.resource`): no per-request log lines unless
    ``access_log`` names a file, which then gets the combined log format; at
    most ``max_connections`` connections (half from one client address)."""
    site: _APISite
    if access_log:
        site = _APISite(resource, logPath=access_log)
    else:
        site = QuietSite(resource)
    site.displayTracebacks = False
    site.noisy = False  # no "Starting factory" lines
    site.requestFactory = limited_request(MAX_BODY)  # 413 before an oversized body is read
    if max_connections:
        if clock is None:
            from twisted.internet import reactor as clock
        site.slots = ConnectionSlots(clock, "HTTP", max_connections)
    return site
