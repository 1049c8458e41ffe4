"""How the HTTP API answers: every body JSON, errors as `APIError` with a
status, a message and the headers they need, and the answers to a write the
cluster could not take."""

from __future__ import annotations

import json
from typing import Any, Callable, NoReturn, Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from skydns.bodies import ValidationError
from skydns.cluster import NotLeader, StoreUnavailable

#: Retry-After (seconds) sent with a 503.
RETRY_AFTER = b"1"

JSON_TYPE = b"application/json"


class APIError(Exception):
    """An answer other than success: status code, message and extra headers."""

    def __init__(
        self,
        code: int,
        message: str,
        headers: Optional[dict[bytes, bytes]] = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


#: One encoder for every answer (``json.dumps`` with an option builds a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True)


def render_json(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", JSON_TYPE)
    data = _ENCODER.encode(body).encode("utf-8") + b"\n"
    request.setHeader(b"Content-Length", b"%d" % len(data))
    return data


def proposal_failed(failure: Failure) -> NoReturn:
    """The answer to a proposal the cluster could not take or commit.

    The cluster times a proposal out itself (`skydns.raft.node.proposals` fails
    it with the builtin `TimeoutError`); a Deferred timeout is Twisted's.
    """
    failure.trap(ValidationError, NotLeader, TimeoutError, defer.TimeoutError)
    error = failure.value
    if isinstance(error, ValidationError):  # e.g. a command too big to replicate
        raise APIError(400, str(error), field=error.field) from error
    if isinstance(error, NotLeader):
        message = str(error)
        if not isinstance(error, StoreUnavailable):
            message = f"no leader can take the write now: {message}" if message else \
                "no leader can take the write now"
        raise APIError(503, message, {b"Retry-After": RETRY_AFTER}) from error
    raise APIError(
        503,
        "the cluster did not commit the write in time; it may still be applied",
        {b"Retry-After": RETRY_AFTER},
    ) from error




log = Logger()


def render_error(request: Any, failure: Failure, authorize: Callable[[Any], None]) -> bytes:
    """The JSON answer to a request that failed with ``failure``: an
    `APIError` as it says, a routing failure (unknown path, wrong method)
    as its status, anything else a logged 500.  Under ``/skydns/`` the
    secret (``authorize``) still comes first, so the routes stay private."""
    error = failure.value
    if isinstance(error, HTTPException):
        try:
            if request.path == b"/skydns" or request.path.startswith(b"/skydns/"):
                authorize(request)
        except APIError as auth_error:
            error = auth_error
        else:
            headers = {}
            if isinstance(error, MethodNotAllowed) and error.valid_methods:
                headers[b"Allow"] = ", ".join(error.valid_methods).encode("ascii")
            code = error.code or 500
            message = (error.name or "error").lower()
            error = APIError(code, message, headers)
    if not isinstance(error, APIError):
        log.failure(
            "Unhandled error serving {method} {path}",
            failure,
            method=request.method,
            path=request.path,
        )
        error = APIError(500, "internal server error")
    for name, value in error.headers.items():
        request.setHeader(name, value)
    return render_json(request, error.code, {"error": error.message, **error.extra})
