"""The option checks that read secrets and certificates: the cluster key
(``--cluster-key-file`` or ``$SKYDNS_CLUSTER_KEY``), Raft TLS and DNS over
TLS.  Each returns what the node is built with, or stops the start with a
usage error naming the option."""

from __future__ import annotations

import os
from typing import Any

from twisted.python import usage

from skydns import config
from skydns.config import checked as _checked
from skydns.dns.tlsconfig import server_context


def raft_tls(options: Any) -> Any:
    from skydns.raft.net.tls import load_tls

    paths = [options["raft-tls-ca"], options["raft-tls-cert"], options["raft-tls-key"]]
    if all(path is None for path in paths):
        return None
    if any(path is None for path in paths):
        raise usage.UsageError(
            "--raft-tls-ca, --raft-tls-cert and --raft-tls-key go together: give all three"
        )
    if options["raft"].split(":", 1)[0].lower() not in ("tcp", "tcp6"):
        raise usage.UsageError("--raft must be a tcp: endpoint with --raft-tls-* (TLS is added)")
    return _checked("raft-tls-cert", lambda _: load_tls(*paths), "")


def cluster_key(path: str | None) -> bytes | None:
    from skydns.raft.net.keys import ENV_KEY, check_key, read_key_file

    if path is not None:
        return _checked("cluster-key-file", read_key_file, path)  # type: ignore[no-any-return]
    from_env = os.environ.get(ENV_KEY)
    if not from_env:
        return None
    try:
        return check_key(from_env.encode("utf-8"))
    except ValueError as e:
        raise usage.UsageError(f"${ENV_KEY}: {e}") from None




def dns_tls(options: Any) -> Any:
    """The DNS-over-TLS address and TLS settings, or None without --dns-tls."""
    given = [options["dns-tls"], options["dns-tls-cert"], options["dns-tls-key"]]
    if given == [None, None, None]:
        return None
    if None in given:
        raise usage.UsageError("--dns-tls, --dns-tls-cert and --dns-tls-key go together")
    options["dns-tls"] = _checked("dns-tls", lambda v: config.parse_ip_hostport(v, 853),
                                  options["dns-tls"])  # fmt: skip
    return _checked("dns-tls-cert", lambda _: server_context(*given[1:]), "")


def dnssec_key(path: str | None, domain: str) -> Any:
    """The `skydns.dnssec.keys.ZoneKey` of ``--dnssec-key``, or None."""
    if path is None:
        return None
    from skydns.dnssec.keys import load

    return _checked("dnssec-key", lambda p: load(p, domain), path)
