"""What a Raft node observes and reports about itself: the role and the
leader it last saw (logged, and counted in the metrics), whether it is
ready to serve (``/ready``) and why not, its status (``GET /skydns/cluster``)
and its gauges.

Readiness needs the leader's own commit index, which only AppendEntries
carries: `Health.heard` keeps the latest one of the current term.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.logger import Logger

from skydns.raft.core.messages import AppendEntries, Message
from skydns.raft.core.ready import Role, SoftState
from skydns.raft.node.condition import Condition
from skydns.raft.node.gate import CoreGate

log = Logger()


class RaftMetrics(Protocol):
    """The metrics a node keeps (``skydns.metrics.Metrics`` has them)."""

    raft_elections: Any
    raft_leader_changes: Any
    raft_term: Any
    raft_commit: Any
    raft_applied: Any
    fsync_latency: Any

    def set_role(self, role: str) -> None: ...


class Health:
    """The observed state and the reports of one node."""

    def __init__(
        self,
        gate: CoreGate,
        addresses: dict[str, str | None],
        condition: Condition,
        applied: Callable[[], int],
        metrics: RaftMetrics | None = None,
        replicas: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.gate = gate
        #: Every member's Raft address, kept current by `Members`.
        self.addresses = addresses
        self.condition = condition
        self.applied = applied
        self.metrics = metrics
        #: The members that are read replicas (`Members.replicas`).
        self.replicas = replicas
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        #: (term, commit index) from the latest AppendEntries of a leader.
        self.leader_commit = (0, 0)

    def observe(self, soft: SoftState | None) -> bool:
        """Log and count a Ready's change of role or leader; whether it
        names a new leader."""
        if soft is None:
            return False
        metrics, term = self.metrics, self.gate.core.term
        if soft.role is not self.role:
            if metrics is not None and (
                soft.role is Role.CANDIDATE
                or (soft.role is Role.LEADER and self.role is not Role.CANDIDATE)
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
        if isinstance(message, AppendEntries) and message.term == self.gate.core.term:
            # Heartbeats carry a commit index capped at what we hold, so
            # only AppendEntries tells us the leader's own commit index.
            term, commit = self.leader_commit
            if term != message.term:
                commit = 0
            self.leader_commit = (message.term, max(commit, message.commit))

    def why_not_ready(self) -> str | None:
        """Why this node should not be sent traffic now (None: it is ready:
        it knows a leader and has applied what that leader had committed)."""
        reason = self.condition.unready()
        if reason is not None:
            return reason
        core = self.gate.core
        if core.leader is None:
            return "no leader is known"
        applied = self.applied()
        if core.role is Role.LEADER:
            if core.log.term(core.log.committed) != core.term:
                return "the leader has not committed an entry of its term yet"
            return None if applied >= core.log.committed else "applying the log"
        # Ready once we have applied what the leader had committed when we
        # last heard, counting only a commit index of the leader's own term
        # (before its first entry commits, its commit index may lag ours).
        term, commit = self.leader_commit
        if term != core.term or core.log.term(commit) != core.term:
            return "catching up with the leader"
        if applied < max(commit, core.log.committed):
            return "applying the log"
        return None

    def is_ready(self) -> bool:
        return self.why_not_ready() is None

    def status(self) -> dict[str, Any]:
        """The node's status as ``GET /skydns/cluster`` shows it."""
        core = self.gate.core
        leader, role = core.leader, core.role
        condition = self.condition
        members = []
        replicas = self.replicas()
        for member in sorted(self.addresses):
            if member == core.id and condition.removed is not None:
                name = "removed"
            elif member == core.id:
                name = "candidate" if role in (Role.CANDIDATE, Role.PRE_CANDIDATE) \
                    else role.value
                if name == "follower" and member in core.config.learners:
                    name = "replica" if member in replicas else "learner"
            elif member == leader:
                name = "leader"
            elif member in core.config.learners:
                name = "replica" if member in replicas else "learner"
            else:
                name = "follower"
            entry: dict[str, Any] = {"id": member, "address": self.addresses[member],
                                     "role": name}  # fmt: skip
            if role is Role.LEADER and member != core.id and member in core.progress:
                # Only the leader hears from every member: not for an
                # election timeout means down or cut off.
                silent = core.ticks - core.progress[member].last_active_tick
                entry["reachable"] = silent <= core.election_tick
            members.append(entry)
        own = next((m["role"] for m in members if m["id"] == core.id), "joining")
        return {
            "id": core.id,
            "leader": leader,
            "term": core.term,
            "commit_index": core.log.committed,
            "applied_index": self.applied(),
            "last_index": core.log.last_index(),
            "role": own,
            "ready": self.is_ready(),
            "not_ready_because": self.why_not_ready(),
            "recovering": condition.recovering,
            "failed": condition.failed,
            "members": members,
        }

    def update_metrics(self) -> None:
        """Set the Raft gauges (role, term, commit and applied index)."""
        m = self.metrics
        if m is None:
            return
        core = self.gate.core
        role = core.role
        learner = role is Role.FOLLOWER and core.id in core.config.learners
        m.set_role("removed" if self.condition.removed is not None else
                   "leader" if role is Role.LEADER else
                   ("replica" if core.id in self.replicas() else "learner") if learner else
                   "follower" if role is Role.FOLLOWER else "candidate")  # fmt: skip
        m.raft_term.set(core.term)
        m.raft_commit.set(core.log.committed)
        m.raft_applied.set(self.applied())
