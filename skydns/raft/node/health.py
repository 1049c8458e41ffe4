"""What a Raft node observes and reports about itself: the role and the
leader it last saw (logged, and counted in the metrics), whether it is
ready to serve (``/ready``), its status (``GET /skydns/cluster``) and its gauges.

Readiness needs the leader's own commit index, which only AppendEntries
carries: `Health.heard` keeps the latest one of the current term.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from skydns.raft.core import raft
from skydns.raft.core.messages import AppendEntries, Message

if TYPE_CHECKING:
    from skydns.raft.node.driver import RaftNode

log = Logger()


class Health:
    """The observed state and the reports of one `RaftNode`."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self.role = raft.Role.FOLLOWER
        self.leader: str | None = None
        #: (term, commit index) from the latest AppendEntries of a leader.
        self.leader_commit = (0, 0)

    def observe(self, soft: raft.SoftState | None) -> bool:
        """Log and count a Ready's change of role or leader; whether it
        names a new leader."""
        if soft is None:
            return False
        metrics, term = self.node.metrics, self.node.core.term
        if soft.role is not self.role:
            if metrics is not None and (
                soft.role is raft.Role.CANDIDATE
                or (soft.role is raft.Role.LEADER and self.role is not raft.Role.CANDIDATE)
            ):
                metrics.raft_elections.inc()
            log.info("raft role {role} at term {term}", role=soft.role.value, term=term)
            self.role = soft.role
        if soft.leader != self.leader:
            self.leader = soft.leader
            if soft.leader is not None:
                if metrics is not None:
                    metrics.raft_leader_changes.inc()
                log.info("raft leader is {leader} at term {term}", leader=soft.leader, term=term)
                return True
        return False

    def heard(self, message: Message) -> None:
        """Note ``message``, which the core has just stepped."""
        if isinstance(message, AppendEntries) and message.term == self.node.core.term:
            # Heartbeats carry a commit index capped at what we hold, so
            # only AppendEntries tells us the leader's own commit index.
            term, commit = self.leader_commit
            if term != message.term:
                commit = 0
            self.leader_commit = (message.term, max(commit, message.commit))

    def is_ready(self) -> bool:
        """`ICluster.is_ready`: a leader is known and this node has applied
        what it had committed."""
        node = self.node
        core = node.core
        if node.failed or node.removed is not None or core.leader is None:
            return False
        if core.role is raft.Role.LEADER:
            term_committed = core.log.term(core.log.committed) == core.term
            return term_committed and node.applied_index >= core.log.committed
        # Ready once we have applied what the leader had committed when we
        # last heard, counting only a commit index of the leader's own term
        # (before its first entry commits, its commit index may lag ours).
        term, commit = self.leader_commit
        if term != core.term or core.log.term(commit) != core.term:
            return False
        return node.applied_index >= max(commit, core.log.committed)

    def status(self) -> dict[str, Any]:
        """The node's status as ``GET /skydns/cluster`` shows it."""
        node = self.node
        core = node.core
        leader = core.leader
        role = core.role
        members = []
        for member in sorted(node.addresses):
            if member == node.id and node.removed is not None:
                name = "removed"
            elif member == node.id:
                name = "candidate" if role in (raft.Role.CANDIDATE, raft.Role.PRE_CANDIDATE) \
                    else role.value
            elif member == leader:
                name = "leader"
            elif member in core.config.learners:
                name = "learner"
            else:
                name = "follower"
            members.append({"id": member, "address": node.addresses[member], "role": name})
        return {
            "id": node.id,
            "leader": leader,
            "term": core.term,
            "commit_index": core.log.committed,
            "applied_index": node.applied_index,
            "last_index": core.log.last_index(),
            "role": members[sorted(node.addresses).index(node.id)]["role"],
            "ready": self.is_ready(),
            "failed": node.failure,
            "members": members,
        }

    def update_metrics(self) -> None:
        """Set the Raft gauges (role, term, commit and applied index)."""
        node = self.node
        m = node.metrics
        if m is None:
            return
        role = node.core.role
        m.set_role("removed" if node.removed is not None else
                   "leader" if role is raft.Role.LEADER else
                   "follower" if role is raft.Role.FOLLOWER else "candidate")  # fmt: skip
        m.raft_term.set(node.core.term)
        m.raft_commit.set(node.core.log.committed)
        m.raft_applied.set(node.applied_index)


__all__ = ["Health"]
