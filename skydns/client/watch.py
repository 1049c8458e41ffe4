"""``client.watch(pattern)``: the changes of a pattern's answer set as an
async iterator, reconnecting and resuming by itself (SPEC.md §6).

It reads ``GET /skydns/watch`` (Server-Sent Events).  When the stream ends
or fails it reconnects after a backoff (0.5 s doubling to 30 s), sending the
last event's id as ``Last-Event-ID``: the server sends exactly the changes
missed, or a ``reset`` with the whole set when it no longer holds them.  So a
consumer that applies ``reset`` (replace everything) and ``change`` (add,
change, remove) keeps an exact copy of the set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlencode

from attrs import frozen
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.interfaces import IDelayedCall

from skydns.client.models import ServiceInfo

#: Seconds before the first reconnection, doubled up to `MAX_BACKOFF`.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


@frozen
class WatchEvent:
    """One event: ``reset`` (``services`` is the whole set) or ``change``
    (``added``, ``changed``, ``removed``), at ``index``."""

    kind: str
    index: int
    services: tuple[ServiceInfo, ...] = ()
    added: tuple[ServiceInfo, ...] = ()
    changed: tuple[ServiceInfo, ...] = ()
    removed: tuple[ServiceInfo, ...] = ()

    @classmethod
    def from_sse(cls, kind: str, data: Mapping[str, Any]) -> WatchEvent:
        def services(key: str) -> tuple[ServiceInfo, ...]:
            return tuple(ServiceInfo.from_json(s) for s in data.get(key) or ())

        return cls(kind, int(data.get("index", 0)), services("services"), services("added"),
                   services("changed"), services("removed"))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event": self.kind, "index": self.index}
        for key in ("services", "added", "changed", "removed"):
            items = getattr(self, key)
            if items or (key == "services" and self.kind == "reset"):
                body[key] = [dict(s.raw) for s in items]
        return body


class Watch:
    """The async iterator `SkyDNSClient.watch` returns; `close` ends it."""

    def __init__(self, client: Any, pattern: Optional[str], consistent: bool = False) -> None:
        self._client = client
        self._params = {"query": pattern or ""}
        if consistent:
            self._params["consistent"] = "true"
        self._queue: DeferredQueue[Optional[WatchEvent]] = DeferredQueue()
        self._buffer = b""
        self.last_id: Optional[str] = None
        self._backoff = FIRST_BACKOFF
        self._closed = False
        self._pending: Optional[Deferred[Any]] = None
        self._retry: Optional[IDelayedCall] = None
        #: Connections made (the first, then one per reconnection).
        self.connections = 0
        self._connect()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stop watching: the iteration ends after the events already received."""
        if not self._closed:
            self._queue.put(None)
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._pending is not None:
            self._pending.cancel()

    def _connect(self) -> None:
        if self._closed:
            return
        self.connections += 1
        client = self._client
        headers = {b"Accept": [b"text/event-stream"]}
        if client.secret is not None:
            headers[b"Authorization"] = [client.secret.encode("utf-8")]
        if self.last_id is not None:
            headers[b"Last-Event-ID"] = [self.last_id.encode("ascii")]
        url = client._url("/skydns/watch?" + urlencode(self._params))
        d = client._http.request("GET", url, headers=headers, unbuffered=True)
        d.addCallback(self._connected)
        d.addBoth(self._ended)
        self._pending = d

    def _connected(self, response: Any) -> Any:
        if response.code != 200:
            return None  # not now (503, 401...): try again later
        self._backoff = FIRST_BACKOFF
        self._buffer = b""
        import treq

        collect = getattr(self._client._http, "collect", treq.collect)
        return collect(response, self._received)

    def _ended(self, result: Any) -> None:
        self._pending = None
        if self._closed:
            return
        delay, self._backoff = self._backoff, min(self._backoff * 2, MAX_BACKOFF)
        self._retry = self._client.clock.callLater(delay, self._connect)

    def _received(self, data: bytes) -> None:
        self._buffer += data.replace(b"\r\n", b"\n")
        *blocks, self._buffer = self._buffer.split(b"\n\n")
        for block in blocks:
            fields: dict[str, str] = {}
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith(":") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value
            if "data" not in fields:
                continue
            if "id" in fields:
                self.last_id = fields["id"]
            event = WatchEvent.from_sse(fields.get("event", "message"), json.loads(fields["data"]))
            self._queue.put(event)
