"""SkyDNS: service announcement over HTTP, discovery over DNS, replicated with Raft."""

__version__ = "0.1.0"
