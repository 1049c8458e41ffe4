"""Small, careful file operations for the durable log.

Every write or sync failure becomes `StorageFailure`: after a failed fsync
the kernel may have dropped the dirty pages, so retrying could report
success for data that is gone.  The only safe answer is to stop.
"""

from __future__ import annotations

import errno
import fcntl
import os

from skydns.raft.storage.wal import StorageError, StorageFailure

# fdatasync flushes the data and the metadata needed to read it back (the
# size), which is all an append needs; macOS has only fsync.
_datasync = getattr(os, "fdatasync", os.fsync)


class DataDirLocked(StorageError):
    """Another process has this data dir open."""


def sync_data(fd: int, path: str) -> None:
    try:
        _datasync(fd)
    except OSError as e:
        raise StorageFailure(f"{path}: fdatasync failed: {e}") from e


def write_all(fd: int, data: bytes, path: str) -> None:
    """Write ``data`` with one write call (looping only if the kernel takes
    less)."""
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as e:
        raise StorageFailure(f"{path}: write failed: {e}") from e


def sync_dir(path: str) -> None:
    """Make the creation, renaming or removal of names in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise StorageFailure(f"{path}: fsync of the directory failed: {e}") from e


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` by ``data``, all or nothing, durably: temp file,
    fsync, rename, fsync the directory."""
    tmp = path + ".tmp"
    write_synced(tmp, data)
    replace_synced(tmp, path)


def write_synced(path: str, *pieces: bytes) -> None:
    """Create (or truncate) ``path`` holding the ``pieces`` one after the
    other, fsync'ed: the first half of `write_atomically`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StorageFailure(f"{path}: cannot create: {e}") from e
    try:
        for data in pieces:
            write_all(fd, data, path)
        try:
            os.fsync(fd)
        except OSError as e:
            raise StorageFailure(f"{path}: fsync failed: {e}") from e
    finally:
        os.close(fd)


def replace_synced(tmp: str, path: str) -> None:
    """Rename ``tmp`` to ``path`` and fsync the directory: the second half
    of `write_atomically`."""
    try:
        os.rename(tmp, path)
    except OSError as e:
        raise StorageFailure(f"{path}: rename failed: {e}") from e
    sync_dir(os.path.dirname(path) or ".")


def lock_dir(path: str) -> int:
    """Take an exclusive lock on the data dir ``path``; return its fd.

    `fcntl.flock` locks belong to the open file, so the kernel releases the
    lock when the process dies, however it dies.
    """
    lock_path = os.path.join(path, "LOCK")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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


def unlock_dir(fd: int) -> None:
    os.close(fd)
