"""The ``skydns`` command's exit codes (docs/cli.md)."""

#: Success; the server answered with an error (4xx/5xx, or a DNS error rcode
#: for ``lookup``); a usage error; the server could not be reached.
OK, SERVER_ERROR, USAGE, UNREACHABLE = 0, 1, 2, 3
