"""The HTTP API (SPEC.md §2): routes (`api`, `members`), the site and its
limits (`site`, `limits`), error answers (`responses`), and the one place
Klein is bypassed for speed (`kleinbypass`)."""
