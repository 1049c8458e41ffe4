"""What a copy of a registry kept elsewhere needs beyond the commands: the
etcd store (``--store etcd``, `skydns.store.etcd.mirror`) replays etcd's
keys as commands, but a key also carries the callbacks attached to its
instance, and a copy that can no longer vouch for its answers must drop
every cached one.  A part of `skydns.registry.state.Registry`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from skydns.names import Callback, Service
from skydns.registry.model import Instance


class MirrorWrites:
    """The mirror's writes (a base class of `Registry`)."""

    _instances: dict[str, Instance]
    _callbacks: dict[str, dict[str, Callback]]

    def _changed(self, touched: Optional[tuple[Service, ...]] = None) -> None:
        raise NotImplementedError

    def attach_callbacks(self, uuid: str, callbacks: Iterable[Callback]) -> bool:
        """Attach ``callbacks`` to the instance ``uuid`` alone (as the copy's
        source holds them); whether it is held.  No change to answers."""
        key = uuid.lower()
        if key not in self._instances:
            return False
        attached = self._callbacks.setdefault(key, {})
        added = False
        for callback in callbacks:
            added = added or callback.uuid.lower() not in attached
            attached[callback.uuid.lower()] = callback
        if not attached:
            del self._callbacks[key]
        if added:
            self._changed(())
        return True

    def invalidate(self) -> None:
        """Tell every reader that any answer may have changed (answer
        caches are cleared), as when a whole state is installed."""
        self._changed(None)
