"""The secret that guards every ``/skydns/`` route (``--secret``): checked in
constant time, given raw or as ``Bearer <secret>`` in ``Authorization``."""

from __future__ import annotations

import functools
import hmac
from typing import Any, Awaitable, Callable, Optional, TypeVar

from twisted.web.server import Request

from skydns.http.responses import APIError


def check_secret(request: Request, secret: Optional[bytes]) -> None:
    """Raise a 401 `APIError` unless ``secret`` is None or the request
    carries it, in the raw form or as ``Bearer <secret>``."""
    if secret is None:
        return
    given = request.getHeader(b"Authorization") or b""
    if given[:7].lower() == b"bearer ":
        given = given[7:].strip()
    if not hmac.compare_digest(given, secret):
        raise APIError(
            401,
            "missing or wrong secret in the Authorization header",
            {b"WWW-Authenticate": b'Bearer realm="skydns"'},
        )


_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])


def guarded(handler: _Handler) -> _Handler:
    """Refuse the request with 401 unless it carries the secret.

    The wrapper hands on whatever the handler returns (a coroutine Klein
    turns into a Deferred, or a Deferred); a 401 raised here reaches Klein's
    error handler like any other exception.
    """

    @functools.wraps(handler)
    def wrapper(self: Any, request: Request, **kwargs: Any) -> Any:
        self.authorize(request)
        return handler(self, request, **kwargs)

    return wrapper  # type: ignore[return-value]
