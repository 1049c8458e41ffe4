"""Raft's proofs: unit and scripted tests of the pure core, and the seeded
simulation of real nodes (``world``: ``simclock``, ``simdisk``, ``simnet``,
``kv``; faults in ``nemesis``, clients in ``clients``, invariants in
``invariants``, the scenario families in ``scenarios``)."""
