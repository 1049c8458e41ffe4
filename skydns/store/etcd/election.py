"""Which SkyDNS node sends callbacks when the registry is in etcd: the one
holding ``<prefix>leader``, a key created only if absent and attached to a
short etcd lease the holder keeps alive.  When the holder dies or is cut off,
the lease runs out, the key goes, and another node creates it.

A holder that cannot reach etcd stops counting itself the holder a second
before its lease could have run out, so two nodes never both send.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from skydns.store.etcd.client import EtcdClient, compare_created, put_op

log = Logger()

#: The election lease's TTL, and how often it is renewed.
TTL = 5
INTERVAL = 1.0


class Election:
    """This node's candidacy for ``key`` (as ``node_id``)."""

    def __init__(self, client: EtcdClient, key: bytes, node_id: str,
                 clock: IReactorTime) -> None:  # fmt: skip
        self.client = client
        self.key = key
        self.node_id = node_id
        self.clock = clock
        #: The node that holds the key, as last read (None: none, or unknown).
        self.holder: Optional[str] = None
        self._lease = 0
        self._until = 0.0  # holding counts until then (clock seconds)
        self._busy = False
        self._loop: Optional[LoopingCall] = None

    def holds(self) -> bool:
        """Whether this node holds the key now."""
        return self.holder == self.node_id and self.clock.seconds() < self._until

    def start(self) -> None:
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(INTERVAL, now=True)

    def tick(self) -> Optional[Deferred[None]]:
        if self._busy:
            return None
        self._busy = True
        return Deferred.fromCoroutine(self._campaign())

    async def _campaign(self) -> None:
        try:
            asked = self.clock.seconds()
            ttl = await self.client.keepalive(self._lease) if self._lease else 0
            if ttl <= 0:
                self._lease = await self.client.grant(TTL)
                ttl = TTL
            claim = put_op(self.key, self.node_id.encode(), self._lease)
            await self.client.txn([compare_created(self.key, 0)], [claim])
            found, _ = await self.client.range(self.key)
            holder = found[0].value.decode("utf-8", "replace") if found else None
            mine = bool(found) and holder == self.node_id and found[0].lease == self._lease
            if mine and not self.holds():
                log.info("this node now sends callbacks (it holds the etcd election key)")
            elif self.holds() and not mine:
                log.info("this node no longer sends callbacks ({holder} does)", holder=holder)
            self.holder = holder if (mine or holder != self.node_id) else None
            self._until = asked + ttl - 1 if mine else 0.0
        except Exception as e:
            log.debug("election: {e}", e=e)
        finally:
            self._busy = False

    async def resign(self) -> None:
        """Give the key up at once (on a clean stop), so another node takes
        over without waiting out the lease."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        lease, self._lease, self._until = self._lease, 0, 0.0
        if lease:
            try:
                await self.client.revoke(lease)
            except Exception as e:
                log.debug("election lease not revoked: {e}", e=e)
