"""Callback notification: tell watchers when their service leaves (SPEC.md §2).

A callback is an HTTP ``DELETE http://<Reply>:<Port>/skydns/callbacks/<cbuuid>``
carrying the removed service's JSON.  It is sent once, by the leader, when
the command that removed the instance is applied live (not replayed).
Delivery is best effort: a failure is logged, never retried or raised.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Protocol, cast
from urllib.parse import quote

from hyperlink import EncodedURL
from treq.content import content
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from skydns.clock import Clock
from skydns.commands import Command
from skydns.names import Callback
from skydns.presentation import service_json
from skydns.registry import Applied

JSON_TYPE = b"application/json"


class HTTPClient(Protocol):
    """The part of a treq client (``treq``, ``treq.client.HTTPClient``,
    ``treq.testing.StubTreq``) used here."""

    def delete(self, url: EncodedURL, *, data: bytes, headers: Headers) -> Deferred[Any]: ...


class _ASCIIURL(EncodedURL):
    """A URL already in URI form.  treq calls ``to_uri()``, whose IDNA step
    rejects IPv6 literal hosts (hyperlink); ours are plain ASCII already."""

    def to_uri(self, *args: Any, **kwargs: Any) -> _ASCIIURL:
        return self


def callback_url(callback: Callback) -> str:
    """Where ``callback`` is delivered; an IPv6 Reply is bracketed (RFC 3986 §3.2.2)."""
    host = callback.reply
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{callback.port}/skydns/callbacks/{quote(callback.uuid, safe='')}"


class CallbackNotifier:
    """An apply listener (`skydns.cluster.ApplyListener`) that sends callbacks.

    ``clock``, when given, bounds each request by ``timeout`` seconds.
    """

    log = Logger()

    def __init__(
        self, http_client: HTTPClient, clock: Optional[Clock] = None, timeout: float = 10.0
    ) -> None:
        self.http_client = http_client
        self.clock = clock
        self.timeout = timeout
        self._pending: set[Deferred[None]] = set()
        self._stopping = False

    def __call__(self, command: Command, applied: Applied, live: bool) -> None:
        self.notify(command, applied, live)

    def notify(self, command: Command, applied: Applied, live: bool) -> None:
        """For a live apply, send every callback of every removed instance.

        The JSON is the service as GET showed it, at the command's time.
        """
        if not live:
            return
        for removal in applied.removals:
            if not removal.callbacks:
                continue
            body = json.dumps(service_json(removal.instance, command.now)).encode("utf-8")
            for callback in removal.callbacks:
                self.send(callback, body)

    #: The name the composition root uses for the apply listener.
    on_applied = notify

    def send(self, callback: Callback, body: bytes) -> Deferred[None]:
        """Deliver one callback; the Deferred fires (never fails) when done."""
        url = callback_url(callback)
        d = Deferred.fromCoroutine(self._deliver(_ASCIIURL.from_text(url), body))
        if self.clock is not None:
            d.addTimeout(self.timeout, cast(IReactorTime, self.clock))
        d.addErrback(self._failed, url)
        self._pending.add(d)
        d.addBoth(self._done, d)
        return d

    async def _deliver(self, url: EncodedURL, body: bytes) -> None:
        response = await self.http_client.delete(
            url, data=body, headers=Headers({b"Content-Type": [JSON_TYPE]})
        )
        await content(response)  # read it, so the connection is released
        if 200 <= response.code < 300:
            self.log.debug("callback {url} delivered", url=url.to_text())
        else:
            self.log.warn(
                "callback {url} answered {code}", url=url.to_text(), code=response.code
            )

    def _failed(self, failure: Failure, url: str) -> None:
        if failure.check(CancelledError) and self._stopping:
            return
        self.log.failure("callback {url} failed", failure, url=url)

    def _done(self, result: object, d: Deferred[None]) -> None:
        self._pending.discard(d)

    def pending(self) -> int:
        """How many callbacks are being delivered now."""
        return len(self._pending)

    def stop(self) -> None:
        """Abandon deliveries under way (at shutdown)."""
        self._stopping = True
        for d in list(self._pending):
            d.cancel()
