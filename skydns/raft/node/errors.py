"""How a Raft node says no to its clients."""

from __future__ import annotations


class Unavailable(Exception):
    """This node cannot take the request now: no leader is known, the
    leader was lost, or the node is stopping, failed or was removed.  The
    message says which; the request may be retried (at another node)."""


class CommitTimeout(TimeoutError):
    """A proposal was not applied here before its deadline; it may still be."""
