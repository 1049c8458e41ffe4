"""A client of etcd's v3 JSON gateway over treq: what ``--store etcd``
(SPEC.md §10) is built on, with no blocking client and no gRPC stack in
the reactor.

Every call is one POST of a JSON body to ``/v3/...``; keys and values are
bytes (base64 on the wire) and 64-bit numbers arrive as strings.  A watch
is one long POST whose answer is a stream of JSON objects, one per line.
The endpoints are tried in turn: a connection that fails moves on to the
next, and the one that answered is asked first next time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Callable, Optional

import treq
from attrs import frozen
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, ConnectionLost
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.client import ResponseFailed

log = Logger()

#: What a failed connection to one endpoint raises (the next one is tried).
_UNREACHABLE = (ConnectError, ConnectionLost, ConnectTimeout, ResponseFailed, TimeoutError,
                defer.TimeoutError)


class EtcdError(Exception):
    """etcd answered, with an error (``status`` is the HTTP status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"etcd: {status} {message}")
        self.status = status
        self.message = message


class EtcdUnavailable(Exception):
    """No endpoint could be reached."""


class Compacted(Exception):
    """A watch asked for a revision etcd has compacted away: read afresh."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


@frozen
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyValue:
        return cls(_unb64(data.get("key")), _unb64(data.get("value")),
                   int(data.get("create_revision", 0)), int(data.get("mod_revision", 0)),
                   int(data.get("lease", 0)))  # fmt: skip


@frozen
class Event:
    """One change a watch saw: ``put`` or ``delete`` of ``kv``."""

    kind: str
    kv: KeyValue


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Optional[str]) -> bytes:
    return base64.b64decode(text) if text else b""


def describe(error: BaseException) -> str:
    """One line for a failed connection (a `ResponseFailed` lists the
    failures inside it, such as a TLS alert)."""
    reasons = getattr(error, "reasons", None)
    if isinstance(error, ResponseFailed) and reasons:
        return "; ".join(str(r.getErrorMessage()) for r in reasons)
    return str(error) or type(error).__name__


def compare_created(key: bytes, revision: int, result: str = "EQUAL") -> dict[str, Any]:
    """A txn compare on ``key``'s create revision (0: the key is absent)."""
    return {"key": _b64(key), "target": "CREATE", "result": result,
            "create_revision": str(revision)}  # fmt: skip


