"""What a cached answer depends on, and what a registry change touches, as
tags: so that a change drops just the answers it may alter, and every
other answer stays a cache hit.

An answer built from the registry records its reads (`Work.reads`: the
instance a ``<uuid>`` name found, the instances a pattern matched).  A read
of a UUID depends on that instance alone (``("u", uuid)``); a pattern that
fixes environment and name, on the instances of that (environment, name)
(``("g", environment, name)``); one that fixes only the environment, on
that environment's (``("e", environment)``); any other, on everything
(`EVERYTHING`).  An answer without reads (the apex, a nameserver's name,
NXDOMAIN and NODATA, which carry the SOA whose serial is the registry's
version) depends on everything too.  A change touches the tags of every
service it added, renewed or removed, and `EVERYTHING`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Hashable, Optional

from skydns.dns.resolution import GET
from skydns.names import Service

#: The tag of answers that any change may alter; every change touches it.
EVERYTHING: Hashable = ("*",)


def answer_tags(sources: Optional[Iterable[tuple[str, Any, Any]]]) -> frozenset[Hashable]:
    """The tags of an answer computed from the registry reads ``sources``
    (None: an answer that depends on everything)."""
    if sources is None:
        return frozenset((EVERYTHING,))
    tags: set[Hashable] = set()
    for kind, argument, _ in sources:
        if kind is GET:
            tags.add(("u", argument.lower()))
        elif argument.environment is not None and argument.name is not None:
            tags.add(("g", argument.environment, argument.name))
        elif argument.environment is not None:
            tags.add(("e", argument.environment))
        else:
            return frozenset((EVERYTHING,))
    return frozenset(tags)


def change_tags(touched: Iterable[Service]) -> set[Hashable]:
    """The tags a change of the services ``touched`` touches."""
    tags: set[Hashable] = {EVERYTHING}
    for service in touched:
        labels = service.labels()
        tags.add(("u", labels[0]))
        tags.add(("g", labels[5], labels[4]))
        tags.add(("e", labels[5]))
    return tags
