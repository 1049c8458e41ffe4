"""A Raft node's durable storage.

`interface.IRaftStorage` is the contract; `disk.DiskStorage` keeps it in a
data dir (`wal` is the log's format, `statefiles` the snapshot and hard
state files, `replay` reads them back, `logstate` the rules every storage
follows) through `files.IFiles`, so that the simulation can run it over a
simulated disk; `memory.MemoryStorage` keeps it in memory for unit tests.
"""
