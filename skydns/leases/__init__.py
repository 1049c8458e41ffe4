"""Leases (SPEC.md §7): renewals that cost no log entry each.

`renewal` is what a renewal says on the wire; `batcher` carries a node's
renewals to the leader; `lessor` is the leader's memory of deadlines and
what it checkpoints; `expiry` is the leader's loop that checkpoints and
expires.  The registry's side (grant, revoke, checkpoint) is
`skydns.registry.leasing`.
"""
