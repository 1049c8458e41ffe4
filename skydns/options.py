"""The options of ``twistd skydns``: every flag, its default and its check,
so that a bad value is one clean line at start-up (SPEC.md §4)."""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from twisted.python import usage

from skydns import config
from skydns.config import (
    check_endpoint,
    instances_limit,
    local_endpoint,
    negative_ttl,
    non_negative_int,
    positive_seconds,
    udp_size,
)
from skydns.config import (
    checked as _checked,
)
from skydns.configfile import config_path, read_settings
from skydns.credentials import cluster_key, dns_tls, dnssec_key, raft_tls
from skydns.dns.acl import DEFAULT_FORWARD_ALLOW, parse_networks
from skydns.dns.reverse import parse_reverse_zone
from skydns.dns.routing import parse_forward_zone
from skydns.dns.tlsconfig import trust_root
from skydns.dns.upstreams import RESOLV_CONF, configured_upstreams
from skydns.logging import parse_log_format, parse_log_level
from skydns.patterns import ORDERS
from skydns.store.etcd.settings import store_settings

DEFAULT_DOMAIN = "skydns.local"
DEFAULT_DNS = "127.0.0.1:8053"
DEFAULT_HTTP = "tcp:8080:interface=127.0.0.1"
DEFAULT_RAFT = "tcp:7070:interface=127.0.0.1"
DEFAULT_NODE_ID = "node1"


TICK_MS = 10


