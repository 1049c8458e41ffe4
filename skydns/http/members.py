"""``POST /skydns/cluster/members`` and ``DELETE /skydns/cluster/members/{id}``.

Kept apart from `skydns.http.api`, which only routes here.  A member is
added as a learner and promoted to voter by the leader once it has caught
up (`skydns.raft.node.members`), or with ``"voter": false`` as a read
replica that stays a learner; the answer comes once the change is
committed and applied on the answering node.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from skydns import jsoninput
from skydns.http.responses import APIError
from skydns.raft.net.interface import MemberChangeError, NotLeaderHere, PeerUnavailable

#: HTTP status for each kind of `MemberChangeError`.
STATUS = {"exists": 409, "not_found": 404, "invalid": 400, "refused": 409}


def MemberAPIError(code: int, message: str, field: Optional[str] = None) -> APIError:  # noqa: N802
    """A refused membership request: HTTP status, message and (for a 400)
    the field at fault, as every other 400 of the API names one."""
    return APIError(code, message) if field is None else APIError(code, message, field=field)


def parse_add(body: bytes) -> tuple[str, str, bool]:
    """``{"id", "address", "voter"}`` from a POST body (``voter`` true when
    left out); `MemberAPIError` 400 if malformed."""
    try:
        data: Any = jsoninput.loads(body or b"null")
    except ValueError as e:
        raise MemberAPIError(400, f"body: not JSON: {e}", "body") from e
    if not isinstance(data, dict):
        raise MemberAPIError(400, "body: expected an object with id and address", "body")
    member_id, address = data.get("id"), data.get("address")
    if not isinstance(member_id, str) or not member_id:
        raise MemberAPIError(400, "id: a node id is required", "id")
    if not isinstance(address, str) or not address:
        raise MemberAPIError(400, "address: the member's Raft HOST:PORT is required", "address")
    voter = data.get("voter", True)
    if voter is None:
        voter = True
    if not isinstance(voter, bool):
        raise MemberAPIError(400, "voter: true or false", "voter")
    return member_id, address, voter


async def change_member(
    cluster: Any, clock: Any, timeout: float, op: str, member_id: str, address: Optional[str]
) -> None:
    """Run the change on ``cluster``; an `APIError` with the HTTP status if refused."""
    change: Optional[Callable[..., Deferred[None]]] = getattr(cluster, "change_member", None)
    if change is None:
        raise MemberAPIError(501, "this node does not support membership changes")
    d = change(op, member_id, address)
    d.addTimeout(timeout, cast(IReactorTime, clock))
    try:
        await d
    except MemberChangeError as e:
        raise MemberAPIError(STATUS.get(e.kind, 409), e.reason) from e
    except (NotLeaderHere, PeerUnavailable, TimeoutError) as e:
        raise MemberAPIError(503, f"no leader can take the change now: {e}") from e
