"""What the DNS server knows about one request on its way through the
twisted.names path, handed along explicitly from the direct path to the
reply, and the response both paths build."""

from __future__ import annotations

from typing import Any, Callable, Optional

from attrs import define
from twisted.names import dns

from skydns.dns.answercache import Query


@define
class Request:
    """A request the answer cache and the direct path did not answer."""

    #: The parsed question when the request is cacheable, else None.
    query: Optional[Query]
    #: When it arrived (the factory's timer), for the latency metric.
    started: float
    #: The cache generation then: an answer after a clear is not kept; -1
    #: for a request the direct path never saw (no latency is recorded).
    generation: int
    #: Whether the answer may be cached (the authority did not claim the name).
    cacheable: bool = False
    #: The question as the client spelled it, when that was not lower case.
    question: Optional[bytes] = None


#: Builds the response both paths send: (id, queries, RD, size limit, EDNS,
#: rcode, answers, authority, additional) -> the message.
BuildResponse = Callable[
    [int, list[dns.Query], Any, int, bool, int, list[Any], list[Any], list[Any]], dns.Message
]
