"""``--join HOST:PORT``: a fresh node asks a running cluster to add it.

The node starts as no member at all (it never campaigns), then calls AMP
``ChangeMember`` (op ``add``) on the given member's Raft port until the
leader has committed the entry that adds it; the leader then sends it a
snapshot and the log, and promotes it to voter once it has caught up.  A
refused or lost change is asked again, never taken for success; and a node
that was told it joined but still finds itself in no configuration it holds
after `CONFIRM_WITHIN` seconds says so (in its log and ``/ready``) and asks
again.  A node that is already a member (a restart with the same ``--join``)
does not ask.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger

from skydns.raft.net.interface import MemberChangeError
from skydns.raft.net.protocol import RaftProtocol
from skydns.raft.node.condition import Condition
from skydns.raft.node.members import Members

log = Logger()

#: Seconds a node told it joined may wait for the configuration that has it.
CONFIRM_WITHIN = 5.0
#: Seconds between two attempts.
RETRY = 1.0


#: Asks a member to add this node at an address; fires with the members' addresses.
Ask = Callable[[str, str], "Deferred[dict[str, str | None]]"]


async def join(
    clock: IReactorTime, ask: Ask, members: Members, condition: Condition,
    address: str, retry: float = RETRY, confirm_within: float = CONFIRM_WITHIN,
) -> None:  # fmt: skip
    """Ask until this node is in the configuration it holds."""
    while not members.is_member():
        if condition.refusal() is not None:
            return
        condition.joining = "joining the cluster: not yet in its configuration"
        try:
            added = await ask(members.id, address)
        except MemberChangeError as e:
            log.warn("joining the cluster: {error}", error=str(e))
        except Exception as e:
            log.warn("joining the cluster failed, retrying: {error}", error=str(e))
        else:
            members.learn(added)
            log.info("joined the cluster as {id} at {address}", id=members.id, address=address)
            waited = 0.0
            while not members.is_member() and waited < confirm_within:
                await deferLater(clock, 0.1, lambda: None)
                waited += 0.1
            if members.is_member():
                break
            log.warn(
                "told it joined, but after {seconds:.0f} s this node is still in no "
                "configuration it holds: asking again", seconds=confirm_within,
            )  # fmt: skip
            continue
        await deferLater(clock, retry, lambda: None)
    condition.joining = None


def ask_over_amp(endpoint: IStreamClientEndpoint, op: str = "add") -> Ask:
    """Ask the member at ``endpoint`` with AMP ``ChangeMember`` (``op`` ``add``,
    or ``replica`` for a read replica)."""

    async def ask(node_id: str, address: str) -> dict[str, str | None]:
        protocol = await connectProtocol(endpoint, RaftProtocol(None))
        try:
            return await protocol.change_member(op, node_id, address)
        finally:
            if protocol.transport is not None:
                protocol.transport.loseConnection()

    return lambda node_id, address: Deferred.fromCoroutine(ask(node_id, address))


class JoinService(Service):
    """Runs `join` once the node has started."""

    def __init__(
        self, clock: IReactorTime, ask: Ask, members: Members, condition: Condition,
        address: str,
    ) -> None:  # fmt: skip
        self.clock = clock
        self.ask = ask
        self.members = members
        self.condition = condition
        self.address = address
        self.joining: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self.joining = Deferred.fromCoroutine(
            join(self.clock, self.ask, self.members, self.condition, self.address)
        )
        self.joining.addErrback(lambda f: log.failure("joining the cluster", f))

    def stopService(self) -> None:
        super().stopService()
        if self.joining is not None and not self.joining.called:
            self.joining.cancel()
