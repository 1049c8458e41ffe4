"""Leader election: campaigns, votes and PreVote (Raft §5.2, §5.4.1; thesis §9.6).

Functions over a `RaftCore`, kept apart so that ``core`` stays readable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skydns.raft.core.messages import RequestVote, RequestVoteResponse
from skydns.raft.core.ready import Role

if TYPE_CHECKING:
    from skydns.raft.core.raft import RaftCore


def campaign(core: RaftCore, prevote: bool, transfer: bool = False) -> None:
    """Start a (pre-)election.

    A PreVote round asks "would you vote for me at term + 1?" without
    changing anyone's term, so a node that was cut off cannot force the
    cluster through needless elections when it comes back.
    """
    if prevote:
        core._reset(core.term)
        core.role = Role.PRE_CANDIDATE
        term = core.term + 1
    else:
        core._reset(core.term + 1)
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


def handle_vote_request(core: RaftCore, m: RequestVote) -> None:
    """Grant at most one vote per term, only to an up-to-date log (§5.4.1)."""
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


def handle_vote_response(core: RaftCore, m: RequestVoteResponse) -> None:
    prevoting = core.role is Role.PRE_CANDIDATE
    if m.prevote != prevoting or m.src not in core.config.voters:
        return
    core.votes.setdefault(m.src, m.granted)
    outcome = _tally(core)
    if outcome == "won":
        _won(core, prevoting)
    elif outcome == "lost":
        core.become_follower(core.term, None)


def _tally(core: RaftCore) -> str:
    granted = sum(1 for v, g in core.votes.items() if g and v in core.config.voters)
    rejected = sum(1 for v, g in core.votes.items() if not g and v in core.config.voters)
    if granted >= core.quorum():
        return "won"
    if rejected >= core.quorum():
        return "lost"
    return "pending"


def _won(core: RaftCore, prevote: bool) -> None:
    if prevote:
        campaign(core, prevote=False)
    else:
        core.become_leader()
