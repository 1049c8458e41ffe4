"""Logging that cannot flood: a throttle for lines that could repeat once per
query or connection, and how a peer's address is written in a line."""

from __future__ import annotations

from typing import Any, Optional

from skydns.clock import Clock


def address_text(address: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a Twisted address, for a
    log line or a JSON field; anything else as ``str`` gives it."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not isinstance(host, str) or not isinstance(port, int):
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LogThrottle:
    """At most one line per key per ``interval`` seconds, for events that can
    repeat once per query or connection (an upstream that stopped answering):
    `allow` says whether to log now and how many lines it kept back before."""

    def __init__(self, clock: Clock, interval: float = 10.0) -> None:
        self.clock = clock
        self.interval = interval
        self._last: dict[Any, float] = {}
        self._held: dict[Any, int] = {}

    def allow(self, key: Any) -> Optional[int]:
        """None to stay quiet; else the number of lines held back since the
        last one for ``key``."""
        now = self.clock.seconds()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) > 1024:  # keys come from configuration, but stay bounded
            self._last.clear()
        self._last[key] = now
        return self._held.pop(key, 0)
