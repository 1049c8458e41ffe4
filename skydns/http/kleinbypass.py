"""Where the HTTP API bypasses Klein and werkzeug for speed, and why.

`FastRoutes` matches a request's route from a table of the rules' path
segments instead of werkzeug's state-machine matcher, whenever the table is
certain to give werkzeug's answer (plain static segments and whole-segment
default variables, exactly one rule for the method); everything else,
including every routing failure, is werkzeug's.  `APIResource` serves the
requests the table matches without `KleinResource.render`, whose per-request
error handler leaves each request in a reference cycle for the garbage
collector; other requests go to Klein.  docs/performance.md has the
measurements (`bench/raft_ab.py`): a few percent more writes a second and
far less time in garbage collection on a busy leader.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from klein import Klein
from klein.resource import KleinResource
from twisted.internet.defer import CancelledError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from werkzeug.routing import Map, MapAdapter, Rule

from skydns.http.responses import APIError
from skydns.throttle import LogThrottle

#: A whole path segment that is a variable with the default converter.
_PLAIN_VARIABLE = re.compile(r"<([^<>:]+)>\Z")

#: Methods the table answers for (anything else is werkzeug's).
_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"})

#: Segment count -> [(variable positions, {segments with None there: rules})].
_Lengths = dict[int, list[tuple[tuple[int, ...], dict[tuple[Optional[str], ...], list[Rule]]]]]


class _Table:
    """The rules by segment count, and the last question asked of them with
    its answer: `MeteredResource` (for the route's metrics label) and then
    the resource ask the same question about every request, one right after
    the other."""

    def __init__(self, lengths: _Lengths) -> None:
        self.lengths = lengths
        self.last: list[Any] = [None, None, None]


def segment_table(url_map: Map) -> Optional[_Table]:
    """The rules by segment count and variable positions, or None when some
    rule is not simple enough for the table to be certain."""
    if url_map.host_matching:
        return None
    groups: dict[tuple[int, tuple[int, ...]], dict[tuple[Optional[str], ...], list[Rule]]] = {}
    for rule in url_map.iter_rules():
        if rule.host or rule.subdomain or rule.defaults or rule.redirect_to or rule.alias:
            return None
        pattern: list[Optional[str]] = []
        for segment in rule.rule.split("/"):
            if _PLAIN_VARIABLE.match(segment):
                pattern.append(None)
            elif "<" in segment or ">" in segment:
                return None
            else:
                pattern.append(segment)
        variables = tuple(i for i, part in enumerate(pattern) if part is None)
        groups.setdefault((len(pattern), variables), {}).setdefault(tuple(pattern), []).append(rule)
    lengths: _Lengths = {}
    for (length, variables), patterns in groups.items():
        lengths.setdefault(length, []).append((variables, patterns))
    return _Table(lengths)


def quick_match(table: _Table, path: str, method: str) -> Optional[tuple[Rule, dict[str, str]]]:
    """``(rule, variables)`` as werkzeug would match them, or None to ask werkzeug."""
    last = table.last
    if last[0] == path and last[1] == method:
        found = last[2]
        return None if found is None else (found[0], dict(found[1]))
    found = _quick_match(table, path, method)
    table.last = [path, method, found]
    return None if found is None else (found[0], dict(found[1]))


def _quick_match(table: _Table, path: str, method: str) -> Optional[tuple[Rule, dict[str, str]]]:
    if method not in _METHODS:
        return None
    segments = path.split("/")
    found: Optional[tuple[tuple[int, ...], list[Rule]]] = None
    for variables, patterns in table.lengths.get(len(segments), ()):
        key: list[Optional[str]] = list(segments)
        for position in variables:
            if not key[position]:
                break
            key[position] = None
        else:
            rules = patterns.get(tuple(key))
            if rules is not None:
                if found is not None:
                    return None  # two patterns fit: werkzeug's precedence decides
                found = (variables, rules)
    if found is None:
        return None
    variables, rules = found
    fitting = [r for r in rules if r.methods is None or method in r.methods]
    if len(fitting) != 1:
        return None
    rule = fitting[0]
    return rule, {name: segments[i] for i, name in _variables(rule)}


_NAMES: dict[str, tuple[tuple[int, str], ...]] = {}


def _variables(rule: Rule) -> tuple[tuple[int, str], ...]:
    """(segment position, variable name) for each variable of ``rule``."""
    names = _NAMES.get(rule.rule)
    if names is None:
        found = [_PLAIN_VARIABLE.match(part) for part in rule.rule.split("/")]
        names = _NAMES[rule.rule] = tuple(
            (i, m.group(1)) for i, m in enumerate(found) if m is not None
        )
    return names


class _Adapter:
    """A `MapAdapter` that answers Klein's ``match(return_rule=True)`` from
    the table when it can; everything else goes to a real adapter."""

    def __init__(self, routes: FastRoutes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._routes = routes
        self._args = args
        self._kwargs = kwargs
        self._real: Optional[MapAdapter] = None

    def _adapter(self) -> MapAdapter:
        if self._real is None:
            self._real = self._routes.real_map.bind(*self._args, **self._kwargs)
        return self._real

    def match(self, path_info: Optional[str] = None, method: Optional[str] = None,
              return_rule: bool = False, **options: Any) -> Any:  # fmt: skip
        table = self._routes.table
        if table is not None and path_info is None and method is None and not options:
            path = self._kwargs.get("path_info")
            default = self._kwargs.get("default_method")
            if isinstance(path, str) and isinstance(default, str):
                found = quick_match(table, path, default.upper())
                if found is not None:
                    rule, variables = found
                    return (rule if return_rule else rule.endpoint), variables
        real: Any = self._adapter()  # (werkzeug overloads match on return_rule)
        return real.match(path_info, method, return_rule, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter(), name)


class _Map:
    """The app's `Map` whose `bind` gives table-first adapters."""

    def __init__(self, routes: FastRoutes) -> None:
        self._routes = routes

    def bind(self, *args: Any, **kwargs: Any) -> _Adapter:
        return _Adapter(self._routes, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._routes.real_map, name)


class FastRoutes:
    """The Klein app as `KleinResource` uses it, with the table-first map as
    ``url_map``; every other attribute is the app's."""

    def __init__(self, app: Klein) -> None:
        self._app = app
        self.real_map: Map = app.url_map
        self.table = segment_table(self.real_map)
        self.url_map = _Map(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


# -- serving matched routes without Klein's reference cycle ---------------------

log = Logger()

#: The API's error handler: (request, failure) -> the body to answer with.
OnError = Callable[[Request, Failure], Any]


class APIResource(KleinResource):
    """`KleinResource` over ``routes`` (module docstring)."""

    def __init__(
        self, routes: FastRoutes, on_error: OnError, clock: IReactorTime | None = None
    ) -> None:
        super().__init__(routes)  # type: ignore[arg-type] # the app, table-first
        self._routes = routes
        self._on_error = on_error
        self._throttle = LogThrottle(clock) if clock is not None else None

    def render(self, request: Request) -> Any:  # type: ignore[override]
        try:
            path = "/" + b"/".join(request.postpath or []).decode("utf-8")
        except UnicodeDecodeError:
            return self._not_text(request)
        table = self._routes.table
        found = None
        if table is not None and request.method is not None:
            found = quick_match(table, path, request.method.decode("ascii", "replace").upper())
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

    def _not_text(self, request: Request) -> Any:
        """A path that is not UTF-8 names no resource: the API's 400, and one
        log line every 10 s at most (Klein would log a traceback each time)."""
        held = self._throttle.allow("path") if self._throttle is not None else 0
        if held is not None:
            log.info("answered 400 to a path that is not UTF-8 ({held} more not logged)",
                     held=held)  # fmt: skip
        return self._on_error(request, Failure(APIError(400, "the path is not UTF-8 text")))

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
