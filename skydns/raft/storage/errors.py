"""What can go wrong with a Raft node's durable storage."""

from __future__ import annotations


class StorageError(Exception):
    """The durable log cannot be used."""


class CorruptDataError(StorageError):
    """The data on disk is damaged in a way no crash explains and that the
    node cannot recover from its peers: it must refuse to start, since
    serving from it could serve wrong data."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt data at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class StorageFailure(StorageError):
    """A write or sync failed: the process must stop (fail-stop), never ack.

    After a failed fsync the kernel may have dropped the dirty pages, so
    retrying could report success for data that is gone."""


class DataDirLocked(StorageError):
    """Another process has this data dir open."""
