"""The ``skydns`` command: talk to a SkyDNS node over HTTP (and DNS, for ``lookup``).

Exit codes: 0 success; 1 the server answered with an error (4xx/5xx, or a DNS
error rcode for ``lookup``), message on stderr; 2 usage error; 3 the server
could not be reached.  See docs/cli.md.
"""


from skydns.cli.display import format_table
from skydns.cli.runner import Runner, main

__all__ = ["Runner", "format_table", "main"]
