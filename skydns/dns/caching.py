"""The answer cache of a DNS server over the authority, wired to the
registry: entries expire by the authority's clock, and every registry change
drops the answers it may alter (`skydns.dns.dependencies`)."""

from __future__ import annotations

from typing import Any, Optional

from skydns.dns.answercache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, AnswerCache
from skydns.dns.authority import SkyDNSAuthority
from skydns.dns.dependencies import answer_tags, change_tags
from skydns.dns.protocols import DEFAULT_MAX_UDP


def answer_cache_for(
    authority: Optional[SkyDNSAuthority],
    reactor: Any,
    size: int = DEFAULT_MAX_ENTRIES,
    max_udp: int = DEFAULT_MAX_UDP,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> AnswerCache:
    """An answer cache for a server over ``authority``: its entries expire by
    the clock the authority computes TTLs with, every registry change drops
    the answers it may alter (`skydns.dns.dependencies`; a whole state
    installed clears it), and with ``size`` 0 its bound follows the
    registry's size."""
    if authority is None:
        return AnswerCache(reactor.seconds, size, max_udp, max_bytes)
    registry = authority.registry
    cache = AnswerCache(authority.clock.seconds, size, max_udp, max_bytes, registry.__len__)
    cache.tagger = answer_tags

    def changed(touched: Optional[tuple[Any, ...]]) -> None:
        if touched is None:
            cache.clear()
        else:
            cache.invalidate(change_tags(touched))

    registry.add_change_listener(changed)
    return cache
