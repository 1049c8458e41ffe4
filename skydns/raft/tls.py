"""Mutual TLS between Raft peers (``--raft-tls-ca/-cert/-key``).

Every node holds a certificate signed by the cluster's CA.  Listening, a
node requires a client certificate signed by that CA; connecting, it
presents its own and checks that the peer's is signed by the CA and names
the address it dialled (the host of that peer in ``--peers``, in the
certificate's subjectAltName).  docs/security.md shows the openssl commands.

TLS wraps the TCP endpoints (`wrap_tls`); the cluster key, when also set,
is proven inside the TLS session.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IProtocolFactory,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate
from twisted.internet.ssl import optionsForClientTLS as client_options
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer


@attrs.frozen
class RaftTLS:
    """The cluster CA and this node's certificate with its key."""

    ca: Certificate
    identity: PrivateCertificate

    def server_options(self) -> CertificateOptions:
        """Serve with our certificate; require one signed by the CA."""
        options: CertificateOptions = self.identity.options(self.ca)
        return options

    def client_options(self, host: str) -> IOpenSSLClientConnectionCreator:
        """Present our certificate; want the CA's signature on one for ``host``."""
        return client_options(host, trustRoot=self.ca, clientCertificate=self.identity)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def load_tls(ca_path: str, cert_path: str, key_path: str) -> RaftTLS:
    """Read the PEM files; `ValueError` naming the file that is wrong."""
    ca_pem = _read(ca_path, "CA certificate")
    cert_pem = _read(cert_path, "certificate")
    key_pem = _read(key_path, "private key")
    try:
        ca = Certificate.loadPEM(ca_pem)
    except Exception as e:
        raise ValueError(f"{ca_path} is not a PEM certificate: {e}") from None
    try:
        identity = PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    except Exception as e:
        raise ValueError(
            f"{cert_path} and {key_path} are not a PEM certificate and its key: {e}"
        ) from None
    return RaftTLS(ca, identity)


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """Listens on ``endpoint``, speaking TLS with ``options``."""

    def __init__(self, endpoint: IStreamServerEndpoint, options: CertificateOptions) -> None:
        self.endpoint = endpoint
        self.options = options

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        factory = TLSMemoryBIOFactory(self.options, False, protocolFactory)
        factory.noisy = False
        listening: Deferred[IListeningPort] = self.endpoint.listen(factory)
        return listening


def wrap_tls(
    tls: RaftTLS | None,
    server: IStreamServerEndpoint,
    clients: dict[str, IStreamClientEndpoint],
    hosts: dict[str, str],
) -> tuple[IStreamServerEndpoint, dict[str, IStreamClientEndpoint]]:
    """``server`` and ``clients`` over mutual TLS (unchanged when ``tls`` is
    None); ``hosts[peer]`` is the name that peer's certificate must carry."""
    if tls is None:
        return server, clients
    return (
        TLSServerEndpoint(server, tls.server_options()),
        {
            peer: wrapClientTLS(tls.client_options(hosts[peer]), endpoint)
            for peer, endpoint in clients.items()
        },
    )


__all__ = ["RaftTLS", "TLSServerEndpoint", "load_tls", "wrap_tls"]
