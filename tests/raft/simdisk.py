"""A simulated disk (`IFiles`) that can lose what a crash would lose.

Each file has its durable bytes and its current bytes (the page cache);
writes change the current bytes and are remembered until a ``datasync``
makes them durable.  Names (creations, renames, removals) become durable
when their directory is synced.  A crash keeps the durable state and, as a
real crash may, some of what was pending: a prefix of each file's unsynced
writes, the last one possibly torn (cut short, or its size reached with
zeros in place of data), and a prefix of the pending name changes.

Beyond crashes, `lose_synced_tail` models a disk that loses data it had
acknowledged (the "lost page cache" of SPEC §11): the tail of a file's
synced bytes is zeroed, its size kept.
"""

from __future__ import annotations

import os
import random
from typing import Any

from attrs import define, field
from zope.interface import implementer

from skydns.raft.storage.errors import DataDirLocked
from skydns.raft.storage.files import IFile, IFiles


class SimCrash(BaseException):
    """Raised inside a sync the world chose to crash in (not an Exception, so
    nothing in the node can catch it by accident)."""


@define(eq=False)
class Inode:
    data: bytearray = field(factory=bytearray)
    durable: bytes = b""
    #: Unsynced changes in order: ("w", offset, bytes) or ("t", size).
    pending: list[tuple[Any, ...]] = field(factory=list)
    #: Where the last write began.
    last_write: int = 0


@implementer(IFile)
class _Handle:
    def __init__(self, disk: SimDisk, inode: Inode, append: bool) -> None:
        self.disk = disk
        self.inode = inode
        self.append = append

    def write(self, data: bytes) -> None:
        self.write_at(len(self.inode.data), data)

    def write_at(self, offset: int, data: bytes) -> None:
        inode = self.inode
        if offset > len(inode.data):
            inode.data.extend(b"\0" * (offset - len(inode.data)))
        inode.data[offset : offset + len(data)] = data
        inode.pending.append(("w", offset, bytes(data)))
        inode.last_write = offset
        self.disk.writes += 1

    def datasync(self) -> None:
        self.disk.syncs += 1
        if self.disk.crash_at_sync:
            self.disk.crash_at_sync = False
            raise SimCrash("crashed inside a sync")
        self.inode.durable = bytes(self.inode.data)
        self.inode.pending.clear()

    def close(self) -> None:
        pass


