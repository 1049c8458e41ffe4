"""The registry's index of instances by the IP address in their Host: what a
reverse lookup (PTR) reads, and what says whether any instance lives in a
network (an empty non-terminal of a reverse zone, ``1.0.10.in-addr.arpa``,
exists exactly when some address is in 10.0.1.0/24)."""

from __future__ import annotations

import bisect
import functools
import ipaddress
from typing import Optional

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def address_key(address: str) -> Optional[str]:
    """The canonical text of an IP literal, None for a host name (cached:
    every register, remove and reverse lookup asks, mostly for a few hosts)."""
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return None


def _ordered(address: str) -> tuple[int, int]:
    parsed = ipaddress.ip_address(address)
    return parsed.version, int(parsed)


class AddressIndex:
    """UUID keys by canonical address, and the addresses in order (so that
    `any_in` is a binary search, not a scan of every address)."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {}
        self._order: list[tuple[int, int]] = []

    def add(self, key: str, host: str) -> None:
        """File UUID key ``key`` under ``host`` when it is an IP literal."""
        address = address_key(host)
        if address is None:
            return
        same = self._keys.get(address)
        if same is None:
            same = self._keys[address] = set()
            bisect.insort(self._order, _ordered(address))
        same.add(key)

    def remove(self, key: str, host: str) -> None:
        """Forget ``key`` under ``host`` (as it was added)."""
        address = address_key(host)
        if address is None:
            return
        same = self._keys[address]
        same.discard(key)
        if not same:
            del self._keys[address]
            at = bisect.bisect_left(self._order, _ordered(address))
            del self._order[at]

    def keys(self, host: str) -> list[str]:
        """The UUID keys filed under ``host``'s address, in order."""
        address = address_key(host)
        return sorted(self._keys.get(address, ())) if address is not None else []

    def any_in(self, network: Network) -> bool:
        """Whether an address in ``network`` has an instance."""
        low = (network.version, int(network.network_address))
        at = bisect.bisect_left(self._order, low)
        return at < len(self._order) and self._order[at] <= (
            network.version, int(network.broadcast_address))  # fmt: skip
