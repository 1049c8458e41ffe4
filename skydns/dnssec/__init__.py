"""Online DNSSEC for the SkyDNS domain (SPEC.md §8): keys in BIND's format
(`keys`), signatures and compact denial at the wire level (`signing`)."""
