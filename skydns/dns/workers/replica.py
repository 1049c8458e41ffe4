"""A worker's copy of the registry, built from the node's feed (`frames`):
a snapshot replaces it whole, a command is applied as the node applied it
(commands carry their time, so the result is the same)."""

from __future__ import annotations

from typing import Callable

from skydns.commands import decode
from skydns.dns.workers.frames import COMMAND, SNAPSHOT, FrameReader
from skydns.registry import Registry


class RegistryCopy:
    """Keeps ``registry`` equal to the node's; ``ready`` is called once, when
    the first snapshot is in (before it, the copy must not answer)."""

    def __init__(self, registry: Registry, ready: Callable[[], None]) -> None:
        self.registry = registry
        self.ready = ready
        self.reader = FrameReader()
        self.started = False
        self.applied = 0

    def data_received(self, data: bytes) -> None:
        """Bytes from the feed; `FrameError`, `SnapshotError` or
        `CommandDecodeError` if they are not what the node sends."""
        for kind, payload in self.reader.feed(data):
            if kind == SNAPSHOT:
                whole = Registry.restore(payload)
                self.registry.replace_with(whole)
                self.registry.version = whole.version  # the node's (the SOA serial)
                if not self.started:
                    self.started = True
                    self.ready()
            elif kind == COMMAND and self.started:
                self.registry.apply(decode(payload))
                self.applied += 1
