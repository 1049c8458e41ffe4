"""Tests of the Raft core: unit tests and the seeded fault-injecting simulation."""
