"""Refuse an oversized HTTP request body while it arrives.

twisted.web reads a whole body (into memory, or a temporary file past
100 KB) before any resource sees the request, so the API's own 413 would
come only after a client had sent, say, gigabytes.  `limited_request`
makes a `Request` class that answers 413 with the API's JSON error as soon
as the declared ``Content-Length`` or the bytes received so far (chunked
bodies) pass the limit, drops the rest of the body without storing it, and
closes the connection when the body ends, or at once when it is more than
16 times the limit.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from twisted.web.server import Request

#: Largest request body accepted; anything bigger gets 413.
MAX_BODY = 64 * 1024

class _LimitedRequest(Request):
    max_body = 64 * 1024

    _received = 0
    _refused = False

    def _patience(self) -> int:
        """Bytes of a refused body still read (and dropped) so that a client
        that sends its whole body before reading sees the 413; past this
        the connection is closed."""
        return 16 * self.max_body

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > self.max_body:
            super().gotLength(0)
            self._refuse(close=length > self._patience())
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._refused:
            if self._received > self._patience():
                self._close()
            return
        if self._received > self.max_body:
            self._refuse(close=False)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            self._close()  # the whole body is in: the 413 has been sent
            return
        super().requestReceived(command, path, version)

    def _refuse(self, close: bool) -> None:
        self._refused = True
        body = json.dumps({"error": f"body: larger than {self.max_body} bytes"}).encode() + b"\n"
        head = (
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body)
        )
        self._transport().write(head + body)
        if close:
            self._close()

    def _close(self) -> None:
        self._transport().loseConnection()

    def _transport(self) -> Any:
        return self.channel.transport


def limited_request(max_body: int) -> type[Request]:
    """A `Request` class refusing bodies over ``max_body`` bytes with 413."""
    return type("LimitedRequest", (_LimitedRequest,), {"max_body": max_body})


__all__ = ["limited_request"]