@implementer(IFiles)
class SimDisk:
    """One node's disk."""

    def __init__(self) -> None:
        self.names: dict[str, Inode] = {}
        self.durable_names: dict[str, Inode] = {}
        #: Name changes not yet made durable: (op, path, inode or None).
        self.pending_names: list[tuple[str, str, Inode | None]] = []
        self.dirs: set[str] = {"", "."}
        self.locked = False
        #: Set by the world: the next sync raises `SimCrash`.
        self.crash_at_sync = False
        self.writes = 0
        self.syncs = 0

    # --- IFiles -------------------------------------------------------------

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def exists(self, path: str) -> bool:
        return path in self.dirs or path in self.names

    def make_dirs(self, path: str) -> None:
        while path and path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    def list_dir(self, path: str) -> list[str]:
        return sorted(os.path.basename(p) for p in self.names if os.path.dirname(p) == path) + \
            sorted(os.path.basename(d) for d in self.dirs if d and os.path.dirname(d) == path)

    def read(self, path: str) -> bytes:
        if path not in self.names:
            raise FileNotFoundError(path)
        return bytes(self.names[path].data)

    def create(self, path: str) -> IFile:
        inode = Inode()
        old = self.names.get(path)
        if old is not None:  # O_TRUNC of an existing file: same name, emptied
            old.data.clear()
            old.pending.append(("t", 0))
            return _Handle(self, old, append=False)
        self._name("link", path, inode)
        return _Handle(self, inode, append=False)

    def open_append(self, path: str) -> IFile:
        return _Handle(self, self._inode(path), append=True)

    def open_update(self, path: str) -> IFile:
        return _Handle(self, self._inode(path), append=False)

    def rename(self, source: str, target: str) -> None:
        inode = self._inode(source)
        del self.names[source]
        self.pending_names.append(("unlink", source, None))
        self._name("link", target, inode)

    def unlink(self, path: str) -> None:
        self._inode(path)
        del self.names[path]
        self.pending_names.append(("unlink", path, None))

    def truncate(self, path: str, size: int) -> None:
        inode = self._inode(path)
        del inode.data[size:]
        inode.pending.append(("t", size))

    def sync_dir(self, path: str) -> None:
        self.syncs += 1
        if self.crash_at_sync:
            self.crash_at_sync = False
            raise SimCrash("crashed inside a directory sync")
        keep = []
        for op, name, inode in self.pending_names:
            if os.path.dirname(name) != path:
                keep.append((op, name, inode))
            elif op == "link":
                assert inode is not None
                self.durable_names[name] = inode
            else:
                self.durable_names.pop(name, None)
        self.pending_names = keep

    def lock(self, path: str) -> object:
        if self.locked:
            raise DataDirLocked(f"data dir {path} is in use by another process")
        self.locked = True
        return path

    def unlock(self, token: Any) -> None:
        self.locked = False

    def _inode(self, path: str) -> Inode:
        if path not in self.names:
            raise FileNotFoundError(path)
        return self.names[path]

    def _name(self, op: str, path: str, inode: Inode) -> None:
        self.names[path] = inode
        self.pending_names.append((op, path, inode))

    # --- faults -------------------------------------------------------------

    def crash(self, rng: random.Random, keep_pending: float = 0.5) -> int:
        """What survives a crash: the durable state, and with probability
        ``keep_pending`` some of what was pending (a prefix of it, the last
        write possibly torn).  Returns how many pending changes were lost."""
        lost = 0
        names = dict(self.durable_names)
        applied = 0
        if self.pending_names and rng.random() < keep_pending:
            applied = rng.randint(0, len(self.pending_names))
        for op, name, inode in self.pending_names[:applied]:
            if op == "link":
                assert inode is not None
                names[name] = inode
            else:
                names.pop(name, None)
        lost += len(self.pending_names) - applied
        for inode in {id(i): i for i in names.values()}.values():
            lost += self._crash_inode(inode, rng, keep_pending)
        self.names = names
        self.durable_names = dict(names)
        self.pending_names = []
        self.locked = False
        self.crash_at_sync = False
        return lost

    @staticmethod
    def _crash_inode(inode: Inode, rng: random.Random, keep_pending: float) -> int:
        content = bytearray(inode.durable)
        pending = inode.pending
        kept = 0
        if pending and rng.random() < keep_pending:
            kept = rng.randint(0, len(pending))
        for number, change in enumerate(pending[:kept]):
            last = number == kept - 1
            if change[0] == "t":
                del content[change[1] :]
                continue
            _, offset, data = change
            if last and rng.random() < 0.5:
                data = _torn(data, rng)
            if offset > len(content):
                content.extend(b"\0" * (offset - len(content)))
            content[offset : offset + len(data)] = data
        inode.data = content
        inode.durable = bytes(content)
        lost = len(pending) - kept
        inode.pending = []
        return lost

    def lose_synced_tail(self, path: str, start: int) -> int:
        """Zero ``path``'s bytes from ``start`` to the end, size kept, as a
        disk that lost acknowledged writes would leave it (the node must be
        down).  Returns the number of bytes lost."""
        inode = self.names[path]
        size = len(inode.durable)
        if start >= size:
            return 0
        inode.durable = inode.durable[:start] + b"\0" * (size - start)
        inode.data = bytearray(inode.durable)
        return size - start


def _torn(data: bytes, rng: random.Random) -> bytes:
    """A write cut short by a crash: a prefix, or its full length with the
    missing part zeroed (the size reached the disk, the data did not)."""
    cut = rng.randint(0, max(0, len(data) - 1))
    if rng.random() < 0.5:
        return data[:cut]
    return data[:cut] + b"\0" * (len(data) - cut)
