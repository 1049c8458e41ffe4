"""DNS on every core (``--dns-workers N``): worker processes that answer
DNS on the node's address (SO_REUSEPORT), each from its own copy of the
registry, kept current by the node's change stream (`feed`: the registry's
snapshot, then every command the node applies, in order).  `supervisor`
runs them from the node; `main` is a worker's process."""
