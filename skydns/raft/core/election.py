"""Leader election: campaigns, votes and PreVote (Raft §5.2, §5.4.1; thesis §9.6).

Functions over the core's state (`CoreState`), kept apart so that ``core`` stays readable.
"""

from __future__ import annotations

from skydns.raft.core import replication
from skydns.raft.core.messages import RequestVote, RequestVoteResponse, TimeoutNow
from skydns.raft.core.ready import NotLeader, Role
from skydns.raft.core.state import CoreState


def campaign(core: CoreState, prevote: bool, transfer: bool = False) -> None:
    """Start a (pre-)election.

    A PreVote round asks "would you vote for me at term + 1?" without
    changing anyone's term, so a node that was cut off cannot force the
    cluster through needless elections when it comes back.
    """
    if prevote:
        core.reset(core.term)
        core.role = Role.PRE_CANDIDATE
        term = core.term + 1
    else:
        core.reset(core.term + 1)
        core.role = Role.CANDIDATE
        core.vote = core.id
        term = core.term
    core.votes[core.id] = True
    if _tally(core) == "won":
        _won(core, prevote)
        return
    last_index = core.log.last_index()
    last_term = core.log.last_term()
    for voter in sorted(core.config.voters):
        if voter != core.id:
            core.send(
                RequestVote(
                    core.id, voter, term, last_index, last_term, prevote=prevote, transfer=transfer
                )
            )


def handle_vote_request(core: CoreState, m: RequestVote) -> None:
    """Grant at most one vote per term, only to an up-to-date log (§5.4.1)."""
    if core.recovering or core.id not in core.config.voters:
        # A log that may lack entries it acknowledged (SPEC §11) must not
        # elect anyone; nor may a server that is no voter in the
        # configuration it holds: a learner, or a member removed, emptied and
        # joining again under its old id, whose empty log any candidate
        # passes while a stale member may still count it as a voter.
        core.send(RequestVoteResponse(core.id, m.src, core.term, False, prevote=m.prevote))
        return
    can_vote = (
        core.vote == m.src
        or (core.vote is None and core.leader is None)
        or (m.prevote and m.term > core.term)
    )
    if can_vote and core.log.is_up_to_date(m.last_log_index, m.last_log_term):
        core.send(RequestVoteResponse(core.id, m.src, m.term, True, prevote=m.prevote))
        if not m.prevote:
            core.election_elapsed = 0
            core.vote = m.src
    else:
        core.send(RequestVoteResponse(core.id, m.src, core.term, False, prevote=m.prevote))


def handle_vote_response(core: CoreState, m: RequestVoteResponse) -> None:
    prevoting = core.role is Role.PRE_CANDIDATE
    if m.prevote != prevoting or m.src not in core.config.voters:
        return
    core.votes.setdefault(m.src, m.granted)
    outcome = _tally(core)
    if outcome == "won":
        _won(core, prevoting)
    elif outcome == "lost":
        core.become_follower(core.term, None)


def _tally(core: CoreState) -> str:
    granted = sum(1 for v, g in core.votes.items() if g and v in core.config.voters)
    rejected = sum(1 for v, g in core.votes.items() if not g and v in core.config.voters)
    if granted >= core.quorum():
        return "won"
    if rejected >= core.quorum():
        return "lost"
    return "pending"


def _won(core: CoreState, prevote: bool) -> None:
    if prevote:
        campaign(core, prevote=False)
    else:
        core.become_leader()


def tick(core: CoreState) -> None:
    """One unit of logical time: followers count towards an election,
    leaders towards a heartbeat and a CheckQuorum."""
    core.ticks += 1
    if core.role is Role.LEADER:
        _tick_leader(core)
        return
    core.election_elapsed += 1
    if core.promotable() and core.election_elapsed >= core.randomized_election_timeout:
        core.election_elapsed = 0
        campaign(core, prevote=core.pre_vote)


def _tick_leader(core: CoreState) -> None:
    core.heartbeat_elapsed += 1
    core.election_elapsed += 1
    if core.check_quorum and not _quorum_active(core):
        # CheckQuorum (thesis §6.2): a leader that has not heard from a
        # quorum for an election timeout steps down.
        core.become_follower(core.term, None)
        return
    if core.election_elapsed >= core.election_tick:
        core.election_elapsed = 0
        core.lead_transferee = None  # the transfer took too long: abort
    if core.heartbeat_elapsed >= core.heartbeat_tick:
        core.heartbeat_elapsed = 0
        core.broadcast_heartbeat(core.read_only.last_context())


def _quorum_active(core: CoreState) -> bool:
    active = 0
    for voter in core.config.voters:
        pr = core.progress.get(voter)
        if voter == core.id or (
            pr is not None and core.ticks - pr.last_active_tick <= core.election_tick
        ):
            active += 1
    return active >= core.quorum()


def peer_unreachable(core: CoreState, peer: str) -> None:
    """The connection to ``peer`` broke.  If it is our leader, its process
    has probably died (a live leader's connections rarely break), so its
    lease is not waited out: this server will grant votes at once and
    campaign after a short random delay (PreVote still asks the others, who
    refuse while they hear from a live leader)."""
    if core.role is Role.LEADER or peer != core.leader:
        return
    core.election_elapsed = max(core.election_elapsed, core.election_tick)
    spread = max(1, core.election_tick // 5)
    core.randomized_election_timeout = core.election_elapsed + 1 + core.rng.randrange(spread)


def transfer_leadership(core: CoreState, to: str) -> None:
    """Hand leadership to ``to`` once its log is caught up (thesis §3.10)."""
    if core.role is not Role.LEADER:
        raise NotLeader(core.leader)
    if to == core.id or to not in core.config.voters or core.lead_transferee == to:
        return
    core.lead_transferee = to
    core.election_elapsed = 0  # abort if not done within an election timeout
    if core.progress[to].match == core.log.last_index():
        core.send(TimeoutNow(core.id, to, core.term))
    else:
        replication.send_append(core, to)
