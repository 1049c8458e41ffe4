"""Route matching for the HTTP API without werkzeug's matcher on the hot path.

Klein binds its werkzeug `Map` and runs the map's state-machine matcher for
every request, which is a visible share of a node's CPU at a few thousand
requests a second.  `FastRoutes` hands `KleinResource` the same app with a
map whose adapters first look the path up in a table of the rules' path
segments, and ask werkzeug whenever the table cannot give werkzeug's answer
for certain.

The table is used only when every rule is plain static text and whole-segment
variables with the default converter (no host, subdomain, defaults, redirect
or alias), and only when the path's segments fit exactly one rule pattern
with exactly one rule for the request's method; a static segment must be
equal, a variable segment non-empty.  Werkzeug then matches that same rule,
with the segments as the variables' values.  Everything else, including
every routing failure, is werkzeug's.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from klein import Klein
from werkzeug.routing import Map, MapAdapter, Rule

#: A whole path segment that is a variable with the default converter.
_PLAIN_VARIABLE = re.compile(r"<([^<>:]+)>\Z")

#: Methods the table answers for (anything else is werkzeug's).
_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"})

#: Segment count -> [(variable positions, {segments with None there: rules})].
_Table = dict[int, list[tuple[tuple[int, ...], dict[tuple[Optional[str], ...], list[Rule]]]]]


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
    table: _Table = {}
    for (length, variables), patterns in groups.items():
        table.setdefault(length, []).append((variables, patterns))
    return table


#: The last `quick_match` call and its answer: `MeteredResource` (for the
#: route's metrics label) and then Klein's adapter ask the same question about
#: every request, one right after the other.
_last: list[Any] = [None, None, None, None]


def quick_match(table: _Table, path: str, method: str) -> Optional[tuple[Rule, dict[str, str]]]:
    """``(rule, variables)`` as werkzeug would match them, or None to ask werkzeug."""
    last = _last
    if last[0] is table and last[1] == path and last[2] == method:
        found = last[3]
        return None if found is None else (found[0], dict(found[1]))
    found = _quick_match(table, path, method)
    last[:] = [table, path, method, found]
    return None if found is None else (found[0], dict(found[1]))


def _quick_match(table: _Table, path: str, method: str) -> Optional[tuple[Rule, dict[str, str]]]:
    if method not in _METHODS:
        return None
    segments = path.split("/")
    found: Optional[tuple[tuple[int, ...], list[Rule]]] = None
    for variables, patterns in table.get(len(segments), ()):
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