class Options(usage.Options):
    """``twistd skydns`` options (SPEC.md §4)."""

    synopsis = "[options]"
    longdesc = (
        "SkyDNS: services register over HTTP, clients discover them over DNS, and a "
        "Raft cluster replicates the registry. With no options: a one-node cluster on "
        "loopback (DNS 127.0.0.1:8053, HTTP 127.0.0.1:8080, Raft 127.0.0.1:7070) keeping "
        "its data in ./skydns-data and forwarding other names to /etc/resolv.conf's "
        "nameservers."
    )

    optParameters = [
        ["config", None, None,
         "A TOML file of settings, keys named like these options (dns = \"127.0.0.1:53\"); "
         "options given here win over it."],
        ["domain", None, DEFAULT_DOMAIN, "The DNS domain SkyDNS is authoritative for."],
        ["dns", None, DEFAULT_DNS, "HOST:PORT to answer DNS on, UDP and TCP ([::1]:53 for IPv6)."],
        ["http", None, DEFAULT_HTTP, "Twisted endpoint for the HTTP API (ssl:... for TLS)."],
        ["raft", None, DEFAULT_RAFT, "Twisted endpoint for Raft traffic between nodes."],
        ["data-dir", None, "./skydns-data", "Directory for the Raft log and snapshots."],
        ["node-id", None, DEFAULT_NODE_ID, "This node's name in the cluster (one DNS label)."],
        [
            "peers",
            None,
            None,
            "Every member of the initial cluster, this node included: ID=HOST:PORT,... "
            "(the Raft addresses). Start each node with the same list.",
        ],
        ["join", None, None, "HOST:PORT of any member's Raft port: join that running cluster."],
        [
            "nameserver",
            None,
            None,
            "Upstream nameservers IP:PORT,... for names outside the domain "
            "(default: the nameserver lines of /etc/resolv.conf).",
        ],
        ["secret", None, None, "Require this secret in the Authorization header of /skydns/."],
        ["log-format", None, "text", "Log lines as readable text or as JSON objects: text|json."],
        ["log-level", None, "info", "Least severe log level written: debug|info|warn|error."],
        [
            "log-rotate-size",
            None,
            "10000000",
            "With twistd's --logfile (or as a daemon): rotate the log at this many bytes.",
        ],
        ["log-keep", None, "10", "Rotated log files kept; older ones are deleted."],
        [
            "access-log",
            None,
            None,
            "Write one combined-format line per HTTP request to this file (default: none).",
        ],
        ["cache-size", None, "10000", "Forwarded answers kept in the cache (0 disables it)."],
        ["dns-cache-entries", None, "0",
         "Answers kept per generation of the DNS answer cache; 0 (the default) "
         "follows the registry: 10000 plus twice the number of instances."],
        ["dns-cache-memory", None, "256",
         "MiB the DNS answer cache may take at most (estimated), whatever its entries."],
        [
            "forward-allow",
            None,
            ",".join(DEFAULT_FORWARD_ALLOW),
            "Client networks CIDR,... that may use forwarding; others get REFUSED for "
            "names outside the domain.",
        ],
        ["dns-tls", None, None,
         "HOST:PORT to serve DNS over TLS on (RFC 7858; port 853 when left out), with "
         "--dns-tls-cert and --dns-tls-key."],
        ["dns-tls-cert", None, None, "The certificate (PEM, chain after it) DNS over TLS shows."],
        ["dns-tls-key", None, None, "The private key (PEM) of --dns-tls-cert."],
        ["forward-tls-ca", None, None,
         "CA certificates (PEM) that tls:// upstreams must chain to (default: the system's)."],
        ["forward-timeout", None, "2",
         "Seconds to wait for one upstream's answer before asking the next."],
        ["forward-attempts", None, "1",
         "Rounds through the upstreams (each asked once a round) before SERVFAIL."],
        ["dnssec-key", None, None,
         "Sign answers with this key for clients that ask (DO): BIND's K<domain>.+<alg>+<tag> "
         "files (.private and .key), as `skydns dnssec keygen` makes them; the same on every "
         "node."],
        ["reverse-zone", None, "",
         "Reverse zones ZONE,... (such as 1.0.10.in-addr.arpa) SkyDNS is the authority for: "
         "PTR of registered addresses, NXDOMAIN for the rest, signed with --dnssec-key."],
        ["serve-stale", None, "86400",
         "Seconds an expired forwarded answer may still be served (with TTL 30) when no "
         "upstream answers (RFC 8767); 0 turns it off."],
        ["names", None, "seed",
         "Label order of DNS names and ?query= patterns: seed (<host>.<version>.<region>...) "
         "or skydns1 (SkyDNS 1's <host>.<region>.<version>...)."],
        ["negative-ttl", None, "5",
         "Seconds NXDOMAIN and NODATA answers may be cached (the SOA's MINIMUM and TTL), "
         "0 to 10800."],
        ["max-udp-size", None, "1232",
         "Largest UDP answer in bytes (512-4096); a bigger one is truncated (TC)."],
        ["tcp-idle-timeout", None, "10", "Seconds a DNS-over-TCP client has for each message."],
        ["dns-workers", None, "0",
         "Worker processes that answer DNS beside the node, on the same address (SO_REUSEPORT), "
         "each from a copy of the registry kept current by the node: use every core."],
        ["max-tcp-connections", None, "1024",
         "Open DNS-over-TCP connections at most (half of them per client)."],
        ["max-http-connections", None, "1024",
         "Open HTTP API connections at most (half of them per client)."],
        [
            "rrl-rate",
            None,
            "0",
            "UDP responses a second per client network (IPv4 /24, IPv6 /56) before "
            "responses are dropped or slipped; 0 (the default) turns rate limiting off.",
        ],
        [
            "rrl-large-rate",
            None,
            "100",
            "UDP answers over 3x their query's size a second per client network; over "
            "it such an answer is sent empty with TC set (the client asks again over "
            "TCP), so forged queries gain no amplification. 0 turns it off.",
        ],
        [
            "rrl-slip",
            None,
            "2",
            "With --rrl-rate: every this many responses over the limit, send one empty "
            "with TC set, so real clients retry over TCP; 0 drops them all.",
        ],
        [
            "snapshot-entries",
            None,
            "10000",
            "Snapshot the registry and compact the Raft log about every this many applied entries"
            " (each time within a quarter either side, drawn by each node).",
        ],
        [
            "snapshot-keep",
            None,
            "1000",
            "Entries kept in memory after a snapshot for followers that are a little behind.",
        ],
        [
            "max-instances-per-name",
            None,
            "10000",
            "Instances one (Environment, Name) may hold; a PUT beyond gets 409 "
            "(at most 10000, the registry's own limit).",
        ],
        [
            "cluster-key-file",
            None,
            None,
            "File holding the cluster key every member must prove on every Raft "
            "connection (default: $SKYDNS_CLUSTER_KEY, else none; docs/security.md).",
        ],
        [
            "election-timeout",
            None,
            "500",
            "Milliseconds a follower waits without hearing a leader before it campaigns "
            "(randomized up to twice that); a leader whose connections break is replaced "
            "sooner (10 to 100 ms).",
        ],
        ["heartbeat-interval", None, "50", "Milliseconds between a leader's heartbeats."],
        ["raft-tls-ca", None, None, "Mutual TLS between Raft peers: the cluster CA (PEM)."],
        ["raft-tls-cert", None, None, "This node's certificate (PEM), signed by the CA."],
        ["raft-tls-key", None, None, "The private key (PEM) of --raft-tls-cert."],
        ["store", None, "raft", "Where the registry lives: raft (SkyDNS's own cluster) or "
         "etcd://HOST:PORT[,HOST:PORT...] (https:// for TLS): an existing etcd v3."],
        ["etcd-prefix", None, "/skydns/", "With --store etcd: the keys SkyDNS keeps, under this."],
        ["etcd-max-staleness", None, "60", "With --store etcd: seconds DNS answers from its "
         "copy while etcd cannot be reached; SERVFAIL after that."],
        ["etcd-ca", None, None, "With --store https://...: the CA (PEM) etcd's certificate is "
         "checked against (default: the system's)."],
        ["etcd-cert", None, None, "With --store https://...: a client certificate (PEM) for etcd."],
        ["etcd-key", None, None, "The private key (PEM) of --etcd-cert."],
    ]
    optFlags = [
        ["no-forward", None, "Do not forward names outside the domain (answer REFUSED)."],
        ["non-voter", None, "With --join: join as a read replica, a member that serves DNS and "
         "reads, forwards writes, and never votes or counts in a quorum."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["forward-zone"] = []

    def opt_forward_zone(self, value: str) -> None:
        """ZONE=IP[:PORT][,IP...]: names under ZONE go to these servers (stub
        zones; repeat for more; the longest match wins)."""
        try:
            self["forward-zone"].append(parse_forward_zone(value))
        except ValueError as e:
            raise usage.UsageError(f"--forward-zone: {e}") from None

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        """The settings of ``--config FILE`` first, then the command line's
        over them.  Under twistd a bad option stops the start with one line
        (twistd would print the whole --help before it); elsewhere `UsageError`."""
        argv = list(sys.argv[1:] if options is None else options)
        #: The options as given, for the --dns-workers processes.
        self.argv = argv
        try:
            path = config_path(argv)
            if path is not None:
                parameters = {str(p[0]) for p in self.optParameters}
                flags = {str(f[0]) for f in self.optFlags}
                try:
                    settings = read_settings(path, parameters | {"forward-zone"}, flags)
                except ValueError as e:
                    raise usage.UsageError(f"--config: {e}") from None
                for zone in _zones(settings.pop("forward-zone", "")):
                    self.opt_forward_zone(zone)
                self.update(settings)
            super().parseOptions(argv)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            raise SystemExit(f"twistd skydns: {e} (twistd skydns --help lists the options)"
                             ) from None  # fmt: skip

    def postOptions(self) -> None:
        self["domain"] = _checked("domain", config.check_domain, self["domain"])
        self["dns"] = _checked("dns", config.parse_ip_hostport, self["dns"])
        self["http"] = _checked("http", check_endpoint, self["http"])
        self["raft"] = _checked("raft", check_endpoint, self["raft"])
        self["node-id"] = _checked("node-id", config.check_node_id, self["node-id"])
        if not self["data-dir"]:
            raise usage.UsageError("--data-dir: must not be empty")
        if self["peers"] is not None:
            self["peers"] = _checked("peers", config.parse_peers, self["peers"])
            if self["node-id"] not in [p.node_id for p in self["peers"]]:
                raise usage.UsageError(
                    f"--peers: this node's --node-id {self['node-id']!r} is not in the list"
                )
        if self["join"] is not None:
            self["join"] = _checked("join", config.parse_hostport, self["join"])
            if self["peers"] is not None:
                raise usage.UsageError("--join and --peers are exclusive: use one")
        elif self["non-voter"]:
            raise usage.UsageError("--non-voter: only with --join (a read replica joins a cluster)")
        self["cache-size"] = _checked("cache-size", non_negative_int, self["cache-size"])
        self["dns-cache-entries"] = _checked(
            "dns-cache-entries", non_negative_int, self["dns-cache-entries"]
        )
        self["dns-cache-memory"] = _checked(
            "dns-cache-memory", non_negative_int, self["dns-cache-memory"]
        )
        if self["dns-cache-memory"] == 0:
            raise usage.UsageError("--dns-cache-memory: must be at least 1")
        self["forward-allow"] = _checked("forward-allow", parse_networks, self["forward-allow"])
        self["tcp-idle-timeout"] = _checked(
            "tcp-idle-timeout", non_negative_int, self["tcp-idle-timeout"]
        )
        self["snapshot-entries"] = _checked(
            "snapshot-entries", non_negative_int, self["snapshot-entries"]
        )
        if self["snapshot-entries"] == 0:
            raise usage.UsageError("--snapshot-entries: must be at least 1")
        self["snapshot-keep"] = _checked("snapshot-keep", non_negative_int, self["snapshot-keep"])
        for name in ("election-timeout", "heartbeat-interval"):
            self[name] = _checked(name, non_negative_int, self[name])
            if self[name] < TICK_MS:
                raise usage.UsageError(f"--{name}: must be at least {TICK_MS} (milliseconds)")
        if self["heartbeat-interval"] * 2 > self["election-timeout"]:
            raise usage.UsageError(
                "--heartbeat-interval: must be at most half of --election-timeout"
            )
        self["max-udp-size"] = _checked("max-udp-size", udp_size, self["max-udp-size"])
        self["negative-ttl"] = _checked("negative-ttl", negative_ttl, self["negative-ttl"])
        self["serve-stale"] = _checked("serve-stale", non_negative_int, self["serve-stale"])
        self["forward-timeout"] = _checked("forward-timeout", positive_seconds,
                                           self["forward-timeout"])  # fmt: skip
        self["forward-attempts"] = _checked("forward-attempts", non_negative_int,
                                            self["forward-attempts"]) or 1  # fmt: skip
        self["dns-tls-context"] = dns_tls(self)
        self["dnssec"] = dnssec_key(self["dnssec-key"], self["domain"])
        self["reverse-zone"] = [_checked("reverse-zone", parse_reverse_zone, zone)
                                for zone in str(self["reverse-zone"]).split(",") if zone.strip()]
        self["forward-tls-trust"] = _checked("forward-tls-ca", trust_root, self["forward-tls-ca"])
        if self["names"] not in ORDERS:
            raise usage.UsageError(f"--names: must be one of {', '.join(ORDERS)}")
        self["dns-workers"] = _checked("dns-workers", non_negative_int, self["dns-workers"])
        if self["dns-workers"] > 64:
            raise usage.UsageError("--dns-workers: at most 64")
        self["max-tcp-connections"] = _checked(
            "max-tcp-connections", non_negative_int, self["max-tcp-connections"]
        )
        self["max-http-connections"] = _checked(
            "max-http-connections", non_negative_int, self["max-http-connections"]
        )
        if self["max-http-connections"] == 0:
            raise usage.UsageError("--max-http-connections: must be at least 1")
        if self["max-tcp-connections"] == 0:
            raise usage.UsageError("--max-tcp-connections: must be at least 1")
        if self["tcp-idle-timeout"] == 0:
            raise usage.UsageError("--tcp-idle-timeout: must be at least 1 second")
        self["rrl-rate"] = _checked("rrl-rate", non_negative_int, self["rrl-rate"])
        self["rrl-slip"] = _checked("rrl-slip", non_negative_int, self["rrl-slip"])
        self["rrl-large-rate"] = _checked(
            "rrl-large-rate", non_negative_int, self["rrl-large-rate"]
        )
        if self["no-forward"]:
            if self["nameserver"] is not None:
                raise usage.UsageError("--nameserver and --no-forward are exclusive: use one")
            self["upstreams"] = None
        else:
            dns_address: config.HostPort = self["dns"]
            # SKYDNS_RESOLV_CONF: another resolv.conf to read (for tests; docs/resolver.md).
            resolv_conf = os.environ.get("SKYDNS_RESOLV_CONF") or RESOLV_CONF
            self["upstreams"] = _checked(
                "nameserver",
                lambda value: configured_upstreams(
                    value, dns_address.host, dns_address.port, resolv_conf
                ),
                self["nameserver"],
            )
        self["log-format"] = _checked("log-format", parse_log_format, self["log-format"])
        self["log-level"] = _checked("log-level", parse_log_level, self["log-level"])
        self["log-rotate-size"] = _checked(
            "log-rotate-size", non_negative_int, self["log-rotate-size"]
        )
        if self["log-rotate-size"] < 1000:
            raise usage.UsageError("--log-rotate-size: must be at least 1000 (bytes)")
        self["log-keep"] = _checked("log-keep", non_negative_int, self["log-keep"])
        if self["log-keep"] == 0:
            raise usage.UsageError("--log-keep: must be at least 1")
        if self["secret"] is None:
            self["secret"] = os.environ.get("SKYDNS_SECRET") or None
        if self["secret"] == "":
            raise usage.UsageError("--secret: must not be empty")
        self["cluster-key"] = cluster_key(self["cluster-key-file"])
        self["raft-tls"] = raft_tls(self)
        if self["cluster-key"] is None and self["raft-tls"] is None:
            # The Raft port takes writes: it is never open beyond this host.
            if self["secret"] is not None:
                from skydns.raft.net.keys import key_from_secret

                self["cluster-key"] = key_from_secret(self["secret"])
            elif not local_endpoint(self["raft"]):
                raise usage.UsageError(
                    f"--raft {self['raft']} is reachable beyond this host, and nothing "
                    "authenticates the members: give --cluster-key-file (or "
                    "$SKYDNS_CLUSTER_KEY), --raft-tls-ca/-cert/-key, or --secret"
                )
        self["etcd"] = store_settings(self)
        self["max-instances-per-name"] = _checked(
            "max-instances-per-name", instances_limit, self["max-instances-per-name"]
        )


def _zones(text: object) -> list[str]:
    """The forward zones of a config file's ``forward-zone``: one zone, or a
    list of them (which `read_settings` joined with commas: split again
    before each ``ZONE=``)."""
    import re

    return [z for z in re.split(r",(?=[^,=]+=)", str(text)) if z]