def compare_modified(key: bytes, revision: int) -> dict[str, Any]:
    """A txn compare: ``key`` was last written at ``revision``."""
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def put_op(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def delete_op(key: bytes) -> dict[str, Any]:
    return {"request_delete_range": {"key": _b64(key)}}


def range_op(key: bytes) -> dict[str, Any]:
    return {"request_range": {"key": _b64(key)}}


def ranged(response: dict[str, Any]) -> list[KeyValue]:
    """The keys a `range_op` in a txn's responses read."""
    return [KeyValue.from_json(kv) for kv in response.get("response_range", {}).get("kvs", [])]


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range of every key under ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


class EtcdClient:
    """Calls on an etcd cluster at ``endpoints`` (``http://HOST:PORT``)."""

    def __init__(self, endpoints: list[str], clock: IReactorTime, http: Any = treq,
                 timeout: float = 5.0) -> None:  # fmt: skip
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.clock = clock
        self.http = http
        self.timeout = timeout
        self._first = 0

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` on the first endpoint that answers."""
        data = json.dumps(body).encode("utf-8")
        failures = []
        for attempt in range(len(self.endpoints)):
            at = (self._first + attempt) % len(self.endpoints)
            url = self.endpoints[at] + path
            try:
                d = self.http.post(url, data=data, headers={b"Content-Type": [b"application/json"]})
                d.addTimeout(self.timeout, self.clock)
                response = await d
                content = self.http.content(response)
                content.addTimeout(self.timeout, self.clock)
                raw: bytes = await content
            except _UNREACHABLE as e:
                failures.append(f"{self.endpoints[at]}: {describe(e)}")
                continue
            self._first = at
            try:
                answer: Any = json.loads(raw)
            except ValueError as e:
                raise EtcdError(response.code, f"not JSON: {raw[:200]!r}") from e
            if response.code != 200 or not isinstance(answer, dict):
                message = answer.get("error") or answer.get("message") if isinstance(
                    answer, dict) else raw[:200]  # fmt: skip
                raise EtcdError(response.code, str(message))
            return answer
        raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(failures))

    # -- keys ----------------------------------------------------------------------

    async def range(self, key: bytes, range_end: bytes = b"",
                    revision: int = 0) -> tuple[list[KeyValue], int]:  # fmt: skip
        """The keys from ``key`` to ``range_end`` (just ``key`` without one)
        at ``revision`` (0: the latest), and the revision read."""
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end:
            body["range_end"] = _b64(range_end)
        if revision:
            body["revision"] = str(revision)
        answer = await self.call("/v3/kv/range", body)
        kvs = [KeyValue.from_json(kv) for kv in answer.get("kvs", [])]
        return kvs, int(answer["header"]["revision"])

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Write ``key``; the revision it was written at."""
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        answer = await self.call("/v3/kv/put", body)
        return int(answer["header"]["revision"])

    async def create(self, key: bytes, value: bytes, lease: int = 0) -> Optional[int]:
        """Write ``key`` only if it does not exist (one transaction): the
        revision, or None when it existed."""
        done, revision, _ = await self.txn([compare_created(key, 0)], [put_op(key, value, lease)])
        return revision if done else None

    async def delete(self, key: bytes, range_end: bytes = b"") -> int:
        """Delete ``key`` (or the range to ``range_end``); how many went."""
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end:
            body["range_end"] = _b64(range_end)
        answer = await self.call("/v3/kv/deleterange", body)
        return int(answer.get("deleted", 0))

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
                  failure: Sequence[dict[str, Any]] = ()
                  ) -> tuple[bool, int, list[Any]]:  # fmt: skip
        """One transaction, its parts in the gateway's JSON (`compare_*`,
        `put_op`, `delete_op`, `range_op` build them): whether the compares
        held, the revision, and the responses of the branch taken."""
        answer = await self.call("/v3/kv/txn", {
            "compare": compare, "success": list(success), "failure": list(failure)})
        return (bool(answer.get("succeeded")), int(answer["header"]["revision"]),
                list(answer.get("responses", [])))  # fmt: skip

    # -- leases --------------------------------------------------------------------

    async def grant(self, ttl: int, lease: int = 0) -> int:
        """A new lease of ``ttl`` seconds (with the ID ``lease``, or one etcd
        picks); its ID.  `EtcdError` if a lease has that ID already."""
        body = {"TTL": str(ttl)}
        if lease:
            body["ID"] = str(lease)
        answer = await self.call("/v3/lease/grant", body)
        if answer.get("error"):
            raise EtcdError(200, str(answer["error"]))
        return int(answer["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew a lease for its TTL; the TTL, 0 when it is gone."""
        answer = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    async def time_to_live(self, lease: int) -> int:
        """Seconds left on a lease; -1 when it is gone."""
        answer = await self.call("/v3/kv/lease/timetolive", {"ID": str(lease)})
        return int(answer.get("TTL", -1))

    async def revoke(self, lease: int) -> bool:
        """End a lease and delete its keys; False if it was gone."""
        try:
            await self.call("/v3/kv/lease/revoke", {"ID": str(lease)})
        except EtcdError as e:
            if "not found" in e.message:
                return False
            raise
        return True

    # -- watching ------------------------------------------------------------------

    def watch(self, key: bytes, range_end: bytes, start_revision: int,
              on_events: Callable[[list[Event], int], None],
              opened: Callable[[], None] = lambda: None) -> Deferred[None]:  # fmt: skip
        """Call ``on_events(events, revision)`` for each batch of changes from
        ``start_revision`` on (and ``opened()`` once etcd answered the
        request); the Deferred fires when the stream ends (errbacks
        `Compacted`, `EtcdUnavailable` or a connection error).  Cancel it to
        stop watching."""
        return Deferred.fromCoroutine(
            self._watch(key, range_end, start_revision, on_events, opened))

    async def _watch(self, key: bytes, range_end: bytes, start_revision: int,
                     on_events: Callable[[list[Event], int], None],
                     opened: Callable[[], None]) -> None:  # fmt: skip
        body = json.dumps({"create_request": {
            "key": _b64(key), "range_end": _b64(range_end),
            "start_revision": str(start_revision)}}).encode()  # fmt: skip
        url = self.endpoints[self._first] + "/v3/watch"
        try:
            response = await self.http.post(url, data=body,
                                            headers={b"Content-Type": [b"application/json"]})
        except _UNREACHABLE as e:
            self._first = (self._first + 1) % len(self.endpoints)
            raise EtcdUnavailable(f"{url}: {describe(e)}") from e
        if response.code == 200:
            opened()
        buffer = bytearray()
        failure: list[BaseException] = []

        def received(chunk: bytes) -> None:
            buffer.extend(chunk)
            while b"\n" in buffer:
                line, _, rest = bytes(buffer).partition(b"\n")
                buffer[:] = rest
                if not line.strip() or failure:
                    continue
                try:
                    self._watch_line(line, on_events)
                except Exception as e:  # ends the stream: the caller reads afresh
                    failure.append(e)
                    collecting.cancel()

        collecting = self.http.collect(response, received)
        try:
            await collecting
        except Exception:
            if not failure:
                raise
        if failure:
            raise failure[0]

    @staticmethod
    def _watch_line(line: bytes, on_events: Callable[[list[Event], int], None]) -> None:
        message = json.loads(line)
        result = message.get("result")
        if result is None:
            raise EtcdError(200, str(message.get("error", message))[:200])
        compact = int(result.get("compact_revision", 0))
        if compact:
            raise Compacted(compact)
        revision = int(result["header"]["revision"])
        events = [Event("delete" if e.get("type") == "DELETE" else "put",
                        KeyValue.from_json(e["kv"])) for e in result.get("events", [])]  # fmt: skip
        if events:
            on_events(events, revision)
