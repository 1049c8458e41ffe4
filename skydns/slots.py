"""Connection slots: how many connections a listener holds at most, in all
and from one client address, so that no one client can take them all.

Used by DNS over TCP (`skydns.dns.server`) and the HTTP API
(`skydns.http.site`): a connection over either bound is closed as soon as
it is accepted, and one warning line says so, at most every ten seconds.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.logger import Logger

from skydns.clock import Clock

log = Logger()

#: Seconds between two "refusing connections" lines.
LOG_INTERVAL = 10.0


class ConnectionSlots:
    """``total`` slots, at most ``per_client`` (half of them by default)
    for one client address; ``what`` names the listener in the log."""

    def __init__(
        self, clock: Clock, what: str, total: int, per_client: Optional[int] = None
    ) -> None:
        if total < 1:
            raise ValueError(f"total must be at least 1, not {total}")
        self.clock = clock
        self.what = what
        self.total = total
        self.per_client = per_client or max(1, total // 2)
        self._open = 0
        self._by_client: dict[Any, int] = {}
        self._logged_at: Optional[float] = None

    def __len__(self) -> int:
        """Slots held now."""
        return self._open

    def take(self, client: Any) -> bool:
        """Take a slot for a connection from ``client`` (a host): False, and
        a throttled warning, when none is free for it."""
        held = self._by_client.get(client, 0)
        if self._open >= self.total:
            self._refuse(f"{self.total} already open")
            return False
        if held >= self.per_client:
            self._refuse(f"{self.per_client} already open from {client}")
            return False
        self._open += 1
        self._by_client[client] = held + 1
        return True

    def give_back(self, client: Any) -> None:
        """The connection from ``client`` that took a slot is gone."""
        self._open -= 1
        left = self._by_client.get(client, 0) - 1
        if left > 0:
            self._by_client[client] = left
        else:
            self._by_client.pop(client, None)

    def _refuse(self, why: str) -> None:
        now = self.clock.seconds()
        if self._logged_at is None or now - self._logged_at >= LOG_INTERVAL:
            self._logged_at = now
            log.warn("refusing {what} connections: {why}", what=self.what, why=why)
