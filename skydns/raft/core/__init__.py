"""The pure Raft core: no I/O, no clock, no threads (modelled on etcd's raft).

`raft.RaftCore` takes ticks, messages and client requests and hands back a
`ready.Ready`: what to persist, send and apply.  The rules live in one
module each (``election``, ``replication``, ``reads``, ``membership``), as
functions over the server's state (``state.CoreState``); ``log`` is the
core's view of the log, ``progress`` what a leader tracks, ``messages``
every value that crosses a wire or a disk.
"""
