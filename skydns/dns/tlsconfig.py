"""DNS over TLS settings (SPEC.md §9, RFC 7858): the server side's
certificate and key (``--dns-tls-cert``, ``--dns-tls-key``) and the CAs TLS
upstreams are checked against (``--forward-tls-ca``), read at start so a
missing or bad file stops it with a clear error."""

from __future__ import annotations

from typing import Any, Optional

from skydns.raft.net.tls import read_pem

#: Where a PEM certificate starts.
_BEGIN = b"-----BEGIN CERTIFICATE-----"


def _certificates(data: bytes, path: str) -> list[Any]:
    from twisted.internet import ssl

    pems = [_BEGIN + part for part in data.split(_BEGIN)[1:]]
    if not pems:
        raise ValueError(f"{path} holds no PEM certificate")
    try:
        return [ssl.Certificate.loadPEM(pem) for pem in pems]
    except Exception as e:
        raise ValueError(f"{path}: not a PEM certificate ({e})") from None


def server_context(cert_path: str, key_path: str) -> Any:
    """The TLS settings DNS over TLS is served with: the certificate (and
    any chain after it in the file) and its key, TLS 1.2 at least, ALPN
    "dot" (RFC 7858 §3.1)."""
    from OpenSSL import crypto
    from twisted.internet import ssl

    chain = _certificates(read_pem(cert_path, "certificate"), cert_path)
    key_data = read_pem(key_path, "key")
    try:
        key = ssl.KeyPair.load(key_data, crypto.FILETYPE_PEM)
    except Exception as e:
        raise ValueError(f"{key_path}: not a PEM private key ({e})") from None
    try:
        return ssl.CertificateOptions(
            privateKey=key.original, certificate=chain[0].original,
            extraCertChain=[c.original for c in chain[1:]],
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
            # RFC 7858 clients (kdig, unbound, Android) offer ALPN "dot"; a
            # server with no ALPN of its own fails their handshake.
            acceptableProtocols=[b"dot"],
        )  # fmt: skip
    except Exception as e:
        raise ValueError(f"{cert_path} and {key_path} do not go together ({e})") from None


def trust_root(path: Optional[str]) -> Any:
    """The CAs that TLS upstreams' certificates must chain to: those in
    ``path``, or None for the system's."""
    if path is None:
        return None
    from twisted.internet import ssl

    return ssl.trustRootFromCertificates(_certificates(read_pem(path, "CA file"), path))
