"""What the DNS server knows about one request on its way through the
twisted.names path, handed along explicitly from the direct path to the
reply; the response both paths build; and the rcode of a failed lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

from attrs import define
from twisted.internet import defer
from twisted.names import dns, error

from skydns.dns.resolution import NameNotFound, QueryRefused, RegistryUnavailable
from skydns.dns.wirequery import Query


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
    #: The query's size in bytes (0: unknown), for the large-answer budget.
    size: int = 0


#: Builds the response both paths send: (id, queries, RD, size limit, EDNS,
#: rcode, answers, authority, additional) -> the message.
BuildResponse = Callable[
    [int, list[dns.Query], Any, int, bool, int, list[Any], list[Any], list[Any]], dns.Message
]


#: Rcodes for the errors a resolver chain fails with, most specific first.
_ERROR_RCODES: Sequence[tuple[type[BaseException], int]] = (
    (NameNotFound, dns.ENAME),
    (QueryRefused, dns.EREFUSED),
    (RegistryUnavailable, dns.ESERVER),
    (error.DNSQueryRefusedError, dns.EREFUSED),
    (error.DNSFormatError, dns.EFORMAT),
    (error.DNSNotImplementedError, dns.ENOTIMP),
    (error.DNSServerError, dns.ESERVER),
    (error.DNSUnknownError, dns.ESERVER),
    (error.DNSNameError, dns.ENAME),
    (error.AuthoritativeDomainError, dns.ENAME),
    (defer.TimeoutError, dns.ESERVER),
    (error.DomainError, dns.ENAME),
)


def rcode_for(reason: BaseException) -> Optional[int]:
    """The response code for a failed lookup; None for an unexpected error."""
    if type(reason) is error.DomainError:
        # No resolver in the chain took the name: we are not a resolver for it.
        return dns.EREFUSED
    for kind, rcode in _ERROR_RCODES:
        if isinstance(reason, kind):
            return rcode
    return None
