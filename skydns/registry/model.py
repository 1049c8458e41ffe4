"""What the registry holds and answers: instances with their leases, and the
typed outcome of applying a command."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from attrs import frozen

from skydns.names import Callback, Service

#: The most instances one (environment, name) pair may hold; a Register
#: beyond it is refused with `Outcome.TOO_MANY`.  A constant of the state
#: machine, not an option, so every replica refuses the same commands (the
#: API may refuse sooner: ``--max-instances-per-name``).
MAX_INSTANCES_PER_NAME = 10_000


class Outcome(enum.StrEnum):
    """How a command ended. Its value is what the Raft log's result record
    and the audit log say."""

    OK = "ok"
    #: Register of a UUID that is registered and alive.
    CONFLICT = "conflict"
    #: Register beyond `MAX_INSTANCES_PER_NAME`.
    TOO_MANY = "too_many"
    #: Unregister, renew or callback of no live instance.
    NOT_FOUND = "not_found"
    #: Register naming a lease that is gone or has run out.
    NO_LEASE = "no_lease"
    #: A log entry that is not a command (applied as a no-op).
    INVALID = "invalid"

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """The outcome named ``text``; `INVALID` for a name this code does
        not know (a result written by another version)."""
        try:
            return cls(text)
        except ValueError:
            return cls.INVALID


@frozen
class Instance:
    """A registered service with its lease."""

    service: Service
    expires: float  # absolute time; ignored when service.no_expire

    def remaining(self, now: float) -> float:
        """Seconds left on the lease (``service.ttl`` for NoExpire instances)."""
        if self.service.no_expire:
            return float(self.service.ttl)
        return max(0.0, self.expires - now)

    def alive(self, now: float) -> bool:
        """Whether the lease still runs at ``now`` (it ends at ``expires``)."""
        return self.service.no_expire or now < self.expires


def tally(instances: Iterable[Instance], now: float, attribute: str) -> dict[str, int]:
    """Live instances per value of a service field, sorted by value; an
    empty value (none given) is no key."""
    counts: dict[str, int] = {}
    for instance in instances:
        if instance.alive(now):
            value = getattr(instance.service, attribute)
            if value:
                counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


@frozen
class Removal:
    """An instance that left the registry, and the callbacks it had."""

    instance: Instance
    callbacks: tuple[Callback, ...]


@frozen
class Applied:
    """The result of applying one command: its `Outcome`, and the instances
    it removed (Unregister, Expire) with their callbacks, so the leader can
    notify."""

    status: Outcome
    removals: tuple[Removal, ...] = ()
