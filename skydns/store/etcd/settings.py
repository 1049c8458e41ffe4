"""``--store``, ``--etcd-*``: which store keeps the registry, checked at
start-up into `EtcdSettings` (None for SkyDNS's own Raft, the default),
and the HTTP client that reaches etcd, over TLS with a client certificate
where the endpoints are ``https://``."""

from __future__ import annotations

from typing import Any, Optional

import treq
from attrs import frozen
from twisted.python import usage
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from skydns.config import checked, parse_hostport, positive_seconds

#: ``--store`` schemes, and the scheme each endpoint is called with.
_SCHEMES = {"etcd": "http", "http": "http", "etcds": "https", "https": "https"}


@frozen
class EtcdSettings:
    endpoints: tuple[str, ...]  # http://HOST:PORT or https://HOST:PORT
    prefix: bytes
    max_staleness: float
    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None


def parse_store(value: str) -> tuple[str, tuple[str, ...]]:
    """``etcd://HOST:PORT[,HOST:PORT...]`` (``https://`` or ``etcds://``
    for TLS): the scheme and the endpoint URLs.  ValueError otherwise."""
    scheme, sep, rest = value.strip().partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError("must be raft, or etcd://HOST:PORT[,HOST:PORT...] (https:// for TLS)")
    scheme = _SCHEMES[scheme.lower()]
    endpoints = []
    for part in rest.rstrip("/").split(","):
        where = parse_hostport(part, 2379)
        host = f"[{where.host}]" if ":" in where.host else where.host
        endpoints.append(f"{scheme}://{host}:{where.port}")
    return scheme, tuple(endpoints)


def _prefix(value: str) -> bytes:
    if not value.startswith("/") or "\0" in value:
        raise ValueError("must start with / (e.g. /skydns/)")
    return (value if value.endswith("/") else value + "/").encode("utf-8")


def store_settings(options: Any) -> Optional[EtcdSettings]:
    """The ``--store`` options checked: None for ``raft``."""
    value = options["store"]
    tls = [options["etcd-ca"], options["etcd-cert"], options["etcd-key"]]
    if value.strip().lower() == "raft":
        if any(tls):
            raise usage.UsageError("--etcd-ca/-cert/-key need --store https://HOST:PORT")
        return None
    scheme, endpoints = checked("store", parse_store, value)
    if options["dns-workers"]:
        raise usage.UsageError("--dns-workers is not available with --store etcd yet")
    if scheme == "http" and any(tls):
        raise usage.UsageError("--etcd-ca/-cert/-key need --store https://HOST:PORT (TLS)")
    if (tls[1] is None) != (tls[2] is None):
        raise usage.UsageError("--etcd-cert and --etcd-key go together: give both")
    for name, path in zip(("etcd-ca", "etcd-cert", "etcd-key"), tls, strict=True):
        if path is not None:
            checked(name, _readable, path)
    return EtcdSettings(
        endpoints, checked("etcd-prefix", _prefix, options["etcd-prefix"]),
        checked("etcd-max-staleness", positive_seconds, options["etcd-max-staleness"]),
        *tls,
    )  # fmt: skip


def _readable(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    return path


class _HTTP:
    """What `skydns.store.etcd.client.EtcdClient` calls: ``post``,
    ``content`` and ``collect``, over one `treq.client.HTTPClient`."""

    def __init__(self, client: Any) -> None:
        self.post = client.post
        self.content = treq.content
        self.collect = treq.collect


@implementer(IPolicyForHTTPS)
class _ClientCertificate:
    """TLS to every etcd endpoint: verified against ``ca`` (or the system's
    roots), showing ``certificate`` if there is one."""

    def __init__(self, ca: Any, certificate: Any) -> None:
        self.ca = ca
        self.certificate = certificate

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 - Twisted's
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self.ca,
                                   clientCertificate=self.certificate)  # fmt: skip


def etcd_http(settings: EtcdSettings, reactor: Any) -> Any:
    """The HTTP client for ``settings``' endpoints, with its own pool of
    persistent connections (that logs nothing per connection: a node cut
    off from etcd tries several times a second); for HTTPS, with the CA and
    client certificate."""
    from twisted.internet import ssl
    from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory

    class QuietFactory(_HTTP11ClientFactory):
        noisy = False

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 16
    pool._factory = QuietFactory  # type: ignore[misc]
    if not settings.endpoints[0].startswith("https:"):
        return _HTTP(treq.client.HTTPClient(Agent(reactor, pool=pool)))
    ca = None
    if settings.ca is not None:
        with open(settings.ca, "rb") as f:
            ca = ssl.Certificate.loadPEM(f.read())
    certificate = None
    if settings.cert is not None and settings.key is not None:
        with open(settings.cert, "rb") as f, open(settings.key, "rb") as k:
            certificate = ssl.PrivateCertificate.loadPEM(f.read() + b"\n" + k.read())
    policy = _ClientCertificate(ca or ssl.platformTrust(), certificate)
    return _HTTP(treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool)))
