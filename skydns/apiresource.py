"""The API's Klein resource, which serves a request whose route the route
table matches without leaving it in a reference cycle.

`KleinResource.render` defines, for every request, an error handler that
refers to itself and to the request.  That cycle keeps each answered
request, with its headers, body and Deferreds, alive until the cyclic
garbage collector finds it: under write load a leader ran a young
collection every 200 ms and a middle one every 2 s (25-30 ms each), and
spent about 6% of its CPU in them.  `APIResource` serves a request whose
route `skydns.routing.quick_match` finds (every route of the API with a
plain method) itself, as Klein would: it runs the endpoint, writes the
bytes or text it gives, and hands a failure to the API's error handler
(the one ``@app.handle_errors(Exception)`` declares), whose answer it
writes in turn; a client that goes away cancels the endpoint's Deferred.
Anything else (a path or method no route has, a method such as OPTIONS
the table leaves to werkzeug, a non-UTF-8 path) goes to Klein's own
`render`.  With it a leader under the same load (64 clients
registering for 5 s) spent 26 ms instead of 180 ms in young collections and
0-8 ms instead of 50-70 ms in middle ones; interleaved runs of
``bench/raft_ab.py`` gave 3% more writes a second and 3% less leader CPU
per write.  What Klein's render does that this path leaves out: binding a
werkzeug adapter for ``url_for`` (the API never asks for one) and moving
the matched segments from ``postpath`` to ``prepath`` (nothing reads them).
"""

from __future__ import annotations

from typing import Any, Callable

from klein.resource import KleinResource
from twisted.internet.defer import CancelledError, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from skydns.routing import FastRoutes, quick_match

log = Logger()

#: The API's error handler: (request, failure) -> the body to answer with.
OnError = Callable[[Request, Failure], Any]


class APIResource(KleinResource):
    """`KleinResource` over ``routes`` (module docstring)."""

    def __init__(self, routes: FastRoutes, on_error: OnError) -> None:
        super().__init__(routes)  # type: ignore[arg-type] # the app, table-first
        self._routes = routes
        self._on_error = on_error

    def render(self, request: Request) -> Any:  # type: ignore[override]
        table = self._routes.table
        found = None
        if table is not None and request.method is not None:
            try:
                path = "/" + b"/".join(request.postpath or []).decode("utf-8")
                found = quick_match(table, path, request.method.decode("ascii").upper())
            except UnicodeDecodeError:
                pass  # Klein answers 400
        if found is None:
            return super().render(request)
        rule, variables = found
        d = maybeDeferred(self._routes.execute_endpoint, rule.endpoint, request, **variables)
        if not d.called:
            request.notifyFinish().addErrback(lambda _: d.cancel())
        d.addErrback(self._failed, request)
        d.addCallback(_write, request)
        d.addErrback(_unwritten, request)
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: Request) -> Any:
        if _done(request):
            # Nobody to answer: the client went away (which cancelled the
            # endpoint) or the endpoint answered before it failed.
            if not failure.check(CancelledError):
                log.failure("error after {request} was finished", failure, request=request)
            return None
        return maybeDeferred(self._on_error, request, failure).addErrback(_500, request)


def _write(body: object, request: Request) -> None:
    """Write an endpoint's answer as `KleinResource` does, and finish."""
    if _done(request):
        return
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, bytes):
        request.write(body)
    elif body is not None:
        error = TypeError(f"an endpoint answered {type(body).__name__}, not bytes or text")
        _500(Failure(error), request)
        return
    request.finish()


def _done(request: Request) -> bool:
    """Whether ``request`` was answered already, or its client went away."""
    return bool(request.finished or request._disconnected)


def _unwritten(failure: Failure, request: Request) -> None:
    log.failure("writing the answer to {request} failed", failure, request=request)


def _500(failure: Failure, request: Request) -> None:
    """twisted.web's own 500 (logged, no traceback shown), as Klein falls
    back to when the error handler fails too."""
    request.processingFailed(failure)
