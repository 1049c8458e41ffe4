"""A treq-based asynchronous client for the SkyDNS HTTP API, a lease keeper
for one instance and a `Session` that keeps many under one lease.

    client = SkyDNSClient("http://127.0.0.1:8080", secret="s3cret")
    await client.register("web-1", ServiceSpec("web", "production", "east",
                                               "1.0.0", "10.0.0.5", 8000, ttl=30))

See docs/client.md.
"""

from skydns.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    NotFound,
    SkyDNSError,
    Unauthorized,
    Unavailable,
    error_for_status,
)
from skydns.client.http import SkyDNSClient
from skydns.client.lease import LeaseKeeper
from skydns.client.models import (
    CallbackSpec,
    ClusterStatus,
    LeaseInfo,
    Member,
    ServiceInfo,
    ServiceSpec,
)
from skydns.client.session import Session
from skydns.client.watch import Watch, WatchEvent

__all__ = [
    "BadRequest",
    "CallbackSpec",
    "ClusterStatus",
    "ConnectionFailed",
    "Conflict",
    "LeaseInfo",
    "LeaseKeeper",
    "Member",
    "NotFound",
    "ServiceInfo",
    "ServiceSpec",
    "Session",
    "SkyDNSClient",
    "SkyDNSError",
    "Unauthorized",
    "Unavailable",
    "Watch",
    "WatchEvent",
    "error_for_status",
]
