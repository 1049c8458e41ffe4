"""The file operations the durable log uses, behind one seam.

`IFiles` is every call `DiskStorage` makes to a file system: production uses
`OSFiles` (the real one, with ``fdatasync``); the simulation in
``tests/raft/`` uses a simulated disk that loses, tears or zeroes what was
not synced when a node crashes, so the same storage code is proven there.
Write and sync failures are `StorageFailure` (fail-stop); other errors are
`OSError`, which the storage turns into a `StorageFailure` naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Any

from zope.interface import Interface, implementer

from skydns.raft.storage.errors import DataDirLocked, StorageFailure

# fdatasync flushes the data and the metadata needed to read it back (the
# size), which is all an append needs; macOS has only fsync.
_datasync = getattr(os, "fdatasync", os.fsync)


class IFile(Interface):
    """An open file being written."""

    def write(data: bytes) -> None:
        """Write all of ``data`` at the end (raises `StorageFailure`)."""

    def write_at(offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (raises `StorageFailure`)."""

    def datasync() -> None:
        """Make what was written durable, with the size (``fdatasync``)."""

    def close() -> None:
        """Close it (nothing written is lost by closing)."""


class IFiles(Interface):
    """A file system."""

    def is_dir(path: str) -> bool:
        """Whether ``path`` is a directory."""

    def exists(path: str) -> bool:
        """Whether ``path`` names anything."""

    def make_dirs(path: str) -> None:
        """Create ``path`` and its parents if missing."""

    def list_dir(path: str) -> list[str]:
        """The names in directory ``path``, sorted."""

    def read(path: str) -> bytes:
        """A whole file (raises FileNotFoundError)."""

    def create(path: str) -> IFile:
        """Create ``path`` empty (or empty it) and open it for writing."""

    def open_append(path: str) -> IFile:
        """Open an existing file to write at its end."""

    def open_update(path: str) -> IFile:
        """Open an existing file to write anywhere in it (`IFile.write_at`)."""

    def rename(source: str, target: str) -> None:
        """Atomically replace ``target`` by ``source``."""

    def unlink(path: str) -> None:
        """Remove a file."""

    def truncate(path: str, size: int) -> None:
        """Cut a file to ``size`` bytes."""

    def sync_dir(path: str) -> None:
        """Make the creation, renaming or removal of names in ``path`` durable."""

    def lock(path: str) -> Any:
        """Take an exclusive lock on directory ``path`` for this process
        (raises `DataDirLocked`); the token is given to `unlock`."""

    def unlock(token: Any) -> None:
        """Release a lock from `lock`."""


@implementer(IFile)
class _OSFile:
    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as e:
            raise StorageFailure(f"{self.path}: write failed: {e}") from e

    def write_at(self, offset: int, data: bytes) -> None:
        try:
            written = os.pwrite(self.fd, data, offset)
        except OSError as e:
            raise StorageFailure(f"{self.path}: write failed: {e}") from e
        if written != len(data):
            raise StorageFailure(f"{self.path}: short write ({written} of {len(data)} bytes)")

    def datasync(self) -> None:
        try:
            _datasync(self.fd)
        except OSError as e:
            raise StorageFailure(f"{self.path}: fdatasync failed: {e}") from e

    def close(self) -> None:
        os.close(self.fd)


@implementer(IFiles)
class OSFiles:
    """`IFiles` on the real file system."""

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def make_dirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def list_dir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def create(self, path: str) -> IFile:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            return _OSFile(os.open(path, flags, 0o600), path)
        except OSError as e:
            raise StorageFailure(f"{path}: cannot create: {e}") from e

    def open_append(self, path: str) -> IFile:
        return _OSFile(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC), path)

    def open_update(self, path: str) -> IFile:
        return _OSFile(os.open(path, os.O_WRONLY | os.O_CLOEXEC), path)

    def rename(self, source: str, target: str) -> None:
        try:
            os.rename(source, target)
        except OSError as e:
            raise StorageFailure(f"{target}: rename failed: {e}") from e

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def truncate(self, path: str, size: int) -> None:
        os.truncate(path, size)

    def sync_dir(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StorageFailure(f"{path}: fsync of the directory failed: {e}") from e

    def lock(self, path: str) -> int:
        """`fcntl.flock` locks belong to the open file, so the kernel
        releases the lock when the process dies, however it dies."""
        lock_path = os.path.join(path, "LOCK")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirLocked(
                    f"data dir {path} is in use by another process (pid {holder}); "
                    "two nodes cannot share one data dir"
                ) from e
            raise StorageFailure(f"{lock_path}: cannot lock: {e}") from e
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        return fd

    def unlock(self, token: Any) -> None:
        os.close(token)


def write_synced(files: IFiles, path: str, *pieces: bytes) -> None:
    """Create (or empty) ``path`` holding the ``pieces`` one after the
    other, synced: the first half of `write_atomically`."""
    f = files.create(path)
    try:
        for data in pieces:
            f.write(data)
        f.datasync()
    finally:
        f.close()


def replace_synced(files: IFiles, tmp: str, path: str) -> None:
    """Rename ``tmp`` to ``path`` and sync the directory: the second half
    of `write_atomically`."""
    files.rename(tmp, path)
    files.sync_dir(os.path.dirname(path) or ".")


def write_atomically(files: IFiles, path: str, *pieces: bytes) -> None:
    """Replace ``path`` by ``pieces``, all or nothing, durably: temp file,
    sync, rename, sync the directory."""
    write_synced(files, path + ".tmp", *pieces)
    replace_synced(files, path + ".tmp", path)
