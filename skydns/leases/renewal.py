"""A lease renewal and its answer, as a node passes them to the leader.

A renewal names a lease (``PUT /skydns/leases/ID``) or an instance living by
its own TTL (SkyDNS 1's ``PATCH {"TTL": n}``).  The leader answers each with
the TTL it renewed for, `NOT_FOUND`, or `NEEDS_LOG` when the renewal
changes more than a deadline (a new TTL: that is a log entry).  Both travel
as compact JSON inside the Raft transport's opaque leader requests.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from attrs import frozen

from skydns import jsoninput
from skydns.bodies import ValidationError, check_lease_id, check_uuid
from skydns.names import MAX_TTL

#: What a renewal names.
LEASE = "lease"
INSTANCE = "instance"

#: Answers other than a TTL.
NOT_FOUND: Optional[int] = None
NEEDS_LOG = -1

#: Most renewals in one request: each is under 1,100 bytes encoded, most
#: under 100, and a request stays well under the transport's limits.
MAX_RENEWALS = 500


@frozen
class Renewal:
    """Renew ``key`` (a lease ID or a UUID, as ``kind`` says); ``ttl`` is
    the TTL an instance's PATCH asked for (0 for a lease)."""

    kind: str
    key: str
    ttl: int = 0


def encode_renewals(renewals: list[Renewal]) -> bytes:
    return json.dumps([[r.kind, r.key, r.ttl] for r in renewals],
                      separators=(",", ":")).encode("ascii")  # fmt: skip


def decode_renewals(data: bytes) -> list[Renewal]:
    """The renewals `encode_renewals` wrote; ValueError for anything else."""
    items: Any = jsoninput.loads(data)
    if type(items) is not list or len(items) > MAX_RENEWALS:
        raise ValueError(f"renewals: not a list of at most {MAX_RENEWALS}")
    renewals = []
    for item in items:
        if type(item) is not list or len(item) != 3:
            raise ValueError("renewals: not [kind, key, ttl] triples")
        kind, key, ttl = item
        try:
            if kind == LEASE:
                check_lease_id(key)
            elif kind == INSTANCE:
                check_uuid(key)
            else:
                raise ValueError(f"renewals: unknown kind {kind!r}")
        except ValidationError as e:
            raise ValueError(str(e)) from e
        if type(ttl) is not int or not 0 <= ttl <= MAX_TTL:
            raise ValueError(f"renewals: bad TTL {ttl!r}")
        renewals.append(Renewal(kind, key, ttl))
    return renewals


def encode_answers(answers: list[Optional[int]]) -> bytes:
    return json.dumps(answers, separators=(",", ":")).encode("ascii")


def decode_answers(data: bytes, count: int) -> list[Optional[int]]:
    """One answer per renewal asked; ValueError if that is not what came."""
    answers: Any = jsoninput.loads(data)
    if type(answers) is not list or len(answers) != count:
        raise ValueError(f"expected {count} answers")
    for answer in answers:
        if answer is not None and (type(answer) is not int or answer < NEEDS_LOG):
            raise ValueError(f"not an answer: {answer!r}")
    return answers
