"""When leases end: a heap of (expiry, UUID key) so that finding the
instances whose lease has run out visits only those, not every instance.

Renewals leave an instance's entry in place (one heap push per lease
period, not per renewal) and `ExpiryQueue.due` moves a renewed entry on
when it comes up; removals and shortening renewals leave stale entries,
which a rebuild drops before they dominate.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from skydns.registry.model import Instance


class ExpiryQueue:
    """The lease heap of one registry's instances."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        """Entries held, stale ones included."""
        return len(self._heap)

    def push(self, instance: Instance, instances: Mapping[str, Instance]) -> None:
        """Note ``instance``'s lease end (nothing for a NoExpire one);
        ``instances`` (UUID key to instance) is what a rebuild starts from."""
        if instance.service.no_expire or instance.service.lease:
            return  # never due, or due with its lease
        heap = self._heap
        heapq.heappush(heap, (instance.expires, instance.service.uuid.lower()))
        if len(heap) > 2 * len(instances) + 1024:
            self._heap = [
                (i.expires, k)
                for k, i in instances.items()
                if not (i.service.no_expire or i.service.lease)
            ]
            heapq.heapify(self._heap)

    def due(self, now: float, instances: Mapping[str, Instance]) -> list[str]:
        """UUIDs whose lease ran out at ``now``, earliest expiry first.  The
        entries stay in the heap: an instance is due until it is removed."""
        heap = self._heap
        found: list[tuple[float, str]] = []
        seen: set[str] = set()
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            instance = instances.get(key)
            if instance is None or instance.service.no_expire or instance.service.lease:
                continue
            if key in seen:
                continue  # stale: removed, or a duplicate entry
            if instance.expires > expires:
                heapq.heappush(heap, (instance.expires, key))  # renewed since
                continue
            if instance.expires != expires:
                continue  # an earlier entry (a shortening renewal) stood for it
            seen.add(key)
            found.append((expires, key))
        for entry in found:
            heapq.heappush(heap, entry)
        return [instances[key].service.uuid for _, key in found]
