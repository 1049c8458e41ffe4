"""The errors a `SkyDNSClient` call can fail with.

A response with an error status becomes a `SkyDNSError` (a subclass for the
statuses callers commonly handle); failing to get any response at all becomes
`ConnectionFailed`, so callers can tell "the server said no" from "there was
no server to ask" (the ``skydns`` command exits 1 or 3 accordingly).
"""

from __future__ import annotations

from typing import Optional


class SkyDNSError(Exception):
    """The server answered with an error status; ``message`` is its ``error`` text."""

    status: int

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class BadRequest(SkyDNSError):
    """400: the body, a field or a pattern was refused."""


class Unauthorized(SkyDNSError):
    """401: the secret is missing or wrong."""


class NotFound(SkyDNSError):
    """404: no such service (or member, or route)."""


class Conflict(SkyDNSError):
    """409: a service with this UUID is already registered."""


class Unavailable(SkyDNSError):
    """503 (or 502/504): the node cannot serve now, e.g. no leader is known."""


_BY_STATUS: dict[int, type[SkyDNSError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_for_status(status: int, message: str) -> SkyDNSError:
    """The most specific `SkyDNSError` for an HTTP status."""
    return _BY_STATUS.get(status, SkyDNSError)(status, message)


class ConnectionFailed(Exception):
    """No HTTP response: connection refused or lost, name lookup failed, timeout."""

    def __init__(self, url: str, reason: Optional[BaseException] = None) -> None:
        detail = f": {reason}" if reason is not None else ""
        super().__init__(f"cannot reach {url}{detail}")
        self.url = url
        self.reason = reason
