"""Online DNSSEC for the SkyDNS domain (SPEC.md §8): keys (`keys`)."""
